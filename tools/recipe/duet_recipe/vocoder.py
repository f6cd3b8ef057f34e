"""`vocoder`: the default unit vocoder, a small unit HiFi-GAN generator trained on CPU.

The generator is `duet_export.vocoder`'s re-implementation of speech-resynthesis' `CodeGenerator`
(unit embedding -> HiFi-GAN), with weight norm on every conv as that repo trains it. It maps the
default tokenizer's units of the corpus' clean utterances back to their audio. Losses: multi-
resolution STFT (spectral convergence + L1 log magnitude, FFT 512/1024/2048) and L1 log-mel
(80 bands, n_fft 1024). No discriminator (no time on 2 CPU cores): the result is intelligible-ish
but buzzy; it is a working default, not a good vocoder.

Output: `g_NNNNNNNN` ({"generator": state dict with weight_g/weight_v pairs, "steps"}) and
`config.json` in speech-resynthesis' format, so `duet-export unit-hifigan` exports it unchanged;
`state.pt` holds the optimizer and clock for resuming.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import RECIPE
from .tokenizer import SAMPLE_RATE, SAMPLES_PER_UNIT, _display_path, _ort_run, mel_filterbank

SEGMENT_UNITS = 25  # 1 s training segments
STFT_SIZES = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))  # n_fft, hop, window


class VocoderRecipeError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_config(units: int, channels: int = 64, resblock: str = "2") -> dict:
    return {
        "resblock": resblock,
        "upsample_rates": [10, 8, 8],
        "upsample_kernel_sizes": [20, 16, 16],
        "upsample_initial_channel": channels,
        "resblock_kernel_sizes": [3, 7],
        "resblock_dilation_sizes": [[1, 3], [1, 3]] if resblock == "2" else [[1, 3, 5], [1, 3, 5]],
        "num_embeddings": units,
        "embedding_dim": 64,
        "model_in_dim": 64,
        "sampling_rate": SAMPLE_RATE,
        "code_hop_size": SAMPLES_PER_UNIT,
        "segment_size": SEGMENT_UNITS * SAMPLES_PER_UNIT,
    }


def build_trainable(raw: dict):
    """CodeGenerator with torch.nn.utils.weight_norm on every conv (state keys weight_g/weight_v)."""
    import warnings

    import torch
    from duet_export.vocoder import _build_generator, parse_config

    model = _build_generator(parse_config(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # weight_norm's deprecation notice: we want its key names
        for name, mod in list(model.named_modules()):
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                mod.weight.data.normal_(0.0, 0.01)  # HiFi-GAN's init_weights
                torch.nn.utils.weight_norm(mod)
    return model


class SpectralLosses:
    def __init__(self):
        import torch

        self.windows = {n: torch.hann_window(w) for n, _, w in STFT_SIZES}
        self.mel = torch.from_numpy(mel_filterbank(80, n_fft=1024))
        self.mel_window = torch.hann_window(1024)

    def _mag(self, x, n, hop, win, window):
        import torch

        spec = torch.stft(x, n, hop, win, window, return_complex=True)
        return torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-7)

    def logmel(self, x):
        import torch

        mag = self._mag(x, 1024, 256, 1024, self.mel_window)
        return torch.log(torch.matmul(self.mel, mag) + 1e-5)

    def __call__(self, pred, target):
        import torch

        sc = mag = 0.0
        for n, hop, win in STFT_SIZES:
            p = self._mag(pred, n, hop, win, self.windows[n])
            t = self._mag(target, n, hop, win, self.windows[n])
            sc = sc + torch.linalg.norm(t - p) / (torch.linalg.norm(t) + 1e-7)
            mag = mag + torch.mean(torch.abs(torch.log(t) - torch.log(p)))
        sc, mag = sc / len(STFT_SIZES), mag / len(STFT_SIZES)
        mel = torch.mean(torch.abs(self.logmel(pred) - self.logmel(target)))
        return sc, mag, mel


def tokenize_corpus(corpus: Path, tokenizer: Path, split: str, kinds: tuple[str, ...] | None, progress: bool):
    """[(record, audio trimmed to whole units, units)] for the split's utterances (optionally only
    some augmentation kinds), tokenised with the tokenizer's ONNX model (offline)."""
    from tqdm import tqdm

    from .speech import read_wav

    index = Path(corpus) / "index.jsonl"
    if not index.exists():
        raise FileNotFoundError(f"{index} does not exist (make the corpus with `duet-recipe speech`)")
    model = Path(tokenizer) / "model.onnx"
    if not model.exists():
        raise FileNotFoundError(f"{model} does not exist (make it with `duet-recipe tokenizer`)")
    run = _ort_run(model)
    records = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
    if not any(r["split"] == "heldout" for r in records):  # tiny corpora: the last one is held out (as the tokenizer)
        records = [dict(r, split="heldout" if i == len(records) - 1 else "train") for i, r in enumerate(records)]
    records = [r for r in records if r["split"] == split and (kinds is None or r["augmentation"]["kind"] in kinds)]
    out = []
    for r in tqdm(records, desc=f"tokenise {split}", unit="utt", file=sys.stderr, disable=not progress):
        a = read_wav(Path(corpus) / r["file"])
        n = len(a) // SAMPLES_PER_UNIT
        if n < 2:
            continue
        a = a[: n * SAMPLES_PER_UNIT]
        out.append((r, a, run(a[None])[0].astype(np.int64)))
    return out


def _save(out: Path, model, opt, raw: dict, steps: int, elapsed: float, history: list) -> Path:
    import torch

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ckpt = out / f"g_{steps:08d}"
    tmp = out / (ckpt.name + ".tmp")
    torch.save({"generator": state, "steps": steps}, str(tmp))
    tmp.replace(ckpt)
    tmp = out / "state.pt.tmp"
    torch.save({"optimizer": opt.state_dict(), "steps": steps, "elapsed": elapsed, "checkpoint": ckpt.name,
                "history": history, "rng": torch.get_rng_state()}, str(tmp))
    tmp.replace(out / "state.pt")
    for old in out.glob("g_*"):
        if old.name != ckpt.name and not old.name.endswith(".tmp"):
            old.unlink()
    return ckpt


def train_vocoder(corpus: Path, tokenizer: Path, out: Path, *, max_minutes: float = 15.0, seed: int = 0,
                  channels: int = 64, resblock: str = "2", batch: int = 8, lr: float = 2e-3,
                  max_steps: int | None = None, checkpoint_minutes: float = 3.0, kinds=("clean",),
                  threads: int = 1, progress: bool = True) -> dict:
    """Trains (or resumes) the generator in `out`; stops at `max_minutes` of training (counted
    across resumes) or `max_steps`. Returns a summary with the checkpoint and config paths."""
    import os

    import torch
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads or os.cpu_count() or 1)  # 1: far faster than 2 when the cores are shared
    torch.set_flush_denormal(True)  # tiny early activations would otherwise run ~3x slower
    manifest = json.loads((Path(tokenizer) / "manifest.json").read_text())
    units = int(manifest["unitCount"])
    raw = default_config(units, channels, resblock)
    config_path = out / "config.json"
    if config_path.exists():
        old = json.loads(config_path.read_text())
        if old != raw:
            raise VocoderRecipeError(f"{out} holds a run with another config; use another --out")
    else:
        config_path.write_text(json.dumps(raw, indent=2) + "\n")

    data = tokenize_corpus(corpus, tokenizer, "train", kinds, progress)
    if not data:
        raise VocoderRecipeError(f"no training utterances of kinds {kinds} in {corpus}")
    seconds = sum(len(a) for _, a, _ in data) / SAMPLE_RATE
    _log(f"training on {len(data)} utterances ({seconds / 60:.1f} min of audio), {units} units")

    torch.manual_seed(seed)
    model = build_trainable(raw)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.8, 0.99))
    steps, elapsed, history = 0, 0.0, []
    state_path = out / "state.pt"
    if state_path.exists():
        st = torch.load(str(state_path), map_location="cpu", weights_only=False)
        model.load_state_dict(torch.load(str(out / st["checkpoint"]), map_location="cpu")["generator"])
        opt.load_state_dict(st["optimizer"])
        steps, elapsed, history = st["steps"], st["elapsed"], st["history"]
        torch.set_rng_state(st["rng"])
        _log(f"resumed at step {steps} ({elapsed / 60:.1f} min trained)")
    rng = np.random.default_rng(seed + steps)
    losses = SpectralLosses()
    lengths = np.array([len(u) for _, _, u in data], dtype=np.float64)
    weights = lengths / lengths.sum()
    seg = SEGMENT_UNITS

    def sample():
        u_b, a_b = [], []
        for i in rng.choice(len(data), size=batch, p=weights):
            _, a, u = data[i]
            if len(u) >= seg:
                s = int(rng.integers(0, len(u) - seg + 1))
                uu, aa = u[s: s + seg], a[s * SAMPLES_PER_UNIT: (s + seg) * SAMPLES_PER_UNIT]
            else:  # short utterance: pad with its own last unit's silence (zeros / silence unit)
                pad = seg - len(u)
                uu = np.concatenate([u, np.full(pad, manifest.get("silenceUnit", u[-1]))])
                aa = np.concatenate([a, np.zeros(pad * SAMPLES_PER_UNIT, np.float32)])
            u_b.append(uu)
            a_b.append(aa)
        return torch.from_numpy(np.stack(u_b)), torch.from_numpy(np.stack(a_b))

    budget = max_minutes * 60.0
    t_start, last_ckpt = time.time() - elapsed, time.time()
    bar = tqdm(desc="train vocoder", unit="step", initial=steps, file=sys.stderr, disable=not progress)
    ema = None
    model.train()
    ckpt = None
    while True:
        elapsed = time.time() - t_start
        if elapsed >= budget or (max_steps is not None and steps >= max_steps):
            break
        u, a = sample()
        pred = model(u)
        sc, mag, mel = losses(pred, a)
        loss = sc + mag + mel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        steps += 1
        vals = np.array([float(x.detach()) for x in (loss, sc, mag, mel)])
        ema = vals if ema is None else 0.98 * ema + 0.02 * vals
        bar.update(1)
        bar.set_postfix(loss=f"{ema[0]:.3f}", sc=f"{ema[1]:.3f}", mag=f"{ema[2]:.3f}", mel=f"{ema[3]:.3f}")
        if steps % 50 == 0:
            history.append({"step": steps, "minutes": round(elapsed / 60, 2), "loss": round(ema[0], 4),
                            "sc": round(ema[1], 4), "mag": round(ema[2], 4), "mel": round(ema[3], 4)})
        if time.time() - last_ckpt >= checkpoint_minutes * 60:
            ckpt = _save(out, model, opt, raw, steps, time.time() - t_start, history)
            last_ckpt = time.time()
    bar.close()
    elapsed = time.time() - t_start
    ckpt = _save(out, model, opt, raw, steps, elapsed, history)
    _log(f"trained {steps} steps in {elapsed / 60:.1f} min; wrote {ckpt}")
    return {"checkpoint": str(ckpt), "config": str(config_path), "steps": steps,
            "trainMinutes": round(elapsed / 60, 2), "trainUtterances": len(data),
            "trainSeconds": round(seconds, 1), "finalLoss": history[-1] if history else None,
            "settings": {"seed": seed, "channels": channels, "resblock": resblock, "batch": batch, "lr": lr,
                         "segmentUnits": SEGMENT_UNITS, "augmentationKinds": list(kinds) if kinds else "all",
                         "maxMinutes": max_minutes, "losses": "MR-STFT (SC + log mag, FFT 512/1024/2048) "
                                                               "+ L1 log-mel (80 bands); no discriminator"}}


# ---------------------------------------------------------------- measurement

def _mcd_frames(logmel_a: np.ndarray, logmel_b: np.ndarray, coeffs: int = 13) -> np.ndarray:
    """Per-frame mel-cepstral distortion (dB) from natural-log mel *power* spectra [T, M]: halved to
    log amplitude, orthonormal DCT-II, c1..c12 (c0, the level, excluded), 10/ln10 * sqrt(2 sum d^2)."""
    logmel_a, logmel_b = 0.5 * logmel_a, 0.5 * logmel_b
    m = logmel_a.shape[1]
    k = np.arange(coeffs)[:, None]
    n = np.arange(m)[None, :]
    dct = np.cos(np.pi * k * (2 * n + 1) / (2 * m)) * np.sqrt(2.0 / m)
    ca, cb = logmel_a @ dct.T, logmel_b @ dct.T
    d = (ca - cb)[:, 1:]
    return 10.0 / np.log(10.0) * np.sqrt(2.0 * (d * d).sum(axis=1))


def measure_vocoder(vocoder_dir: Path, tokenizer: Path, corpus: Path, *, progress: bool = True,
                    wav_dir: Path | None = None) -> dict:
    """Held-out figures for an exported vocoder (ONNX, onnxruntime 1 thread)."""
    import onnxruntime as ort
    import torch

    from .tokenizer import make_module

    tok_manifest = json.loads((Path(tokenizer) / "manifest.json").read_text())
    voc_manifest = json.loads((Path(vocoder_dir) / "manifest.json").read_text())
    silence = int(tok_manifest["silenceUnit"])
    tok = _ort_run(Path(tokenizer) / "model.onnx")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(Path(vocoder_dir) / "model.onnx"), so, providers=["CPUExecutionProvider"])

    def voc(u):
        return sess.run(["audio"], {"units": np.ascontiguousarray(u, dtype=np.int64)})[0]

    feats = make_module(40)  # plain log-mel of the tokenizer's front end (no normalisation needed)
    held = tokenize_corpus(corpus, tokenizer, "heldout", None, progress)
    same = total = same_clean = total_clean = 0
    mcd, mcd_clean, l1 = [], [], []
    for i, (r, a, u) in enumerate(held):
        y = voc(u[None])[0]
        u2 = tok(y[None])[0]
        same += int((u2 == u).sum())
        total += len(u)
        clean = r["augmentation"]["kind"] == "clean"
        if clean:
            same_clean += int((u2 == u).sum())
            total_clean += len(u)
        with torch.no_grad():
            la = feats.logmel_units(torch.from_numpy(a)[None])[0].numpy()
            lb = feats.logmel_units(torch.from_numpy(y)[None])[0].numpy()
        speech = u != silence
        if speech.any():
            d = _mcd_frames(la[speech], lb[speech])
            mcd.append(d)
            l1.append(np.abs(la[speech] - lb[speech]).mean(axis=1))
            if clean:
                mcd_clean.append(d)
        if wav_dir is not None and clean and len(list(Path(wav_dir).glob("*.wav"))) < 6:
            from .speech import write_wav

            Path(wav_dir).mkdir(parents=True, exist_ok=True)
            write_wav(Path(wav_dir) / f"{r['id']:06d}-original.wav", a)
            write_wav(Path(wav_dir) / f"{r['id']:06d}-vocoded.wav", y)
    sil = voc(np.full((1, 50), silence, dtype=np.int64))[0]
    silence_rms = float(np.sqrt(np.mean(sil.astype(np.float64) ** 2)))
    silence_peak = float(np.abs(sil).max())

    left = int(voc_manifest["leftContextUnits"])
    rng = np.random.default_rng(0)
    chunk = rng.integers(0, voc_manifest["unitCount"], (1, left + 4))
    for _ in range(20):
        voc(chunk)
    times = []
    for _ in range(300):
        t = time.perf_counter()
        voc(chunk)
        times.append(time.perf_counter() - t)
    ms = float(np.median(times) * 1000)
    p99 = float(np.percentile(times, 99) * 1000)
    mcd_all = np.concatenate(mcd)
    return {
        "heldoutUtterances": len(held),
        "heldoutUnits": total,
        "resynthUnitAgreement": round(same / total, 4),
        "resynthUnitAgreementClean": round(same_clean / max(total_clean, 1), 4),
        "mcdDb": round(float(mcd_all.mean()), 3),
        "mcdDbClean": round(float(np.concatenate(mcd_clean).mean()), 3) if mcd_clean else None,
        "mcdNote": "frame-aligned (no DTW), 40-band log-mel amplitude of the tokenizer front end (floor 1e-6 "
                   "power) -> orthonormal DCT c1..c12, "
                   "non-silence units only; against the corpus audio incl. its noise/G.711 augmentation",
        "logMelL1": round(float(np.concatenate(l1).mean()), 4),
        "silenceRms": round(silence_rms, 6),
        "silencePeak": round(silence_peak, 6),
        "speed": {"chunkUnits": 4, "inputUnits": left + 4, "threads": 1, "batch": 1,
                  "msPerChunkMedian": round(ms, 3), "msPerChunkP99": round(p99, 3),
                  "realtimeStreamsPerCore": round(160.0 / ms, 1)},
    }


def default_vocoder(corpus: Path, tokenizer: Path, out: Path, work: Path, *, max_minutes: float = 15.0,
                    seed: int = 0, channels: int = 64, resblock: str = "2", progress: bool = True) -> dict:
    """`vocoder` with the defaults into `work`, then export to `out` and add `recipe` to the manifest."""
    import shutil

    from duet_export.manifest import write_manifest
    from duet_export.vocoder import export_unit_hifigan

    t0 = time.time()
    summary = train_vocoder(corpus, tokenizer, work, max_minutes=max_minutes, seed=seed, channels=channels,
                            resblock=resblock, progress=progress)
    staging = Path(work) / "export"
    if staging.exists():
        shutil.rmtree(staging)
    export_unit_hifigan(Path(summary["checkpoint"]), Path(summary["config"]), staging, progress=progress)
    figures = measure_vocoder(staging, tokenizer, corpus, progress=progress)
    m = json.loads((staging / "manifest.json").read_text())
    m["source"]["checkpoint"] = _display_path(Path(summary["checkpoint"]))
    m["source"]["config"] = _display_path(Path(summary["config"]))
    m["recipe"] = {
        "recipe": RECIPE,
        "command": "tools/recipe/duet-recipe default-vocoder",
        "corpus": _display_path(corpus),
        "tokenizer": _display_path(tokenizer),
        "tokenizerSha256": json.loads((Path(tokenizer) / "manifest.json").read_text())["sha256"],
        **summary["settings"],
        "steps": summary["steps"],
        "trainMinutes": summary["trainMinutes"],
        "trainUtterances": summary["trainUtterances"],
        "trainSeconds": summary["trainSeconds"],
        "finalLoss": summary["finalLoss"],
        "heldout": figures,
        "seconds": round(time.time() - t0, 1),
    }
    write_manifest(staging, m)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(staging, out)
    return m
