"""`hubert-units` command: Hugging Face HubertModel + k-means centroids -> `duet.units/1` ONNX
(docs/units-contract.md).

audio [B, S] (16 kHz, S a multiple of 640) -> right pad -> HuBERT conv features -> projection
-> positional conv -> first L transformer layers -> mean of each `pool` consecutive frames
(pool = 640 / conv hop: 2 for a 50 Hz HuBERT, 1 for a 25 Hz one) -> argmin over the
centroids of the squared distance -> units [B, S / 640] int64.

Exported with torch.onnx.export (TorchScript exporter: the dynamo one needs onnxscript, which
the environment does not have), opset 17, IR version <= 10, dynamic B and S.
"""

from __future__ import annotations

import math
import sys
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import EXPORTER

FORMAT = "duet.units"
VERSION = 1
SAMPLE_RATE = 16000
UNIT_RATE = 25
SAMPLES_PER_UNIT = SAMPLE_RATE // UNIT_RATE  # 640
OPSET = 17
MAX_IR_VERSION = 10
# Left contexts tried by the measurement (units of 40 ms): 0.16 s .. 8 s.
LEFT_CONTEXT_CANDIDATES_UNITS = (4, 8, 12, 25, 50, 100, 200)


class UnitsError(ValueError):
    """The checkpoint, layer or centroids cannot make a duet.units/1 model."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class HubertGeometry:
    hop: int  # samples per HuBERT frame (product of the conv strides)
    receptive: int  # samples seen by one frame of the conv feature encoder
    pool: int  # frames averaged into one unit
    pad: int  # zeros appended so that S samples give exactly S / hop frames
    layers: int
    hidden: int


def hubert_geometry(config) -> HubertGeometry:
    model_type = getattr(config, "model_type", None)
    if model_type != "hubert":
        raise UnitsError(f"model_type is {model_type!r}; hubert-units needs a Hugging Face HubertModel checkpoint")
    strides, kernels = list(config.conv_stride), list(config.conv_kernel)
    hop, receptive = 1, 1
    for k, s in zip(kernels, strides):
        receptive += (k - 1) * hop
        hop *= s
    if SAMPLES_PER_UNIT % hop != 0:
        raise UnitsError(
            f"the conv feature encoder's hop is {hop} samples (strides {strides}); it must divide "
            f"{SAMPLES_PER_UNIT} (one 25 Hz unit at 16 kHz) so that whole frames pool into units"
        )
    # frames(S + pad) = floor((S + pad - receptive) / hop) + 1 = S / hop for S a multiple of hop.
    pad = max(0, receptive - hop)
    return HubertGeometry(hop=hop, receptive=receptive, pool=SAMPLES_PER_UNIT // hop, pad=pad,
                          layers=config.num_hidden_layers, hidden=config.hidden_size)


def check_layer(layer: int, geometry: HubertGeometry) -> None:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= geometry.layers:
        raise UnitsError(f"--layer {layer!r} is out of range: this checkpoint has transformer layers 1..{geometry.layers}")


def load_centroids(path: Path, geometry: HubertGeometry) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"centroids file {path} does not exist")
    try:
        centroids = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a refusal
        raise UnitsError(f"{path} is not a readable .npy array ({e})") from None
    if centroids.ndim != 2:
        raise UnitsError(f"centroids must be a 2-D array [K, {geometry.hidden}], got shape {centroids.shape}")
    if centroids.shape[1] != geometry.hidden:
        raise UnitsError(
            f"centroids have dim {centroids.shape[1]} but the checkpoint's hidden size is {geometry.hidden} "
            f"(centroids shape {centroids.shape}, expected [K, {geometry.hidden}])"
        )
    if centroids.shape[0] < 2:
        raise UnitsError(f"need at least 2 centroids, got {centroids.shape[0]}")
    if not np.issubdtype(centroids.dtype, np.floating) or not np.isfinite(centroids).all():
        raise UnitsError("centroids must be finite floating-point numbers")
    return centroids.astype(np.float32)


def load_hubert(checkpoint: Path):
    import torch
    from transformers import HubertModel

    model = HubertModel.from_pretrained(str(checkpoint), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def _fold_parametrizations(module) -> None:
    """Bakes weight-norm parametrizations (HuBERT's positional conv) into plain weights."""
    from torch.nn.utils import parametrize

    for sub in module.modules():
        if parametrize.is_parametrized(sub):
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)


def units_module(model, layer: int, centroids: np.ndarray):
    """The torch pipeline that is exported (and the reference the tests compare with)."""
    import torch
    import torch.nn.functional as F

    geometry = hubert_geometry(model.config)
    check_layer(layer, geometry)
    stable = bool(model.config.do_stable_layer_norm)

    class HubertUnits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_extractor = model.feature_extractor
            self.feature_projection = model.feature_projection
            self.pos_conv_embed = model.encoder.pos_conv_embed
            self.encoder_norm = None if stable else model.encoder.layer_norm
            self.layers = torch.nn.ModuleList(list(model.encoder.layers)[:layer])
            c = torch.tensor(centroids, dtype=torch.float32)
            self.register_buffer("centroids_t", c.t().contiguous())  # [dim, K]
            self.register_buffer("centroid_sq", (c * c).sum(-1))  # [K]

        def features(self, audio):
            x = F.pad(audio, (0, geometry.pad))
            h = self.feature_extractor(x).transpose(1, 2)
            h = self.feature_projection(h)
            h = h + self.pos_conv_embed(h)
            if self.encoder_norm is not None:
                h = self.encoder_norm(h)
            for lyr in self.layers:
                h = lyr(h, attention_mask=None)
            if geometry.pool > 1:
                h = h.reshape(h.shape[0], -1, geometry.pool, h.shape[2]).mean(dim=2)
            return h  # [B, S / 640, dim]

        def forward(self, audio):
            h = self.features(audio)
            # |h - c|^2 = |h|^2 - 2 h.c + |c|^2; |h|^2 does not change the argmin.
            dist = self.centroid_sq - 2.0 * torch.matmul(h, self.centroids_t)
            return torch.argmin(dist, dim=-1)

    return HubertUnits().eval()


def export_units_onnx(module, out_dir: Path) -> Path:
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    tmp = out_dir / "model.onnx.tmp"
    dummy = torch.zeros(1, 4 * SAMPLES_PER_UNIT)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, (dummy,), str(tmp), opset_version=OPSET, dynamo=False,
            input_names=["audio"], output_names=["units"],
            dynamic_axes={"audio": {0: "batch", 1: "samples"}, "units": {0: "batch", 1: "units"}},
        )
    finalize_onnx(tmp, path, "duet.units/1 (docs/units-contract.md)", FORMAT)
    return path


def finalize_onnx(tmp: Path, path: Path, doc: str, fmt: str) -> None:
    """IR version <= 10, default domain only, metadata; checked with onnx.checker; atomic."""
    import os

    import onnx
    from onnx import helper

    model = onnx.load(str(tmp))
    domains = {o.domain for o in model.opset_import} - {"", "ai.onnx"}
    if domains:
        raise UnitsError(f"export produced non-default opset domains {sorted(domains)}")
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
    model.producer_name, model.producer_version = EXPORTER.split()
    model.doc_string = doc
    helper.set_model_props(model, {"duet.format": fmt, "duet.version": "1"})
    onnx.checker.check_model(model)
    onnx.save_model(model, str(tmp))
    os.replace(tmp, path)


def read_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32 from a .npy (float, [-1, 1]) or a 16-bit PCM .wav."""
    path = Path(path)
    if path.suffix == ".npy":
        audio = np.load(path, allow_pickle=False).astype(np.float32)
        if audio.ndim != 1:
            raise UnitsError(f"{path}: expected 1-D mono audio, got shape {audio.shape}")
        return audio
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise UnitsError(f"{path}: need 16 kHz mono 16-bit PCM WAV, got {w.getframerate()} Hz, "
                             f"{w.getnchannels()} channel(s), {8 * w.getsampwidth()}-bit")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def streaming_agreement(run, audio: np.ndarray, chunk_units: int, left_units: int) -> float:
    """Fraction of units equal between offline tokenisation of `audio` and the runtime's
    streaming: chunk k of `chunk_units` units is tokenised with up to `left_units` units of left
    context and no right context, keeping its last `chunk_units` units. `run(audio[1, S])`."""
    n = len(audio) // SAMPLES_PER_UNIT
    n -= n % chunk_units
    audio = audio[: n * SAMPLES_PER_UNIT]
    offline = run(audio[None])[0]
    same = 0
    for start in range(0, n, chunk_units):
        lo = max(0, start - left_units) * SAMPLES_PER_UNIT
        hi = (start + chunk_units) * SAMPLES_PER_UNIT
        got = run(audio[None, lo:hi])[0][-chunk_units:]
        same += int((got == offline[start : start + chunk_units]).sum())
    return same / n


def measure_left_context(run, audio: np.ndarray, chunk_units: int, target: float,
                         candidates=LEFT_CONTEXT_CANDIDATES_UNITS, progress: bool = True) -> dict:
    """Smallest candidate left context (units) whose streaming agreement reaches `target`
    (else the best one). Returns {leftContextUnits, agreement, sweep}."""
    from tqdm import tqdm

    n_units = len(audio) // SAMPLES_PER_UNIT
    usable = [c for c in candidates if c < n_units] or [max(0, n_units - chunk_units)]
    sweep = []
    for left in tqdm(usable, desc="left context", unit="ctx", file=sys.stderr, disable=not progress):
        sweep.append({"leftContextUnits": left, "agreement": streaming_agreement(run, audio, chunk_units, left)})
        if sweep[-1]["agreement"] >= target:
            break
    ok = [s for s in sweep if s["agreement"] >= target]
    best = ok[0] if ok else max(sweep, key=lambda s: (s["agreement"], -s["leftContextUnits"]))
    return {"leftContextUnits": best["leftContextUnits"], "agreement": best["agreement"], "sweep": sweep,
            "reachedTarget": bool(ok)}


def ort_runner(model_path: Path, threads: int = 1):
    from .contract import ort_session

    session = ort_session(model_path, threads=threads)
    return lambda audio: session.run(["units"], {"audio": np.ascontiguousarray(audio, dtype=np.float32)})[0]


def export_hubert_units(
    checkpoint: Path,
    layer: int,
    centroids_path: Path,
    out: Path,
    *,
    left_context_ms: int | None = None,
    measure_audio: Path | None = None,
    measure_seconds: float = 8.0,
    chunk_units: int = 4,
    target_agreement: float = 0.95,
    progress: bool = True,
) -> Path:
    """Exports and returns the manifest path. Checkpoint type, layer and centroids are checked
    before any weight is read. Left context: `left_context_ms` when given (rounded up to whole
    units), else measured on the exported model (see measure_left_context)."""
    import torch
    import transformers
    from transformers import AutoConfig

    import onnx

    from .manifest import sha256_file, write_manifest

    checkpoint = Path(checkpoint).resolve()
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(f"{checkpoint} has no config.json (expected a Hugging Face HubertModel checkpoint)")
    config = AutoConfig.from_pretrained(str(checkpoint))
    geometry = hubert_geometry(config)
    check_layer(layer, geometry)
    centroids = load_centroids(centroids_path, geometry)
    if chunk_units < 1:
        raise UnitsError(f"chunk units must be >= 1, got {chunk_units}")
    _log(f"exporting {checkpoint}: layer {layer}/{geometry.layers}, hidden {geometry.hidden}, hop {geometry.hop} "
         f"samples ({SAMPLE_RATE // geometry.hop} Hz), pooling {geometry.pool} frame(s) per unit, "
         f"{centroids.shape[0]} centroids, right pad {geometry.pad} samples")
    model = load_hubert(checkpoint)
    _fold_parametrizations(model)
    module = units_module(model, layer, centroids)
    model_path = export_units_onnx(module, out)
    run = ort_runner(model_path)

    if left_context_ms is not None:
        if left_context_ms < 0:
            raise UnitsError(f"--left-context-ms must be >= 0, got {left_context_ms}")
        left_units = math.ceil(left_context_ms * UNIT_RATE / 1000)
        measurement = {"method": "given", "chunkUnits": chunk_units}
    else:
        if measure_audio is not None:
            audio, measured_on = read_audio(measure_audio), str(Path(measure_audio).resolve())
        else:
            rng = np.random.default_rng(0)
            audio = (0.1 * rng.standard_normal(int(measure_seconds * SAMPLE_RATE))).astype(np.float32)
            measured_on = f"seeded white noise, {measure_seconds:g} s (pass --measure-audio with speech for a real figure)"
        if len(audio) < 2 * chunk_units * SAMPLES_PER_UNIT:
            raise UnitsError(f"measurement audio is too short ({len(audio)} samples)")
        m = measure_left_context(run, audio, chunk_units, target_agreement, progress=progress)
        left_units = m["leftContextUnits"]
        measurement = {"method": "measured", "chunkUnits": chunk_units, "targetAgreement": target_agreement,
                       "agreement": m["agreement"], "reachedTarget": m["reachedTarget"], "sweep": m["sweep"],
                       "audio": measured_on}
        _log(f"left context {left_units} units ({left_units * 40} ms): streaming agreement {m['agreement']:.4f} "
             f"(target {target_agreement}{'' if m['reachedTarget'] else ', NOT reached'})")

    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_path.name,
        "sha256": sha256_file(model_path),
        "sampleRate": SAMPLE_RATE,
        "unitRate": UNIT_RATE,
        "samplesPerUnit": SAMPLES_PER_UNIT,
        "unitCount": int(centroids.shape[0]),
        "leftContextSamples": left_units * SAMPLES_PER_UNIT,
        "leftContext": measurement,
        "architecture": {
            "family": "hubert",
            "layer": layer,
            "layers": geometry.layers,
            "hidden": geometry.hidden,
            "frameHop": geometry.hop,
            "framesPerUnit": geometry.pool,
            "rightPadSamples": geometry.pad,
            "featExtractNorm": getattr(config, "feat_extract_norm", None),
            "stableLayerNorm": bool(getattr(config, "do_stable_layer_norm", False)),
        },
        "source": {
            "checkpoint": str(checkpoint),
            "centroids": str(Path(centroids_path).resolve()),
            "centroidsSha256": sha256_file(Path(centroids_path)),
            "exporter": EXPORTER,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
        },
    }
    path = write_manifest(Path(out), manifest)
    _log(f"wrote {model_path} and {path}")
    return path


def write_tiny_hubert(out_dir: Path, *, units: int = 24, hidden: int = 32, seed: int = 0) -> tuple[Path, Path]:
    """A small random-weight HubertModel (standard 50 Hz conv encoder, 3 layers) and random
    k-means centroids, for tests of the runtimes (no model hub here)."""
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=hidden, num_hidden_layers=3, num_attention_heads=4, intermediate_size=2 * hidden,
        conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    )
    out_dir = Path(out_dir)
    checkpoint = out_dir / "hubert"
    HubertModel(config).eval().save_pretrained(str(checkpoint))
    centroids = out_dir / "centroids.npy"
    np.save(centroids, np.random.default_rng(seed).standard_normal((units, hidden)).astype(np.float32))
    return checkpoint, centroids
