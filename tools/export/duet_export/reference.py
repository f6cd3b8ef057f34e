"""Hugging Face reference for the engine's correctness test (`reference` command).

The engine records, per model invocation and slot, the token history before it (`past`),
the tokens it fed (`new`), the logits it got and the greedy picks it made, in the order the
invocations ran. Here transformers (float32, eager attention) recomputes the same rows.
Its context window keeps attention sinks + the last `window` tokens of a history.

Two ways to recompute a history whose window has slid (`window.mode` / `--mode`):
- "streaming" (default): what a KV cache that evicts tokens computes. Records are replayed
  in order; each token's keys/values are the ones transformers computed when that token was
  fed, from the context visible then. This is what the engine does (it never re-encodes).
- "recompute": the visible tokens + new tokens run from scratch at positions 0..n-1. Equal
  to "streaming" until a window first slides; after that it differs in every layer past the
  first (evicted tokens still shaped the cached states of the tokens that remain), so an
  engine with a KV cache cannot match it on a multi-layer model.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


MODES = ("streaming", "recompute")


def visible_history(past: list[int], sinks: int, window: int) -> list[int]:
    if len(past) <= sinks + window:
        return list(past)
    return list(past[:sinks]) + list(past[len(past) - window :])


def run_reference(trace: dict, batch_size: int = 32, progress: bool = True, mode: str | None = None) -> dict:
    """Compares the trace's logits and picks with transformers. `mode` (default: the trace's
    `window.mode`, else "streaming") picks how the history is recomputed; see the module doc."""
    from .contract import load_hf_model

    mode = mode or trace.get("window", {}).get("mode") or "streaming"
    if mode not in MODES:
        raise ValueError(f"reference mode must be one of {MODES}, not {mode!r}")
    model = load_hf_model(trace["checkpoint"])
    vocab = model.config.vocab_size
    sinks = int(trace["window"]["sinks"])
    window = int(trace["window"]["window"])
    records = trace["records"]
    for i, rec in enumerate(records):
        if not rec["new"]:
            raise ValueError(f"record {i} has no new tokens")
        bad = [t for t in list(rec["past"]) + list(rec["new"]) if not 0 <= t < vocab]
        if bad:
            raise ValueError(f"record {i} has token ids outside the vocabulary ({vocab}): {bad[:5]}")
    if mode == "recompute":
        hf_rows, extra = _recompute(model, records, sinks, window, batch_size, progress), {}
    else:
        hf_rows, extra = _streaming(model, records, sinks, window, progress)
    result = _score(records, hf_rows)
    result.update({"mode": mode, **extra})
    return result


def _recompute(model, records, sinks, window, batch_size, progress) -> list[np.ndarray]:
    """Visible history + new tokens from scratch, positions 0..n-1, no cache."""
    import torch
    from tqdm import tqdm

    seqs = [visible_history(rec["past"], sinks, window) + list(rec["new"]) for rec in records]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, seq in enumerate(seqs):
        by_length[len(seq)].append(i)
    # Records of equal total length run as one batch (no padding, so no padding mask to trust).
    hf_rows: list = [None] * len(records)
    jobs = [(n, idx[k : k + batch_size]) for n, idx in sorted(by_length.items()) for k in range(0, len(idx), batch_size)]
    with torch.no_grad():
        for n, idx in tqdm(jobs, desc="reference", unit="batch", file=sys.stderr, disable=not progress):
            ids = torch.tensor([seqs[i] for i in idx], dtype=torch.long)
            pos = torch.arange(n, dtype=torch.long).unsqueeze(0).expand(len(idx), n)
            logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits.float().numpy()
            for row, i in enumerate(idx):
                hf_rows[i] = logits[row, n - len(records[i]["new"]) :]
    return hf_rows


def _prefix_keys(tokens: list[int]) -> list[int]:
    """keys[k] identifies the history prefix tokens[0..k] (a chained hash, O(n))."""
    keys, h = [], 0x9E3779B97F4A7C15
    for t in tokens:
        h = hash((h, t))
        keys.append(h)
    return keys


def _streaming(model, records, sinks, window, progress) -> tuple[list[np.ndarray], dict]:
    """Replays the records in order as a KV cache with sinks + sliding window would see them.

    Every token's keys/values are those transformers computed when the token was fed: from
    the context visible at that moment (sinks + last `window` tokens + the earlier new tokens of
    the same invocation). Keys are rotated at the token's absolute position, the sinks are
    re-rotated to sit right before the window (StreamingLLM), new tokens are at absolute
    positions. This is what a cache that never recomputes evicted context computes; recomputing
    the visible history from scratch differs from it in every layer after the first.
    """
    import torch
    from tqdm import tqdm
    from transformers import DynamicCache

    from .contract import cache_layers

    inv_freq = model.model.rotary_emb.inv_freq.detach().double().numpy()
    store: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # prefix key -> per layer (k [K,D], v [K,D])
    fallbacks = 0
    hf_rows: list = []

    def rotate(k: np.ndarray, delta: int) -> np.ndarray:  # k [K, n, D], HF rotate_half layout
        if delta == 0:
            return k
        half = k.shape[-1] // 2
        c, s = np.cos(delta * inv_freq), np.sin(delta * inv_freq)
        x1, x2 = k[..., :half].astype(np.float64), k[..., half:].astype(np.float64)
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1).astype(np.float32)

    def from_scratch(prefix: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        # A token no earlier record fed: computed over its whole prefix (exact unless evicted
        # context had influenced it, which only a complete trace can tell).
        with torch.no_grad():
            out = model(input_ids=torch.tensor([prefix], dtype=torch.long), use_cache=True)
        return [(k[0, :, -1], v[0, :, -1]) for k, v in cache_layers(out.past_key_values)]

    with torch.no_grad():
        for rec in tqdm(records, desc="reference", unit="record", file=sys.stderr, disable=not progress):
            past, new = list(rec["past"]), list(rec["new"])
            P, T = len(past), len(new)
            keys = _prefix_keys(past + new)
            visible = list(range(P)) if P <= sinks + window else list(range(sinks)) + list(range(P - window, P))
            base = max(0, P - window - sinks)
            cached = []
            for k in visible:
                entry = store.get(keys[k])
                if entry is None:
                    fallbacks += 1
                    entry = store[keys[k]] = from_scratch(past[: k + 1])
                cached.append(entry)
            n_sinks = min(sinks, len(visible)) if P > sinks + window else 0
            cache = DynamicCache(config=model.config)
            for l in range(model.config.num_hidden_layers):
                if visible:
                    ks = np.stack([e[l][0] for e in cached], axis=1)  # [K, nv, D]
                    vs = np.stack([e[l][1] for e in cached], axis=1)
                    ks[:, :n_sinks] = rotate(ks[:, :n_sinks], base)
                    cache.update(torch.from_numpy(ks)[None], torch.from_numpy(vs)[None], l)
            nv = len(visible)
            # Explicit additive mask: every cached entry, and the new tokens causally.
            mask = torch.zeros((1, 1, T, nv + T), dtype=torch.float32)
            mask[0, 0, :, nv:] = torch.triu(torch.full((T, T), torch.finfo(torch.float32).min), diagonal=1)
            out = model(
                input_ids=torch.tensor([new], dtype=torch.long),
                position_ids=torch.arange(P, P + T, dtype=torch.long)[None],
                past_key_values=cache if visible else None,
                attention_mask=mask,
                use_cache=True,
            )
            hf_rows.append(out.logits[0].float().numpy())
            layers = cache_layers(out.past_key_values)
            for t in range(T):
                store[keys[P + t]] = [(k[0, :, nv + t], v[0, :, nv + t]) for k, v in layers]
    return hf_rows, {"fallbacks": fallbacks}


def _score(records, hf_rows) -> dict:
    max_abs = 0.0
    rows = 0
    picks = 0
    mismatches = []
    for i, rec in enumerate(records):
        hf = hf_rows[i]
        got = np.asarray(rec.get("logits", []), dtype=np.float64)
        if got.size:
            if got.shape != hf.shape:
                raise ValueError(f"record {i}: logits shape {got.shape}, expected {hf.shape}")
            max_abs = max(max_abs, float(np.abs(got - hf).max()))
            rows += got.shape[0]
        for pick in rec.get("picks", []):
            r, allowed, token = int(pick["row"]), [int(a) for a in pick["allowed"]], int(pick["token"])
            picks += 1
            hf_token = allowed[int(np.argmax(hf[r, allowed]))]
            if hf_token != token:
                # gap: how much HF prefers its own pick (tiny gap = near-tie, not a real bug)
                gap = float(hf[r, hf_token] - hf[r, token]) if 0 <= token < hf.shape[1] else None
                mismatches.append({"record": i, "row": r, "token": token, "hfToken": hf_token, "gap": gap})
    return {"records": len(records), "rows": rows, "maxAbsDiff": max_abs, "picks": picks, "pickMismatches": mismatches}


def reference_command(trace_path: Path, out_path: Path, progress: bool = True, mode: str | None = None) -> dict:
    trace = json.loads(Path(trace_path).read_text())
    result = run_reference(trace, progress=progress, mode=mode)
    Path(out_path).write_text(json.dumps(result, indent=2) + "\n")
    return result
