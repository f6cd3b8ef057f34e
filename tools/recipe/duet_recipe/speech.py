"""`speech`: a synthetic speech corpus from espeak-ng, resampled to 16 kHz mono and augmented.

Utterance i is fully determined by (seed, i): its sentence, voice, rate, pitch and
augmentation are drawn from `numpy.random.default_rng([seed, i])` before any audio exists, and
its noise from `default_rng([seed, i, 1])`. So the corpus is reproducible, resumable (an
existing `wav/NNNNNN.wav` is kept and only its index record is rebuilt) and growable (more
--utterances with the same seed keeps the first ones).

Layout of --out:
  corpus.json     settings (seed, voices, ...); a different seed on an existing corpus is refused
  wav/NNNNNN.wav  16 kHz mono 16-bit PCM
  index.jsonl     one record per utterance: id, file, split (train / heldout), text, voice, rate,
                  pitch, samples, seconds, augmentation {kind, gainDb, padMs, noise, snrDb, law, opusKbps}

Augmentations (per utterance): clean; additive noise (white / pink / brown at a random SNR);
G.711 round trip (16 kHz -> 8 kHz band limit -> mu-law or A-law -> 16 kHz); noise then G.711;
Opus round trip (libopus through opus-tools' opusenc/opusdec, 20 ms frames at 12-32 kbit/s, as
WebRTC and SIP callers send it); noise then Opus.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

from . import RECIPE
from .g711 import float_to_int16, round_trip
from .sentences import sentence

SAMPLE_RATE = 16000
FORMAT = "duet.recipe.speech"

# espeak-ng English voices (no MBROLA) and voice variants (+m1..+m7, +f1..+f5 and a few named ones).
BASE_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
               "en-us-nyc"]
VARIANTS = ["", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "Annie", "belinda", "edward", "steph", "Andy", "david", "linda", "robert", "iven", "croak", "whisper"]
RATES = (120, 230)  # words per minute
PITCHES = (20, 80)  # espeak 0..99
# (kind, probability)
AUGMENTATIONS = [("clean", 0.20), ("noise", 0.25), ("g711", 0.20), ("noise+g711", 0.15), ("opus", 0.10),
                 ("noise+opus", 0.10)]
# Opus bitrates callers use for mono speech (kbit/s).
OPUS_KBPS = (12, 16, 24, 32)
SNR_DB = (5.0, 35.0)
HELDOUT_EVERY = 20  # utterance i is held out when i % 20 == 19


class SpeechError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox", "opusenc", "opusdec") if shutil.which(t) is None]
    if missing:
        raise SpeechError(f"missing {', '.join(missing)}: apt-get install -y espeak-ng sox opus-tools "
                          "(scripts/setup.sh does)")


def available_variants() -> list[str]:
    """Variants espeak-ng knows (those in VARIANTS that exist in its data directory)."""
    try:
        out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [""]
    known = {line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) >= 5}
    return [""] + [v for v in VARIANTS if v and v in known]


def plan(seed: int, i: int, variants: list[str]) -> dict:
    """Everything about utterance i that does not depend on audio."""
    rng = np.random.default_rng([seed, i])
    text = sentence(rng)
    base = BASE_VOICES[int(rng.integers(len(BASE_VOICES)))]
    variant = variants[int(rng.integers(len(variants)))]
    kinds, probs = zip(*AUGMENTATIONS)
    kind = kinds[int(rng.choice(len(kinds), p=np.array(probs) / sum(probs)))]
    aug = {
        "kind": kind,
        "gainDb": round(float(rng.uniform(-24.0, -3.0)), 2),  # speech RMS level, dBFS
        "padMs": [int(rng.integers(40, 600)), int(rng.integers(40, 600))],  # silence before / after
    }
    if "noise" in kind:
        aug["noise"] = ["white", "pink", "brown"][int(rng.integers(3))]
        aug["snrDb"] = round(float(rng.uniform(*SNR_DB)), 2)
    if "g711" in kind:
        aug["law"] = "ulaw" if rng.random() < 0.6 else "alaw"
    if "opus" in kind:
        aug["opusKbps"] = int(OPUS_KBPS[int(rng.integers(len(OPUS_KBPS)))])
    return {
        "id": i,
        "file": f"wav/{i:06d}.wav",
        "split": "heldout" if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 else "train",
        "text": text,
        "voice": base + (f"+{variant}" if variant else ""),
        "rate": int(rng.integers(RATES[0], RATES[1] + 1)),
        "pitch": int(rng.integers(PITCHES[0], PITCHES[1] + 1)),
        "augmentation": aug,
    }


def synthesize(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """espeak-ng (22.05 kHz) | sox (high-quality resampler) -> 16 kHz mono float32."""
    tts = subprocess.Popen(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    res = subprocess.run(["sox", "-q", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed",
                          "-b", "16", "-c", "1", "-"], stdin=tts.stdout, capture_output=True)
    tts.stdout.close()
    err = tts.stderr.read().decode(errors="replace")
    tts.stderr.close()
    if tts.wait() != 0 or res.returncode != 0:
        raise SpeechError(f"espeak-ng/sox failed for voice {voice}: {err.strip()} {res.stderr.decode().strip()}")
    audio = np.frombuffer(res.stdout, dtype="<i2").astype(np.float32) / 32768.0
    if audio.size == 0:
        raise SpeechError(f"espeak-ng produced no audio for voice {voice}: {text!r}")
    return audio


def colored_noise(rng: np.random.Generator, n: int, color: str) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f^2) noise, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    f = np.maximum(f, 20.0)
    if color == "pink":
        spec /= np.sqrt(f)
    elif color == "brown":
        spec /= f
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _lowpass(cutoff_hz: float, taps: int = 63) -> np.ndarray:
    """Hamming-windowed sinc low-pass FIR at 16 kHz, unit DC gain."""
    t = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff_hz / SAMPLE_RATE * t) * np.hamming(taps)
    return h / h.sum()


_PHONE_LP = _lowpass(3600.0)


def telephone_g711(audio: np.ndarray, law: str) -> np.ndarray:
    """16 kHz -> band limit + decimate to 8 kHz -> G.711 law round trip -> zero-stuff + low-pass -> 16 kHz."""
    narrow = np.convolve(audio, _PHONE_LP, mode="same")[::2]
    narrow = round_trip(narrow, law)
    up = np.zeros(2 * len(narrow), dtype=np.float64)
    up[::2] = narrow
    return (2.0 * np.convolve(up, _PHONE_LP, mode="same"))[: len(audio)].astype(np.float32)


def opus_round_trip(audio: np.ndarray, kbps: int) -> np.ndarray:
    """16 kHz float -> opusenc (20 ms frames, `kbps`) -> opusdec at 16 kHz -> the same length.

    opusdec removes the encoder's pre-skip, so the output is aligned with the input."""
    pcm = float_to_int16(audio).astype("<i2").tobytes()
    enc = subprocess.run(["opusenc", "--quiet", "--raw", "--raw-rate", str(SAMPLE_RATE), "--raw-chan", "1",
                          "--bitrate", str(kbps), "--framesize", "20", "-", "-"], input=pcm, capture_output=True)
    if enc.returncode != 0:
        raise SpeechError(f"opusenc failed: {enc.stderr.decode(errors='replace').strip()}")
    dec = subprocess.run(["opusdec", "--quiet", "--rate", str(SAMPLE_RATE), "-", "-"], input=enc.stdout,
                         capture_output=True)
    if dec.returncode != 0:
        raise SpeechError(f"opusdec failed: {dec.stderr.decode(errors='replace').strip()}")
    out = np.frombuffer(dec.stdout, dtype="<i2").astype(np.float32) / 32768.0
    if len(out) < len(audio):
        out = np.concatenate([out, np.zeros(len(audio) - len(out), np.float32)])
    return out[: len(audio)]


def augment(audio: np.ndarray, aug: dict, rng: np.random.Generator) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) + 1e-9
    audio = audio * (10 ** (aug["gainDb"] / 20) / rms)
    pre, post = (int(ms * SAMPLE_RATE / 1000) for ms in aug["padMs"])
    audio = np.concatenate([np.zeros(pre, np.float32), audio.astype(np.float32), np.zeros(post, np.float32)])
    if "noise" in aug:
        speech_rms = 10 ** (aug["gainDb"] / 20)
        audio = audio + colored_noise(rng, len(audio), aug["noise"]) * speech_rms * 10 ** (-aug["snrDb"] / 20)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # keep it in range (rare: quiet levels are drawn)
        audio = audio * (0.99 / peak)
    if "law" in aug:
        audio = telephone_g711(audio, aug["law"])
    if "opusKbps" in aug:
        audio = opus_round_trip(audio, aug["opusKbps"])
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> None:
    tmp = path.with_suffix(".wav.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(float_to_int16(audio).astype("<i2").tobytes())
    os.replace(tmp, path)


def wav_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnframes()


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SpeechError(f"{path}: need 16 kHz mono 16-bit PCM")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def _make(job) -> dict:
    out, seed, i, variants = job
    rec = plan(seed, i, variants)
    path = Path(out) / rec["file"]
    if not path.exists():
        audio = synthesize(rec["text"], rec["voice"], rec["rate"], rec["pitch"])
        audio = augment(audio, rec["augmentation"], np.random.default_rng([seed, i, 1]))
        write_wav(path, audio)
        rec["new"] = True
    rec["samples"] = wav_frames(path)
    rec["seconds"] = round(rec["samples"] / SAMPLE_RATE, 3)
    return rec


def make_corpus(out: Path, utterances: int, seed: int = 0, jobs: int | None = None, progress: bool = True) -> dict:
    """Writes (or completes) the corpus; returns {utterances, new, seconds, ...}."""
    from multiprocessing import get_context

    from tqdm import tqdm

    check_tools()
    if utterances < 1:
        raise SpeechError(f"--utterances must be >= 1, got {utterances}")
    out = Path(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    settings_path = out / "corpus.json"
    variants = available_variants()
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        if (old.get("seed") != seed or old.get("variants") != variants
                or old.get("augmentations") != dict(AUGMENTATIONS)):
            raise SpeechError(f"{out} holds a corpus made with seed {old.get('seed')} and other settings "
                              f"(voices or augmentations); use another --out, the same --seed, or delete it")
    settings = {"format": FORMAT, "version": 1, "recipe": RECIPE, "seed": seed, "sampleRate": SAMPLE_RATE,
                "baseVoices": BASE_VOICES, "variants": variants, "rates": list(RATES), "pitches": list(PITCHES),
                "augmentations": dict(AUGMENTATIONS), "snrDb": list(SNR_DB), "heldoutEvery": HELDOUT_EVERY,
                "espeakNg": subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()}
    tmp = settings_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(settings, indent=2) + "\n")
    os.replace(tmp, settings_path)

    jobs = max(1, jobs or os.cpu_count() or 1)
    work = [(str(out), seed, i, variants) for i in range(utterances)]
    records = []
    bar = tqdm(total=utterances, desc="speech", unit="utt", file=sys.stderr, disable=not progress)
    if jobs == 1:
        for job in work:
            records.append(_make(job))
            bar.update()
    else:
        with get_context("fork").Pool(jobs) as pool:
            for rec in pool.imap_unordered(_make, work, chunksize=4):
                records.append(rec)
                bar.update()
    bar.close()
    records.sort(key=lambda r: r["id"])
    new = sum(1 for r in records if r.pop("new", False))
    tmp = out / "index.jsonl.tmp"
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, out / "index.jsonl")
    seconds = sum(r["seconds"] for r in records)
    summary = {"out": str(out), "utterances": len(records), "new": new, "reused": len(records) - new,
               "seconds": round(seconds, 1), "hours": round(seconds / 3600, 3),
               "voices": len({r["voice"] for r in records}),
               "augmentation": {k: sum(1 for r in records if r["augmentation"]["kind"] == k) for k, _ in AUGMENTATIONS}}
    _log(f"corpus {out}: {summary['utterances']} utterances ({new} new), {summary['hours']} h, "
         f"{summary['voices']} voices")
    return summary


def read_index(corpus: Path) -> list[dict]:
    path = Path(corpus) / "index.jsonl"
    if not path.exists():
        raise SpeechError(f"{corpus} has no index.jsonl (run `duet-recipe speech --out {corpus}` first)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
