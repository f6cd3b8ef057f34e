"""`unit-hifigan` / `tiny-hifigan` commands: the unit HiFi-GAN generator of
facebookresearch/speech-resynthesis (`CodeGenerator`, unit embedding -> HiFi-GAN generator)
-> `duet.vocoder/1` ONNX (docs/units-contract.md).

The generator is re-implemented here (no dependency on that repo) and loads its checkpoint
format: a torch file whose "generator" entry is the state dict (`dict.weight`,
`conv_pre.weight_g/_v`, `ups.N.weight_g/_v`, `resblocks.N.convs1.M.weight_g/_v` ...,
`conv_post...`) plus its JSON config. Weight norm is folded (w = g * v / |v|, norm over all
dims but 0, as `torch.nn.utils.weight_norm(dim=0)`) before export. Speaker and f0
conditioning are refused.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import EXPORTER
from .units import OPSET, SAMPLE_RATE, SAMPLES_PER_UNIT, UNIT_RATE, finalize_onnx

FORMAT = "duet.vocoder"
VERSION = 1
LRELU_SLOPE = 0.1
# Chunked vs one-shot: the left context is the smallest one that keeps every chunk's samples
# within this of the one-shot output (audio in [-1, 1]; 1e-4 is -80 dBFS).
CHUNK_TOLERANCE = 1e-4
# The chunk model keeps this much audio before the chunk (for the runtime's cross-fade, 10 ms
# by default): 20 ms.
CHUNK_KEEP_SAMPLES = 320
# The chunk model must equal the one-shot model's output on what it keeps (float rounding only).
CHUNK_MODEL_TOLERANCE = 1e-5

# Config keys of CodeGenerator that add conditioning this contract has no input for.
_CONDITIONING_KEYS = ("f0", "multispkr", "lambda_commit", "lambda_commit_code", "f0_quantizer_path",
                      "f0_feats", "gst", "style")
_CONDITIONING_PREFIXES = ("spkr.", "encoder.", "vq.", "code_encoder.", "code_vq.", "quantizer.", "f0_dict.")


class VocoderError(ValueError):
    """The checkpoint or config is not a unit HiFi-GAN this exporter can express."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class HifiganConfig:
    num_embeddings: int
    embedding_dim: int
    upsample_initial_channel: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    sampling_rate: int

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    def resblock_reach(self) -> int:
        """One-sided reach of a stage's resblocks (the widest of them), in that stage's samples."""
        blocks = []
        for rk, dil in zip(self.resblock_kernel_sizes, self.resblock_dilation_sizes):
            half = (rk - 1) // 2
            if self.resblock == "1":
                blocks.append(sum(half * d + half for d in dil))
            else:
                blocks.append(sum(half * d for d in dil))
        return max(blocks)

    def receptive_units(self) -> tuple[float, float]:
        """Conservative one-sided receptive radius (left, right) of one output sample, in units."""
        radius = 3.0  # conv_pre, kernel 7, at the unit rate
        rate = 1
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            radius += math.ceil(k / u) / rate  # ConvTranspose1d: input taps per output sample
            rate *= u
            radius += self.resblock_reach() / rate
        radius += 3 / rate  # conv_post
        return radius, radius


def parse_config(raw: dict) -> HifiganConfig:
    """Checks a speech-resynthesis generator config; refuses conditioning and wrong geometry."""
    needs = [k for k in _CONDITIONING_KEYS if raw.get(k)]
    if needs:
        raise VocoderError(
            f"config needs conditioning this contract does not carry ({', '.join(f'{k}={raw[k]!r}' for k in needs)}); "
            "only unit-only generators (no speaker, no f0) are supported"
        )
    missing = [k for k in ("num_embeddings", "embedding_dim", "upsample_initial_channel", "upsample_rates",
                           "upsample_kernel_sizes", "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes")
               if k not in raw]
    if missing:
        raise VocoderError(f"config lacks {missing}")
    cfg = HifiganConfig(
        num_embeddings=int(raw["num_embeddings"]),
        embedding_dim=int(raw["embedding_dim"]),
        upsample_initial_channel=int(raw["upsample_initial_channel"]),
        upsample_rates=tuple(int(x) for x in raw["upsample_rates"]),
        upsample_kernel_sizes=tuple(int(x) for x in raw["upsample_kernel_sizes"]),
        resblock=str(raw["resblock"]),
        resblock_kernel_sizes=tuple(int(x) for x in raw["resblock_kernel_sizes"]),
        resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in raw["resblock_dilation_sizes"]),
        sampling_rate=int(raw.get("sampling_rate", SAMPLE_RATE)),
    )
    model_in = int(raw.get("model_in_dim", cfg.embedding_dim))
    if model_in != cfg.embedding_dim:
        raise VocoderError(f"model_in_dim ({model_in}) != embedding_dim ({cfg.embedding_dim}): the generator "
                           "expects extra conditioning channels (speaker/f0), which are not supported")
    if cfg.resblock not in ("1", "2"):
        raise VocoderError(f"resblock must be '1' or '2', got {cfg.resblock!r}")
    if cfg.sampling_rate != SAMPLE_RATE:
        raise VocoderError(f"sampling_rate is {cfg.sampling_rate}; the contract's vocoder runs at {SAMPLE_RATE} Hz")
    if len(cfg.upsample_rates) != len(cfg.upsample_kernel_sizes) or not cfg.upsample_rates:
        raise VocoderError("upsample_rates and upsample_kernel_sizes must be non-empty and of equal length")
    if len(cfg.resblock_kernel_sizes) != len(cfg.resblock_dilation_sizes) or not cfg.resblock_kernel_sizes:
        raise VocoderError("resblock_kernel_sizes and resblock_dilation_sizes must be non-empty and of equal length")
    want = 3 if cfg.resblock == "1" else 2
    if any(len(d) != want for d in cfg.resblock_dilation_sizes):
        raise VocoderError(f"resblock {cfg.resblock} takes {want} dilations per kernel, got {cfg.resblock_dilation_sizes}")
    if cfg.hop != SAMPLES_PER_UNIT:
        raise VocoderError(
            f"upsampling product {' * '.join(map(str, cfg.upsample_rates))} = {cfg.hop} samples per unit, but "
            f"{UNIT_RATE} Hz units at {SAMPLE_RATE} Hz need {SAMPLES_PER_UNIT} (a 50 Hz vocoder has 320)"
        )
    for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
        if k < u or (k - u) % 2:
            raise VocoderError(f"upsample kernel {k} with rate {u}: output length would not be exactly "
                               f"rate * input (need kernel >= rate and kernel - rate even)")
    if cfg.upsample_initial_channel % (2 ** len(cfg.upsample_rates)):
        raise VocoderError(f"upsample_initial_channel {cfg.upsample_initial_channel} is not divisible by "
                           f"2^{len(cfg.upsample_rates)}")
    return cfg


def _build_generator(cfg: HifiganConfig):
    import torch
    import torch.nn.functional as F
    from torch import nn

    def pad(k, d):
        return (k * d - d) // 2

    class ResBlock1(nn.Module):
        def __init__(self, ch, k, dil):
            super().__init__()
            self.convs1 = nn.ModuleList([nn.Conv1d(ch, ch, k, 1, dilation=d, padding=pad(k, d)) for d in dil])
            self.convs2 = nn.ModuleList([nn.Conv1d(ch, ch, k, 1, dilation=1, padding=pad(k, 1)) for _ in dil])

        def forward(self, x):
            for c1, c2 in zip(self.convs1, self.convs2):
                xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
                x = xt + x
            return x

    class ResBlock2(nn.Module):
        def __init__(self, ch, k, dil):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv1d(ch, ch, k, 1, dilation=d, padding=pad(k, d)) for d in dil])

        def forward(self, x):
            for c in self.convs:
                x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
            return x

    class UnitHifigan(nn.Module):
        """CodeGenerator.forward(code=units) of speech-resynthesis, without conditioning."""

        def __init__(self):
            super().__init__()
            c0 = cfg.upsample_initial_channel
            self.dict = nn.Embedding(cfg.num_embeddings, cfg.embedding_dim)
            self.conv_pre = nn.Conv1d(cfg.embedding_dim, c0, 7, 1, padding=3)
            self.ups = nn.ModuleList([
                nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
                for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
            ])
            block = ResBlock1 if cfg.resblock == "1" else ResBlock2
            self.resblocks = nn.ModuleList([
                block(c0 // 2 ** (i + 1), k, d)
                for i in range(len(self.ups))
                for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
            ])
            self.conv_post = nn.Conv1d(c0 // 2 ** len(self.ups), 1, 7, 1, padding=3)
            self.num_kernels = len(cfg.resblock_kernel_sizes)

        def forward(self, units):  # [B, N] int64 -> [B, N * hop]
            x = self.conv_pre(self.dict(units).transpose(1, 2))
            for i, up in enumerate(self.ups):
                x = up(F.leaky_relu(x, LRELU_SLOPE))
                xs = self.resblocks[i * self.num_kernels](x)
                for j in range(1, self.num_kernels):
                    xs = xs + self.resblocks[i * self.num_kernels + j](x)
                x = xs / self.num_kernels
            x = self.conv_post(F.leaky_relu(x))  # default slope 0.01, as the original
            return torch.tanh(x).squeeze(1)

    return UnitHifigan()


def fold_weight_norm(state: dict) -> dict:
    """`X.weight_g` + `X.weight_v` (torch.nn.utils.weight_norm, dim 0) or
    `X.parametrizations.weight.original0/1` -> `X.weight`. Plain weights pass through."""
    import torch

    out = {}
    for key, value in state.items():
        for g_suffix, v_suffix in ((".weight_g", ".weight_v"),
                                   (".parametrizations.weight.original0", ".parametrizations.weight.original1")):
            if key.endswith(g_suffix):
                base = key[: -len(g_suffix)]
                v = state.get(base + v_suffix)
                if v is None:
                    raise VocoderError(f"{key} has no matching {base + v_suffix}")
                g = value.float()
                v = v.float()
                norm = torch.linalg.vector_norm(v.reshape(v.shape[0], -1), dim=1).reshape(g.shape)
                out[base + ".weight"] = g * v / norm
                break
            if key.endswith(v_suffix):
                break
        else:
            out[key] = value
    return out


def load_generator(checkpoint: Path, config_path: Path):
    import torch

    config_path, checkpoint = Path(config_path), Path(checkpoint)
    if not config_path.exists():
        raise FileNotFoundError(f"config {config_path} does not exist")
    if not checkpoint.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    cfg = parse_config(json.loads(config_path.read_text()))
    try:
        blob = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, corrupt or not a torch file
        raise VocoderError(f"{checkpoint}: cannot read the checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    state = blob.get("generator", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise VocoderError(f"{checkpoint}: expected a dict with the generator state dict under 'generator'")
    extra = sorted({k.split(".")[0] for k in state if k.startswith(_CONDITIONING_PREFIXES)})
    if extra:
        raise VocoderError(f"checkpoint has conditioning modules {extra} (speaker/f0/VQ), which are not supported")
    state = {k: v for k, v in fold_weight_norm(state).items() if not k.startswith("dur_predictor.")}
    model = _build_generator(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise VocoderError(f"checkpoint does not match the config: missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
                           f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise VocoderError(f"{k} has shape {tuple(v.shape)}, the config implies {tuple(expected[k].shape)}")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    return model, cfg


def tiny_config(units: int = 32) -> dict:
    """A small unit-only generator config in speech-resynthesis' format (640 samples per unit)."""
    return {
        "resblock": "1",
        "upsample_rates": [8, 8, 10],
        "upsample_kernel_sizes": [16, 16, 20],
        "upsample_initial_channel": 32,
        "resblock_kernel_sizes": [3, 5],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
        "num_embeddings": units,
        "embedding_dim": 16,
        "model_in_dim": 16,
        "sampling_rate": SAMPLE_RATE,
        "code_hop_size": SAMPLES_PER_UNIT,
    }


def write_tiny(out: Path, raw: dict | None = None, seed: int = 0) -> tuple[Path, Path]:
    """Random weights saved the way speech-resynthesis' train.py does: {"generator": state_dict}
    with weight-norm `weight_g` / `weight_v` pairs for every conv."""
    import torch

    raw = raw or tiny_config()
    cfg = parse_config(raw)
    torch.manual_seed(seed)
    model = _build_generator(cfg)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith(".weight") and k != "dict.weight":
            base = k[: -len(".weight")]
            v_ = torch.randn_like(v) * 0.3
            state[base + ".weight_v"] = v_
            shape = (v.shape[0],) + (1,) * (v.dim() - 1)
            state[base + ".weight_g"] = torch.rand(shape) * 1.5 + 0.5
        elif k == "dict.weight":
            state[k] = torch.randn_like(v)
        else:
            state[k] = torch.randn_like(v) * 0.1
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, config = out / "g_00000000", out / "config.json"
    torch.save({"generator": state, "steps": 0, "epoch": 0}, str(ckpt))
    config.write_text(json.dumps(raw, indent=2) + "\n")
    return ckpt, config


def chunk_trims(cfg: HifiganConfig, trimmed: int) -> tuple[int, list[int]]:
    """Where the chunk model cuts each stage's input so that its output from sample `trimmed`
    on is exact: (units dropped before `conv_pre`, per upsample stage the first input position
    kept, in that stage's input samples). Cutting a tensor makes the next convolutions see zero
    padding at the new left edge; the positions that padding reaches are cut at the next stage."""
    # per stage: outputs near a cut input edge that the cut changes
    reach = [max(0, k - (k - u) // 2 - u) + cfg.resblock_reach()
             for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)]
    valid = trimmed - 3  # conv_post: kernel 7
    keep = []
    for i in reversed(range(len(cfg.upsample_rates))):
        j = max(0, (valid - reach[i]) // cfg.upsample_rates[i])
        keep.insert(0, j)
        valid = j
    return max(0, valid - 3), keep  # conv_pre: kernel 7


def polyphase_upsample(up):
    """`ConvTranspose1d(k, stride s, padding (k - s) / 2)` as an ordinary convolution with s
    output phases per channel, interleaved: y[s q + r] = sum_d x[q + d] W[:, :, r + p - s d].
    Same arithmetic; onnxruntime runs it about 6x faster than its ConvTranspose (whose col2im
    dominates at the vocoder's few channels)."""
    import torch
    import torch.nn.functional as F

    w = up.weight.detach()  # [in, out, k]
    c_in, c_out, k = w.shape
    s, p = up.stride[0], up.padding[0]
    lo, hi = -((k - 1 - p) // s), (s - 1 + p) // s  # tap offsets d: ceil((p - k + 1) / s) .. floor((s - 1 + p) / s)
    taps = torch.zeros(c_out * s, c_in, hi - lo + 1)
    for r in range(s):
        for t, d in enumerate(range(lo, hi + 1)):
            j = r + p - s * d
            if 0 <= j < k:
                taps[torch.arange(c_out) * s + r, :, t] = w[:, :, j].t()
    bias = up.bias.detach().clone().repeat_interleave(s)

    class Polyphase(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("taps", taps)
            self.register_buffer("bias", bias)

        def forward(self, x):
            y = F.conv1d(F.pad(x, (-lo, hi)), self.taps, self.bias)  # [B, out * s, T]
            b, _, t = y.shape
            return y.reshape(b, c_out, s, t).transpose(2, 3).reshape(b, c_out, t * s)

    return Polyphase()


def chunk_generator(model, cfg: HifiganConfig, trimmed: int):
    """The generator as the runtime runs it per chunk: same weights and arithmetic, but each
    stage computes only the positions that reach output sample `trimmed` and after (the left
    context is needed as input, not as audio), so `chunk(u) == model(u)[:, trimmed:]`; and the
    transposed convolutions run as polyphase convolutions (`polyphase_upsample`)."""
    import torch
    import torch.nn.functional as F

    units_cut, keep = chunk_trims(cfg, trimmed)
    ups = torch.nn.ModuleList([polyphase_upsample(up) for up in model.ups])

    class ChunkGenerator(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g = model
            self.ups = ups

        def forward(self, units):
            g = self.g
            x = g.conv_pre(g.dict(units[:, units_cut:]).transpose(1, 2))
            first = units_cut  # position of x[..., 0] in the full-length tensor
            for i, up in enumerate(self.ups):
                x = up(F.leaky_relu(x[:, :, keep[i] - first:], LRELU_SLOPE))
                first = keep[i] * cfg.upsample_rates[i]
                xs = g.resblocks[i * g.num_kernels](x)
                for j in range(1, g.num_kernels):
                    xs = xs + g.resblocks[i * g.num_kernels + j](x)
                x = xs / g.num_kernels
            x = g.conv_post(F.leaky_relu(x))
            return torch.tanh(x).squeeze(1)[:, trimmed - first:]

    return ChunkGenerator().eval()


def export_vocoder_onnx(model, out_dir: Path, name: str = "model.onnx", dummy_units: int = 8,
                       doc: str = "duet.vocoder/1 (docs/units-contract.md)") -> Path:
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path, tmp = out_dir / name, out_dir / f"{name}.tmp"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (torch.zeros(1, dummy_units, dtype=torch.long),), str(tmp), opset_version=OPSET, dynamo=False,
            input_names=["units"], output_names=["audio"],
            dynamic_axes={"units": {0: "batch", 1: "units"}, "audio": {0: "batch", 1: "samples"}},
        )
    finalize_onnx(tmp, path, doc, FORMAT)
    return path


def chunk_difference(run, units: np.ndarray, chunk: int, left: int) -> float:
    """Max abs difference, over the chunks of `units` [B, N] that have `left` units of history,
    between the one-shot output of units[:, :end] and a run on units[:, start-left:end]
    (both end at the chunk's end, so only the left context differs)."""
    n = units.shape[1]
    worst = 0.0
    for start in range(left, n - chunk + 1, chunk):
        end = start + chunk
        one_shot = run(units[:, :end])[:, start * SAMPLES_PER_UNIT:]
        chunked = run(units[:, start - left:end])[:, left * SAMPLES_PER_UNIT:]
        worst = max(worst, float(np.abs(one_shot - chunked).max()))
    return worst


def measure_left_context(run, cfg: HifiganConfig, *, chunk: int = 4, trials: int = 2, seed: int = 0,
                         tolerance: float = CHUNK_TOLERANCE, progress: bool = False) -> dict:
    """Smallest left context (units) whose chunked output stays within `tolerance` of the
    one-shot output, on random unit sequences; bounded by the analytic receptive field."""
    bound = math.ceil(cfg.receptive_units()[0])
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, cfg.num_embeddings, (1, bound + 3 * chunk)) for _ in range(trials)]
    from tqdm import tqdm

    sweep = []
    for left in tqdm(range(0, bound + 1), desc="left context", unit="ctx", file=sys.stderr, disable=not progress):
        diff = max(chunk_difference(run, s, chunk, left) for s in seqs)
        sweep.append({"leftContextUnits": left, "maxAbsDiff": diff})
        if diff <= tolerance:
            return {"leftContextUnits": left, "maxAbsDiff": diff, "tolerance": tolerance, "chunkUnits": chunk,
                    "receptiveFieldUnits": bound, "sweep": sweep}
    raise VocoderError(f"chunked output differs by {sweep[-1]['maxAbsDiff']:.3g} even with the receptive field "
                       f"({bound} units) as left context")


def export_chunk_model(model, cfg: HifiganConfig, left_units: int, run_full, out: Path) -> dict:
    """Exports `chunk.onnx` (the generator trimmed to what a chunk with `left_units` of context
    needs: `chunk_generator`) and checks it against the one-shot model on random sequences of
    several lengths; returns the manifest's `chunkModel` entry."""
    from .contract import ort_session
    from .manifest import sha256_file

    trimmed = max(0, left_units * cfg.hop - CHUNK_KEEP_SAMPLES)
    path = export_vocoder_onnx(chunk_generator(model, cfg, trimmed), out, "chunk.onnx",
                               dummy_units=left_units + 4,
                               doc="duet.vocoder/1 chunk model (docs/units-contract.md)")
    session = ort_session(path)
    rng = np.random.default_rng(7)
    worst = 0.0
    for n in range(left_units + 1, left_units + 9):
        u = np.ascontiguousarray(rng.integers(0, cfg.num_embeddings, (2, n)), dtype=np.int64)
        got = session.run(["audio"], {"units": u})[0]
        want = run_full(u)[:, trimmed:]
        if got.shape != want.shape:
            raise VocoderError(f"chunk model gives {got.shape[1]} samples for {n} units, expected {want.shape[1]}")
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > CHUNK_MODEL_TOLERANCE:
        raise VocoderError(f"chunk model differs from the one-shot model by {worst:.3g} (tolerance "
                           f"{CHUNK_MODEL_TOLERANCE})")
    _units_cut, keep = chunk_trims(cfg, trimmed)
    _log(f"chunk model: first {trimmed} samples not computed (stage inputs cut at {keep}); "
         f"max diff vs one-shot {worst:.3g}")
    return {"model": path.name, "sha256": sha256_file(path), "trimmedSamples": trimmed,
            "minUnits": left_units + 1, "maxAbsDiff": worst}


def export_unit_hifigan(checkpoint: Path, config_path: Path, out: Path, *, progress: bool = True) -> Path:
    import onnx
    import torch

    from .contract import ort_session
    from .manifest import sha256_file, write_manifest

    model, cfg = load_generator(checkpoint, config_path)
    _log(f"exporting {checkpoint}: {cfg.num_embeddings} units, upsampling {cfg.upsample_rates} = {cfg.hop} "
         f"samples/unit, resblock {cfg.resblock} kernels {cfg.resblock_kernel_sizes}, "
         f"receptive field ~{cfg.receptive_units()[0]:.1f} units each side")
    model_path = export_vocoder_onnx(model, out)
    session = ort_session(model_path)

    def run(units):
        return session.run(["audio"], {"units": np.ascontiguousarray(units, dtype=np.int64)})[0]

    m = measure_left_context(run, cfg, progress=progress)
    _log(f"left context {m['leftContextUnits']} units: chunked vs one-shot max abs diff {m['maxAbsDiff']:.3g} "
         f"(tolerance {m['tolerance']}; analytic receptive field {m['receptiveFieldUnits']} units)")
    chunk = export_chunk_model(model, cfg, m["leftContextUnits"], run, Path(out))
    left, right = cfg.receptive_units()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_path.name,
        "sha256": sha256_file(model_path),
        "sampleRate": cfg.sampling_rate,
        "unitRate": UNIT_RATE,
        "samplesPerUnit": cfg.hop,
        "unitCount": cfg.num_embeddings,
        "leftContextUnits": m["leftContextUnits"],
        "rightReceptiveUnits": math.ceil(right),
        "leftContext": {k: m[k] for k in ("maxAbsDiff", "tolerance", "chunkUnits", "receptiveFieldUnits", "sweep")},
        "chunkModel": chunk,
        "architecture": {
            "family": "unit-hifigan",
            "resblock": cfg.resblock,
            "upsampleRates": list(cfg.upsample_rates),
            "upsampleKernelSizes": list(cfg.upsample_kernel_sizes),
            "upsampleInitialChannel": cfg.upsample_initial_channel,
            "resblockKernelSizes": list(cfg.resblock_kernel_sizes),
            "resblockDilationSizes": [list(d) for d in cfg.resblock_dilation_sizes],
            "embeddingDim": cfg.embedding_dim,
        },
        "source": {
            "checkpoint": str(Path(checkpoint).resolve()),
            "checkpointSha256": sha256_file(Path(checkpoint)),
            "config": str(Path(config_path).resolve()),
            "exporter": EXPORTER,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
        },
    }
    path = write_manifest(Path(out), manifest)
    _log(f"wrote {model_path} and {path}")
    return path
