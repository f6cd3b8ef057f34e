"""The Hugging Face transformers (eager PyTorch) baseline of the serving benchmark.

Models the SyncLLM real-time loop the engine serves: every call holds a context of
`context` tokens in its own DynamicCache; each tick (one chunk) it rolls back the `prefill`
predicted tokens, prefills the real ones, then greedily decodes `decode` tokens. N calls
are served one after another (transformers has no batching across caches of different
histories), so a tick for N calls costs about N single-call ticks. The answer is how many
calls fit a tick budget at p99.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _crop_to(cache, length: int) -> None:
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # negative: number of tokens to remove (transformers >= 5.x)
    if cache.get_seq_length() != length:
        raise RuntimeError(f"cache crop left {cache.get_seq_length()} tokens, wanted {length}")


def bench_hf(
    checkpoint: str,
    *,
    context: int = 1024,
    prefill: int = 10,
    decode: int = 10,
    ticks: int = 30,
    threads: int = 1,
    max_calls: int = 16,
    budget_ms: float = 100.0,
    warmup: int = 2,
    seed: int = 0,
    log=None,
) -> dict:
    import torch
    from transformers import DynamicCache

    from .contract import load_hf_model

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if prefill < 1 or decode < 0 or context <= prefill:
        raise ValueError("need prefill >= 1, decode >= 0 and context > prefill")
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process
    model = load_hf_model(checkpoint)
    vocab = model.config.vocab_size
    if context + decode > model.config.max_position_embeddings:
        log(f"note: context+decode ({context + decode}) exceeds max_position_embeddings "
            f"({model.config.max_position_embeddings})")
    rng = np.random.default_rng(seed)

    def new_call():
        cache = DynamicCache(config=model.config)
        ids = torch.tensor(rng.integers(0, vocab, (1, context)), dtype=torch.long)
        with torch.no_grad():
            model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return cache

    def tick_one(cache) -> None:
        _crop_to(cache, context - prefill)  # rollback of the predicted chunk
        ids = torch.tensor(rng.integers(0, vocab, (1, prefill)), dtype=torch.long)
        with torch.no_grad():
            out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            for _ in range(decode):
                nxt = out.logits[:, -1:].argmax(-1)
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True, logits_to_keep=1)

    calls: list = []
    table = []
    for n in range(1, max_calls + 1):
        while len(calls) < n:
            calls.append(new_call())
        times = []
        for t in range(warmup + ticks):
            start = time.perf_counter()
            for cache in calls:
                tick_one(cache)
            ms = (time.perf_counter() - start) * 1000.0
            if t >= warmup:
                times.append(ms)
        p50 = float(np.percentile(times, 50))
        p99 = float(np.percentile(times, 99))
        table.append({"calls": n, "p50": round(p50, 3), "p99": round(p99, 3)})
        log(f"calls={n} p50={p50:.2f} ms p99={p99:.2f} ms (budget {budget_ms} ms)")
        if p99 > budget_ms:
            break
    fitting = [row for row in table if row["p99"] <= budget_ms]
    best = fitting[-1] if fitting else None
    return {
        "calls": best["calls"] if best else 0,
        # With no N within budget this is the N=1 figure, so the field is always a number.
        "p99_step_ms": (best or table[0])["p99"],
        "per_call_ms": table[0]["p50"],
        "table": table,
        "config": {
            "context": context, "prefill": prefill, "decode": decode, "ticks": ticks,
            "threads": threads, "maxCalls": max_calls, "budgetMs": budget_ms,
        },
    }
