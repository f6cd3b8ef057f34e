"""manifest.json beside model.onnx (docs/synclm-contract.md, "The manifest")."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import EXPORTER
from .graph import LlamaShape
from .rope import RopeSpec

TOKENS_FILE = "duet_tokens.json"
TOKEN_KEYS = ("unitBase", "unitCount", "s0", "s1")


class TokenError(ValueError):
    """The SyncLLM token ids are missing or inconsistent with the vocabulary."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def validate_tokens(tokens: dict, vocab: int) -> dict:
    """Checks the ids the engine relies on: every unit and tag inside the vocabulary, tags
    outside the unit range and distinct (the engine refuses the same things at load)."""
    out = {}
    for key in TOKEN_KEYS:
        v = tokens.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise TokenError(f"tokens.{key} must be an integer, got {v!r}")
        out[key] = v
    base, count, s0, s1 = out["unitBase"], out["unitCount"], out["s0"], out["s1"]
    if base < 0:
        raise TokenError(f"unitBase ({base}) must be >= 0")
    if count < 2:
        raise TokenError(f"unitCount ({count}) must be >= 2")
    if base + count > vocab:
        raise TokenError(f"units {base}..{base + count - 1} exceed the vocabulary ({vocab} tokens)")
    for name, tag in (("s0", s0), ("s1", s1)):
        if not 0 <= tag < vocab:
            raise TokenError(f"{name} ({tag}) is outside the vocabulary ({vocab} tokens)")
        if base <= tag < base + count:
            raise TokenError(f"{name} ({tag}) lies inside the unit range {base}..{base + count - 1}")
    if s0 == s1:
        raise TokenError(f"s0 and s1 must differ (both {s0})")
    return out


def resolve_tokens(checkpoint: Path, vocab: int, flags: dict) -> dict:
    """Token ids from `duet_tokens.json` in the checkpoint (written by extend-vocab / tiny),
    each overridden by a CLI flag when given."""
    tokens: dict = {}
    path = Path(checkpoint) / TOKENS_FILE
    if path.exists():
        tokens.update(json.loads(path.read_text()))
    tokens.update({k: v for k, v in flags.items() if v is not None})
    missing = [k for k in TOKEN_KEYS if k not in tokens]
    if missing:
        raise TokenError(
            f"token ids {missing} unknown: pass --unit-base/--unit-count/--s0/--s1 or use a checkpoint "
            f"with {TOKENS_FILE} (written by extend-vocab)"
        )
    return validate_tokens(tokens, vocab)


def write_json_atomic(path: Path, obj) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def build_manifest(
    shape: LlamaShape,
    rope: RopeSpec,
    tokens: dict,
    model_path: Path,
    data_path: Path | None,
    checkpoint: str,
) -> dict:
    import onnx
    import torch
    import transformers

    manifest = {
        "format": "duet.synclm",
        "version": 1,
        "model": Path(model_path).name,
        "sha256": sha256_file(model_path),
        "architecture": {
            "family": "llama",
            "layers": shape.layers,
            "hidden": shape.hidden,
            "heads": shape.heads,
            "kvHeads": shape.kv_heads,
            "headDim": shape.head_dim,
            "intermediate": shape.intermediate,
            "vocabSize": shape.vocab,
            "maxContext": shape.max_context,
            "rmsNormEps": shape.rms_norm_eps,
            "tiedEmbeddings": shape.tied,
        },
        "rope": {
            "type": rope.type,
            "theta": rope.theta,
            "invFreq": [float(x) for x in rope.inv_freq],
            "attentionScaling": rope.attention_scaling,
        },
        "tokens": validate_tokens(tokens, shape.vocab),
        "source": {
            "checkpoint": checkpoint,
            "exporter": EXPORTER,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
        },
    }
    if data_path is not None:
        manifest["externalData"] = {"file": Path(data_path).name, "sha256": sha256_file(data_path)}
    return manifest


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    path = Path(out_dir) / "manifest.json"
    write_json_atomic(path, manifest)
    return path
