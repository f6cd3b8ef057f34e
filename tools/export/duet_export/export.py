"""`llama` command: Hugging Face Llama checkpoint -> model.onnx (+ .data) + manifest.json."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .graph import export_onnx, llama_shape
from .manifest import build_manifest, resolve_tokens, write_manifest
from .rope import rope_spec
from .weights import checkpoint_weights

VERIFY_TOLERANCE = 1e-3


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def export_llama(
    checkpoint: Path,
    out: Path,
    token_flags: dict,
    *,
    external: str = "auto",
    ort_check: bool = True,
    progress: bool = True,
) -> Path:
    """Exports and returns the manifest path. Everything that can refuse the checkpoint (model
    type, rope scaling, token ids) is checked before any weight is read."""
    from transformers import AutoConfig

    checkpoint = Path(checkpoint).resolve()
    config = AutoConfig.from_pretrained(str(checkpoint))
    shape = llama_shape(config)
    rope = rope_spec(config)
    tokens = resolve_tokens(checkpoint, shape.vocab, token_flags)
    _log(
        f"exporting {checkpoint}: {shape.layers} layers, hidden {shape.hidden}, heads {shape.heads}/{shape.kv_heads}, "
        f"head_dim {shape.head_dim}, vocab {shape.vocab}, rope {rope.type}, tied {shape.tied}, "
        f"~{shape.weight_bytes() / 1e9:.2f} GB float32"
    )
    model_path, data_path = export_onnx(config, checkpoint_weights(checkpoint), out, external=external, progress=progress)
    if ort_check:
        from .contract import ort_session

        ort_session(model_path)  # raises if onnxruntime cannot load it
    manifest = build_manifest(shape, rope, tokens, model_path, data_path, str(checkpoint))
    path = write_manifest(out, manifest)
    _log(f"wrote {model_path}" + (f" + {data_path.name}" if data_path else "") + f" and {path}")
    return path


def verify_export(checkpoint: Path, manifest_path: Path, *, seed: int = 0) -> dict:
    """Runs the exported model with onnxruntime on a random prompt split into a past (fed as
    the contract's cache inputs, built from HF past_key_values) and new tokens, batched with a
    second row of different lengths, and compares with a plain HF forward."""
    import json

    from .contract import compare_with_hf, load_hf_model, ort_session

    manifest = json.loads(Path(manifest_path).read_text())
    model = load_hf_model(checkpoint)
    shape = llama_shape(model.config)
    rope = rope_spec(model.config)
    session = ort_session(Path(manifest_path).parent / manifest["model"])
    rng = np.random.default_rng(seed)
    room = max(4, min(48, shape.max_context - 8))
    p1, p2 = room // 2, room // 4
    pasts = [rng.integers(0, shape.vocab, p1).tolist(), rng.integers(0, shape.vocab, p2).tolist()]
    news = [rng.integers(0, shape.vocab, 6).tolist(), rng.integers(0, shape.vocab, 3).tolist()]
    diffs = compare_with_hf(model, session, shape, rope, pasts, news, capacity=p1 + 5, seed=seed)
    return diffs
