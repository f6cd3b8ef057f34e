"""Running an exported model the way the engine does, and checking it against transformers.

Used by `llama --verify` and by the tests: the cache inputs are built from Hugging Face's own
past_key_values (keys transposed to [B, K, D, C]), unused cache columns are filled with
garbage and masked, and the logits / new keys / new values are compared with a plain HF
forward over the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import LlamaShape
from .rope import RopeSpec, rope_tables

MASKED = -1e9


def load_hf_model(checkpoint):
    """The reference: float32, eager attention (the plain softmax(QK^T)V the graph mirrors)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def cache_layers(cache) -> list[tuple[np.ndarray, np.ndarray]]:
    """(keys, values) per layer, each [B, K, P, D], from a transformers Cache."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        pairs = [(layer.keys, layer.values) for layer in cache.layers]
    elif hasattr(cache, "key_cache"):
        pairs = list(zip(cache.key_cache, cache.value_cache))
    else:  # legacy tuple of tuples
        pairs = [(k, v) for k, v in cache]
    return [(k.detach().float().numpy(), v.detach().float().numpy()) for k, v in pairs]


def hf_forward(model, ids: list[int], use_cache: bool = False):
    """(logits [n, V], per-layer caches [K, n, D]) of one sequence, positions 0..n-1."""
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=use_cache)
    logits = out.logits[0].float().numpy()
    layers = [(k[0], v[0]) for k, v in cache_layers(out.past_key_values)] if use_cache else None
    return logits, layers


@dataclass
class Batch:
    feeds: dict[str, np.ndarray]
    lengths: list[int]  # real new tokens per row
    pasts: list[int]  # past tokens per row


def contract_feeds(
    shape: LlamaShape,
    rope: RopeSpec,
    past_layers: list[list[tuple[np.ndarray, np.ndarray]] | None],
    new_ids: list[list[int]],
    capacity: int,
    rng: np.random.Generator,
    garbage: float = 3.0,
    start_positions: list[int] | None = None,
) -> Batch:
    """Inputs for one invocation: row b has past `past_layers[b]` (per layer keys/values
    [K, P_b, D] as HF caches them, or None) and new tokens `new_ids[b]` (padded to the
    longest with id 0). Cache columns >= P_b hold random garbage and are masked with -1e9.
    New tokens sit at positions `start_positions[b] + t` (default: right after the past)."""
    B = len(new_ids)
    T = max(len(n) for n in new_ids)
    C = capacity
    K, D = shape.kv_heads, shape.head_dim
    pasts = [0 if p is None else p[0][0].shape[1] for p in past_layers]
    if max(pasts) > C:
        raise ValueError(f"past of {max(pasts)} tokens does not fit a cache of {C}")
    ids = np.zeros((B, T), dtype=np.int64)
    positions = np.zeros((B, T), dtype=np.int64)
    mask = np.full((B, 1, 1, T, C + T), MASKED, dtype=np.float32)
    for b, new in enumerate(new_ids):
        ids[b, : len(new)] = new
        for t in range(T):
            if t < len(new):
                positions[b, t] = (pasts[b] if start_positions is None else start_positions[b]) + t
                mask[b, 0, 0, t, : pasts[b]] = 0.0
                mask[b, 0, 0, t, C : C + t + 1] = 0.0
            else:
                mask[b, 0, 0, t, C + t] = 0.0  # padding attends to itself only (as the engine does)
    cos, sin = rope_tables(rope, positions)
    feeds: dict[str, np.ndarray] = {"input_ids": ids, "rope_cos": cos, "rope_sin": sin, "attn_mask": mask}
    for l in range(shape.layers):
        keys = (rng.standard_normal((B, K, D, C)) * garbage).astype(np.float32)
        values = (rng.standard_normal((B, K, C, D)) * garbage).astype(np.float32)
        for b, layers in enumerate(past_layers):
            if layers is None:
                continue
            k, v = layers[l]  # [K, P, D]
            keys[b, :, :, : pasts[b]] = np.transpose(k, (0, 2, 1))
            values[b, :, : pasts[b], :] = v
        feeds[f"past_key_{l}"] = keys
        feeds[f"past_value_{l}"] = values
    return Batch(feeds=feeds, lengths=[len(n) for n in new_ids], pasts=pasts)


def ort_session(path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare_with_hf(
    model,
    session,
    shape: LlamaShape,
    rope: RopeSpec,
    pasts: list[list[int]],
    news: list[list[int]],
    capacity: int,
    seed: int = 0,
) -> dict[str, float]:
    """Runs one batched invocation through ONNX (cache from HF) and compares every real row
    with HF over the whole sequence. Returns max abs diffs of logits, new keys, new values."""
    rng = np.random.default_rng(seed)
    past_layers = [hf_forward(model, p, use_cache=True)[1] if p else None for p in pasts]
    batch = contract_feeds(shape, rope, past_layers, news, capacity, rng)
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(None, batch.feeds)))
    diffs = {"logits": 0.0, "keys": 0.0, "values": 0.0}
    for b, (past, new) in enumerate(zip(pasts, news)):
        full_logits, full_layers = hf_forward(model, past + new, use_cache=True)
        P, n = len(past), len(new)
        diffs["logits"] = max(diffs["logits"], float(np.abs(out["logits"][b, :n] - full_logits[P : P + n]).max()))
        for l, (k, v) in enumerate(full_layers):
            got_k = out[f"new_key_{l}"][b, :, :, :n]  # [K, D, n]
            got_v = out[f"new_value_{l}"][b, :, :n, :]  # [K, n, D]
            diffs["keys"] = max(diffs["keys"], float(np.abs(got_k - np.transpose(k[:, P : P + n], (0, 2, 1))).max()))
            diffs["values"] = max(diffs["values"], float(np.abs(got_v - v[:, P : P + n]).max()))
    return diffs
