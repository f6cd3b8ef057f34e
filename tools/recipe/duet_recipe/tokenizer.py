"""`tokenizer`: the default speech-units tokenizer, log-mel + k-means -> duet.units/1 ONNX.

Model (docs/units-contract.md), all plain ONNX ops:
  audio [B, S] -> left-pad 240 zeros -> Conv1d(1, 2*201, kernel 400, stride 160) whose rows are
  the Hann-windowed DFT basis (n_fft 400: 25 ms window, 10 ms hop) -> power re^2 + im^2 ->
  mel filterbank (40 HTK mel bands, 20 Hz .. 8 kHz) -> log(mel + 1e-6) -> mean of the 4 frames
  of each 40 ms unit (AveragePool) -> (h - mean) / std (global, from the training corpus) ->
  argmin_k |c_k|^2 - 2 h.c_k -> units [B, S / 640] int64.

Frame i covers samples 160 i - 240 .. 160 i + 160, so unit j (frames 4j..4j+3) covers
640 j - 240 .. 640 (j + 1): no right context beyond its own 640 samples and 240 samples of left
context (rounded up: leftContextSamples = 640). With that context streaming equals offline
tokenisation up to float rounding; the manifest records the measured agreement.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import RECIPE

SAMPLE_RATE = 16000
SAMPLES_PER_UNIT = 640
UNIT_RATE = 25
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 400
FRAMES_PER_UNIT = SAMPLES_PER_UNIT // HOP  # 4
LEFT_PAD = WINDOW - HOP  # 240: frame i ends at sample 160 (i + 1)
LOG_FLOOR = 1e-6
F_MIN, F_MAX = 20.0, 8000.0


class TokenizerError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int = N_FFT, sr: int = SAMPLE_RATE, fmin: float = F_MIN,
                   fmax: float = F_MAX) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular HTK-mel filters, each normalised to unit area (slaney-style)."""
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
        if fb[m].sum() == 0:  # narrower than a bin: take the nearest bin
            fb[m, int(np.argmin(np.abs(freqs - mid)))] = 1.0
        fb[m] *= 2.0 / (hi - lo)
    return fb.astype(np.float32)


def dft_basis() -> np.ndarray:
    """[2 * (N_FFT // 2 + 1), 1, WINDOW]: Hann-windowed cos rows then -sin rows."""
    n = np.arange(WINDOW)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW)  # periodic Hann
    k = np.arange(N_FFT // 2 + 1)[:, None]
    ang = 2 * np.pi * k * n[None, :] / N_FFT
    basis = np.concatenate([np.cos(ang) * window, -np.sin(ang) * window], axis=0)
    return basis[:, None, :].astype(np.float32)


def make_module(n_mels: int, mean=None, std=None, centroids=None):
    """The torch module; `features(audio)` gives normalised [B, S/640, n_mels] features,
    `forward(audio)` the units. Without centroids only `features` works (used for fitting)."""
    import torch
    import torch.nn.functional as F

    class LogMelUnits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("basis", torch.from_numpy(dft_basis()))
            self.register_buffer("mel", torch.from_numpy(mel_filterbank(n_mels)))  # [M, bins]
            self.register_buffer("mean", torch.zeros(n_mels) if mean is None else torch.tensor(np.array(mean, dtype=np.float32)))
            self.register_buffer("inv_std", torch.ones(n_mels) if std is None else torch.tensor(1.0 / np.array(std, dtype=np.float32)))
            if centroids is not None:
                c = torch.tensor(np.array(centroids, dtype=np.float32))
                self.register_buffer("centroids_t", c.t().contiguous())  # [M, K]
                self.register_buffer("centroid_sq", (c * c).sum(-1))  # [K]
            self.bins = N_FFT // 2 + 1

        def logmel_units(self, audio):
            return self.pooled_logmel(F.pad(audio, (LEFT_PAD, 0)))  # [B, S + 240]

        def pooled_logmel(self, framed):
            """Log-mel per unit of audio whose first frame starts at sample 0 (the unit's 240
            samples of left context first)."""
            x = framed.unsqueeze(1)  # [B, 1, S']
            spec = F.conv1d(x, self.basis, stride=HOP)  # [B, 2 bins, frames]
            re, im = spec[:, : self.bins], spec[:, self.bins :]
            power = re * re + im * im
            mel = torch.matmul(self.mel, power)  # [B, M, T]
            logmel = torch.log(mel + LOG_FLOOR)
            pooled = F.avg_pool1d(logmel, FRAMES_PER_UNIT, FRAMES_PER_UNIT)  # [B, M, S / 640]
            return pooled.transpose(1, 2)  # [B, N, M]

        def features(self, audio):
            return self.normalise(self.logmel_units(audio))

        def normalise(self, pooled):
            return (pooled - self.mean) * self.inv_std

        def forward(self, audio):
            return self.assign(self.features(audio))

        def assign(self, h):
            dist = self.centroid_sq - 2.0 * torch.matmul(h, self.centroids_t)
            return torch.argmin(dist, dim=-1)

    return LogMelUnits().eval()


def chunk_module(module):
    """The tokenizer as the runtime runs it per chunk (`chunk.onnx`): the input starts with
    whole units of left context (>= 1), of which only the last 240 samples are a frame's; so it
    skips the rest and the zero padding, and returns the units from the second on: exactly
    `module(audio)[:, 1:]` (the left context unit is not computed)."""
    import torch

    class ChunkUnits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = module

        def forward(self, audio):
            m = self.m
            return m.assign(m.normalise(m.pooled_logmel(audio[:, SAMPLES_PER_UNIT - LEFT_PAD:])))  # [B, S - 400]

    return ChunkUnits().eval()


CHUNK_TRIMMED_UNITS = 1


def export_chunk_model(module, out: Path, run_full) -> dict:
    """Exports `chunk.onnx` and checks it against the one-shot model (`run_full`) on seeded
    noise and silence at several lengths; returns the manifest's `chunkModel` entry."""
    from duet_export.manifest import sha256_file
    from duet_export.units import export_units_onnx

    staging = Path(out) / "chunk-export"
    path = export_units_onnx(chunk_module(module), staging)
    final = Path(out) / "chunk.onnx"
    path.replace(final)
    staging.rmdir()
    run = _ort_run(final)
    rng = np.random.default_rng(3)
    same = total = 0
    for n in (2, 5, 9, 33):
        for audio in (rng.standard_normal((2, n * SAMPLES_PER_UNIT)).astype(np.float32) * 0.1,
                      np.zeros((1, n * SAMPLES_PER_UNIT), np.float32)):
            got, want = run(audio), run_full(audio)[:, CHUNK_TRIMMED_UNITS:]
            if got.shape != want.shape:
                raise TokenizerError(f"chunk model gives {got.shape} units for {audio.shape} samples, "
                                     f"expected {want.shape}")
            same += int((got == want).sum())
            total += want.size
    # Same frames and arithmetic: only float rounding could flip a near-tied unit.
    if same < 0.99 * total:
        raise TokenizerError(f"chunk model agrees with the one-shot model on {same}/{total} units")
    return {"model": final.name, "sha256": sha256_file(final), "trimmedUnits": CHUNK_TRIMMED_UNITS,
            "minLeftContextSamples": SAMPLES_PER_UNIT}


# ---------------------------------------------------------------- k-means

def kmeans_pp_init(x, k: int, gen):
    """k-means++ seeding on x [N, D] (torch), seeded by `gen`."""
    import torch

    n = x.shape[0]
    centers = [x[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / n)
        idx = torch.multinomial(probs, 1, generator=gen)
        centers.append(x[idx].squeeze(0))
        d2 = torch.minimum(d2, ((x - centers[-1]) ** 2).sum(1))
    return torch.stack(centers)


def _assign(x, c):
    d = (c * c).sum(1)[None, :] - 2.0 * x @ c.t()
    best = d.argmin(1)
    return best, (d.gather(1, best[:, None]).squeeze(1) + (x * x).sum(1))


def minibatch_kmeans(x: np.ndarray, k: int, seed: int = 0, batch: int = 4096, steps: int = 400,
                     refine: int = 10, progress: bool = True) -> tuple[np.ndarray, dict]:
    """Mini-batch k-means (Sculley 2010: per-centre learning rate 1 / count) from k-means++
    seeds, then `refine` full Lloyd passes; empty clusters are re-seeded from the points worst
    served. Returns (centroids [k, D] float32, stats)."""
    import torch
    from tqdm import tqdm

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    n = xt.shape[0]
    if n < k:
        raise TokenizerError(f"{n} feature vectors cannot fit {k} clusters: synthesise more speech")
    gen = torch.Generator().manual_seed(seed)
    init_pool = xt[torch.randperm(n, generator=gen)[: min(n, 50 * k)]]
    c = kmeans_pp_init(init_pool, k, gen).clone()
    counts = torch.zeros(k)
    bar = tqdm(total=steps + refine, desc="k-means", unit="step", file=sys.stderr, disable=not progress)
    for _ in range(steps):
        xb = xt[torch.randint(n, (min(batch, n),), generator=gen)]
        a, _ = _assign(xb, c)
        ones = torch.ones_like(a, dtype=torch.float32)
        bc = torch.zeros(k).index_add_(0, a, ones)
        bs = torch.zeros_like(c).index_add_(0, a, xb)
        counts += bc
        hit = bc > 0
        lr = (bc[hit] / counts[hit])[:, None]
        c[hit] = (1 - lr) * c[hit] + lr * (bs[hit] / bc[hit][:, None])
        bar.update()
    for _ in range(refine):
        a, d = _assign(xt, c)
        cnt = torch.zeros(k).index_add_(0, a, torch.ones(n))
        sums = torch.zeros_like(c).index_add_(0, a, xt)
        full = cnt > 0
        c[full] = sums[full] / cnt[full][:, None]
        empty = torch.nonzero(~full).flatten()
        if len(empty):  # re-seed at the points farthest from their centre
            far = torch.topk(d, len(empty)).indices
            c[empty] = xt[far]
        bar.update()
    bar.close()
    a, d = _assign(xt, c)
    used = int(torch.unique(a).numel())
    return c.numpy().astype(np.float32), {"batchSize": batch, "steps": steps, "refinePasses": refine,
                                          "inertia": round(float(d.clamp_min(0).mean()), 4), "usedOnTrain": used}


# ---------------------------------------------------------------- corpus features

def load_split(corpus: Path, records: list[dict], progress: bool, desc: str) -> list[np.ndarray]:
    from tqdm import tqdm

    from .speech import read_wav

    out = []
    for r in tqdm(records, desc=desc, unit="utt", file=sys.stderr, disable=not progress):
        a = read_wav(Path(corpus) / r["file"])
        n = (len(a) // SAMPLES_PER_UNIT) * SAMPLES_PER_UNIT
        if n:
            out.append(a[:n])
    return out


def corpus_logmel(module, audios: list[np.ndarray], progress: bool) -> np.ndarray:
    import torch
    from tqdm import tqdm

    feats = []
    with torch.no_grad():
        for a in tqdm(audios, desc="features", unit="utt", file=sys.stderr, disable=not progress):
            feats.append(module.logmel_units(torch.from_numpy(a)[None])[0].numpy())
    return np.concatenate(feats, axis=0)


# ---------------------------------------------------------------- measurement

def agreement_counts(run, audio: np.ndarray, chunk_units: int, left_units: int, offline=None) -> tuple[int, int]:
    """(same, total): offline units of `audio` vs the runtime's streaming (chunks of
    `chunk_units` units, each with up to `left_units` units of left context, last units kept;
    a final partial chunk is tokenised the same way)."""
    n = len(audio) // SAMPLES_PER_UNIT
    if offline is None:
        offline = run(audio[None, : n * SAMPLES_PER_UNIT])[0]
    same = 0
    for start in range(0, n, chunk_units):
        end = min(n, start + chunk_units)
        lo = max(0, start - left_units) * SAMPLES_PER_UNIT
        got = run(audio[None, lo : end * SAMPLES_PER_UNIT])[0][-(end - start):]
        same += int((got == offline[start:end]).sum())
    return same, n


def _display_path(path: Path) -> str:
    """Relative to the repository when inside it (the committed manifest names no local home)."""
    repo = Path(__file__).resolve().parents[3]
    try:
        return str(Path(path).resolve().relative_to(repo))
    except ValueError:
        return str(Path(path).resolve())


def _ort_run(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda audio: sess.run(["units"], {"audio": np.ascontiguousarray(audio, dtype=np.float32)})[0]


# ---------------------------------------------------------------- the command

def train_tokenizer(corpus: Path, out: Path, *, units: int = 128, seed: int = 0, mels: int = 40,
                    kmeans_steps: int = 400, kmeans_batch: int = 4096, chunk_units: int = 4,
                    target_agreement: float = 0.95, progress: bool = True) -> dict:
    """Fits normalisation + k-means on the corpus' train split, exports model.onnx + manifest.json
    to `out`, measures on the held-out split. Returns the manifest."""
    import onnx
    import onnxruntime
    import torch

    from duet_export.manifest import sha256_file, write_manifest
    from duet_export.units import export_units_onnx

    from .speech import read_index

    t0 = time.time()
    if units < 2:
        raise TokenizerError(f"--units must be >= 2, got {units}")
    corpus = Path(corpus)
    records = read_index(corpus)
    train = [r for r in records if r["split"] == "train"]
    held = [r for r in records if r["split"] == "heldout"]
    if not held:  # tiny corpora: hold out the last utterance
        train, held = records[:-1], records[-1:]
    if not train:
        raise TokenizerError(f"{corpus}: need at least 2 utterances")
    torch.manual_seed(seed)
    train_audio = load_split(corpus, train, progress, "load train")
    held_audio = load_split(corpus, held, progress, "load held-out")

    plain = make_module(mels)
    raw = corpus_logmel(plain, train_audio, progress)
    mean = raw.mean(0)
    std = raw.std(0) + 1e-5
    x = (raw - mean) / std
    _log(f"{x.shape[0]} training units ({x.shape[0] / UNIT_RATE / 3600:.3f} h) x {mels} log-mel dims; fitting k={units}")
    centroids, km = minibatch_kmeans(x, units, seed=seed, batch=kmeans_batch, steps=kmeans_steps, progress=progress)

    module = make_module(mels, mean, std, centroids)
    model_path = export_units_onnx(module, Path(out))
    run = _ort_run(model_path)

    # held-out: ONNX vs torch, distinct units, streaming vs offline
    from tqdm import tqdm

    offline, torch_same, total = [], 0, 0
    with torch.no_grad():
        for a in held_audio:
            o = run(a[None])[0]
            t = module(torch.from_numpy(a)[None])[0].numpy()
            offline.append(o)
            torch_same += int((o == t).sum())
            total += len(o)
    all_units = np.concatenate(offline)
    hist = np.bincount(all_units, minlength=units) / len(all_units)
    nz = hist[hist > 0]
    perplexity = float(np.exp(-(nz * np.log(nz)).sum()))

    receptive_left = LEFT_PAD
    left_units = math.ceil(receptive_left / SAMPLES_PER_UNIT)
    sweep = []
    for lu in tqdm(sorted({0, left_units, left_units + 1}), desc="streaming", unit="ctx", file=sys.stderr,
                   disable=not progress):
        same = sum(agreement_counts(run, a, chunk_units, lu, o)[0] for a, o in zip(held_audio, offline))
        sweep.append({"leftContextUnits": lu, "agreement": round(same / total, 6)})
    agreement = next(s["agreement"] for s in sweep if s["leftContextUnits"] == left_units)
    silence = int(run(np.zeros((1, 8 * SAMPLES_PER_UNIT), np.float32))[0][-1])
    chunk_model = export_chunk_model(module, Path(out), run)
    held_seconds = sum(len(a) for a in held_audio) / SAMPLE_RATE
    train_seconds = sum(len(a) for a in train_audio) / SAMPLE_RATE
    corpus_settings = json.loads((corpus / "corpus.json").read_text()) if (corpus / "corpus.json").exists() else {}

    manifest = {
        "format": "duet.units",
        "version": 1,
        "model": model_path.name,
        "sha256": sha256_file(model_path),
        "sampleRate": SAMPLE_RATE,
        "unitRate": UNIT_RATE,
        "samplesPerUnit": SAMPLES_PER_UNIT,
        "unitCount": int(units),
        "leftContextSamples": left_units * SAMPLES_PER_UNIT,
        "leftContext": {
            "method": "measured",
            "receptiveFieldLeftSamples": receptive_left,
            "receptiveFieldRightSamples": 0,
            "note": "leftContextSamples is the exact left receptive field (240 samples) rounded up to whole units; "
                    "agreement measured at it",
            "chunkUnits": chunk_units,
            "targetAgreement": target_agreement,
            "agreement": agreement,
            "reachedTarget": bool(agreement >= target_agreement),
            "sweep": sweep,
            "audio": f"{len(held_audio)} held-out recipe utterances ({held_seconds:.1f} s, {total} units) "
                     f"of the corpus",
        },
        "chunkModel": chunk_model,
        "silenceUnit": silence,
        "architecture": {
            "family": "logmel-kmeans",
            "windowSamples": WINDOW,
            "hopSamples": HOP,
            "nFft": N_FFT,
            "window": "hann (periodic)",
            "melBins": mels,
            "melScale": "htk",
            "fMin": F_MIN,
            "fMax": F_MAX,
            "logFloor": LOG_FLOOR,
            "framesPerUnit": FRAMES_PER_UNIT,
            "leftPadSamples": LEFT_PAD,
            "normalisation": "global per-dimension mean/std of the training corpus' pooled log-mel",
        },
        "recipe": {
            "seed": seed,
            "units": units,
            "kmeans": km,
            "corpus": {
                "path": _display_path(corpus),
                "utterances": len(records),
                "trainUtterances": len(train_audio),
                "heldoutUtterances": len(held_audio),
                "trainHours": round(train_seconds / 3600, 4),
                "heldoutSeconds": round(held_seconds, 1),
                "trainUnits": int(x.shape[0]),
                "seed": corpus_settings.get("seed"),
                "voices": len({r["voice"] for r in records}),
                "augmentation": {k: sum(1 for r in records if r["augmentation"]["kind"] == k)
                                 for k in dict.fromkeys(r["augmentation"]["kind"] for r in records)},
            },
            "heldout": {
                "distinctUnits": int((hist > 0).sum()),
                "unitPerplexity": round(perplexity, 2),
                "onnxVsTorchAgreement": round(torch_same / total, 6),
            },
            "seconds": None,
        },
        "source": {
            "exporter": RECIPE,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    manifest["recipe"]["seconds"] = round(time.time() - t0, 1)
    path = write_manifest(Path(out), manifest)
    _log(f"wrote {model_path} ({model_path.stat().st_size / 1e6:.2f} MB) and {path}: streaming agreement "
         f"{agreement:.4f} at {left_units * SAMPLES_PER_UNIT} samples of left context; "
         f"{manifest['recipe']['heldout']['distinctUnits']}/{units} units used on held-out speech")
    return manifest
