"""The `reference` command on hand-made traces, including sliding windows (past > S + W).

Two trace sources:
- transformers itself on visible + new tokens (the "recompute" mode agreeing with itself);
- a small Python stand-in for the engine that runs the exported ONNX model with its cache
  in the contract's layout, sinks + sliding window, re-rotated sinks and rollbacks: the
  "streaming" reference must agree with it token for token.
"""

import json
import time

import numpy as np
import pytest

from conftest import run_cli
from duet_export.contract import contract_feeds, hf_forward, load_hf_model, ort_session
from duet_export.graph import export_onnx, llama_shape
from duet_export.reference import run_reference, visible_history
from duet_export.rope import rope_spec
from duet_export.weights import SafetensorsWeights

SINKS, WINDOW = 2, 6


def test_visible_history():
    assert visible_history(list(range(8)), 2, 6) == list(range(8))
    assert visible_history(list(range(9)), 2, 6) == [0, 1, 3, 4, 5, 6, 7, 8]
    assert visible_history(list(range(20)), 2, 6) == [0, 1, 14, 15, 16, 17, 18, 19]
    assert visible_history(list(range(20)), 0, 3) == [17, 18, 19]


def hf_trace(ckpt, n_records, seed=0, max_past=14):
    """Records whose logits and picks come from HF on visible + new, one at a time."""
    model = load_hf_model(ckpt)
    V = model.config.vocab_size
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n_records):
        past = rng.integers(0, V, int(rng.integers(0, max_past + 1))).tolist()
        new = rng.integers(0, V, int(rng.integers(1, 4))).tolist()
        seq = visible_history(past, SINKS, WINDOW) + new
        logits = hf_forward(model, seq)[0][-len(new):]
        picks = []
        for r in range(len(new)):
            allowed = sorted(rng.choice(V, size=int(rng.integers(2, V)), replace=False).tolist())
            picks.append({"row": r, "allowed": allowed, "token": allowed[int(np.argmax(logits[r, allowed]))]})
        records.append({"past": past, "new": new, "logits": logits.tolist(), "picks": picks})
    return {"checkpoint": str(ckpt), "window": {"sinks": SINKS, "window": WINDOW, "mode": "recompute"},
            "records": records}


class OnnxEngine:
    """The engine's cache policy in a few lines: keys cached rotated at absolute positions,
    sinks re-rotated to sit right before the window, rollbacks truncate."""

    def __init__(self, ckpt, onnx_path, sinks, window):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(ckpt))
        self.shape, self.rope = llama_shape(config), rope_spec(config)
        self.session = ort_session(onnx_path)
        self.names = [o.name for o in self.session.get_outputs()]
        self.sinks, self.window = sinks, window
        self.records = []

    def open(self):
        K, D = self.shape.kv_heads, self.shape.head_dim
        return {"tokens": [], "keys": [np.zeros((K, 0, D), np.float32)] * self.shape.layers,
                "values": [np.zeros((K, 0, D), np.float32)] * self.shape.layers}

    def _rotate(self, k, delta):  # [K, n, D]
        half = k.shape[-1] // 2
        c, s = np.cos(delta * self.rope.inv_freq), np.sin(delta * self.rope.inv_freq)
        x1, x2 = k[..., :half].astype(np.float64), k[..., half:].astype(np.float64)
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1).astype(np.float32)

    def forward(self, call, new, allowed, rng):
        P, S, W = len(call["tokens"]), self.sinks, self.window
        slid = P > S + W
        vis = list(range(S)) + list(range(P - W, P)) if slid else list(range(P))
        layers = []
        for k, v in zip(call["keys"], call["values"]):
            kv = k[:, vis].copy()
            if slid:
                kv[:, :S] = self._rotate(kv[:, :S], P - W - S)
            layers.append((kv, v[:, vis]))
        batch = contract_feeds(self.shape, self.rope, [layers if vis else None], [new], len(vis) + 3, rng,
                               start_positions=[P])
        out = dict(zip(self.names, self.session.run(None, batch.feeds)))
        logits = out["logits"][0]
        token = allowed[int(np.argmax(logits[-1, allowed]))]
        self.records.append({"past": list(call["tokens"]), "new": list(new), "logits": logits.tolist(),
                             "picks": [{"row": len(new) - 1, "allowed": allowed, "token": token}]})
        call["tokens"] += new
        call["keys"] = [np.concatenate([k, out[f"new_key_{l}"][0].transpose(0, 2, 1)], 1)
                        for l, k in enumerate(call["keys"])]
        call["values"] = [np.concatenate([v, out[f"new_value_{l}"][0]], 1) for l, v in enumerate(call["values"])]
        return token

    def truncate(self, call, length):
        call["tokens"] = call["tokens"][:length]
        call["keys"] = [k[:, :length] for k in call["keys"]]
        call["values"] = [v[:, :length] for v in call["values"]]


def engine_trace(ckpt, tmp_path, ticks, sinks=SINKS, window=WINDOW, seed=0):
    """Two interleaved calls, SyncLLM-like: each tick rolls back a predicted chunk now and
    then, prefills 'real' tokens, then decodes greedily from restricted token sets."""
    from transformers import AutoConfig

    V = AutoConfig.from_pretrained(str(ckpt)).vocab_size
    path, _ = export_onnx(AutoConfig.from_pretrained(str(ckpt)), SafetensorsWeights(ckpt), tmp_path / "onnx",
                          progress=False)
    eng = OnnxEngine(ckpt, path, sinks, window)
    rng = np.random.default_rng(seed)
    calls = [eng.open(), eng.open()]
    for tick in range(ticks):
        for c, call in enumerate(calls):
            if tick and rng.random() < 0.5:  # the real chunk differs from the prediction: roll back
                eng.truncate(call, len(call["tokens"]) - int(rng.integers(1, 4)))
            new = rng.integers(0, V, int(rng.integers(1, 4))).tolist() if tick or c else [1, 2, 3]
            for _ in range(3):
                allowed = sorted(rng.choice(V, size=int(rng.integers(2, V)), replace=False).tolist())
                new = [eng.forward(call, new, allowed, rng)]
    return {"checkpoint": str(ckpt), "window": {"sinks": sinks, "window": window}, "records": eng.records}


@pytest.fixture
def gqa_checkpoint(make_checkpoint):
    return make_checkpoint(layers=3, hidden=48, heads=4, kv_heads=2, head_dim=16, intermediate=64, vocab=40,
                           tied=True, rope_scaling="llama3", attention_bias=True, seed=5)


def test_recompute_mode_agrees_with_itself(gqa_checkpoint):
    trace = hf_trace(gqa_checkpoint, 40)
    assert any(len(r["past"]) > SINKS + WINDOW for r in trace["records"])  # windows slid
    result = run_reference(trace, progress=False)
    assert result["mode"] == "recompute"
    assert result["records"] == 40
    assert result["rows"] == sum(len(r["new"]) for r in trace["records"])
    assert result["picks"] == result["rows"]
    assert result["pickMismatches"] == []
    assert result["maxAbsDiff"] < 1e-4  # batched vs one by one: float noise only


def test_streaming_reference_matches_the_onnx_engine(gqa_checkpoint, tmp_path):
    """The exported graph, driven like the engine (cache inputs, sliding window with re-rotated
    sinks, rollbacks, two calls), equals transformers replaying the same cache policy."""
    trace = engine_trace(gqa_checkpoint, tmp_path, ticks=12)
    slid = [i for i, r in enumerate(trace["records"]) if len(r["past"]) > SINKS + WINDOW]
    assert len(slid) > 40
    result = run_reference(trace, progress=False)
    assert result["mode"] == "streaming" and result["fallbacks"] == 0
    assert result["pickMismatches"] == []
    assert result["maxAbsDiff"] < 1e-4

    # Recomputing the visible history from scratch agrees before the first slide only: with
    # several layers, evicted tokens still shaped the cached states that remain.
    early = {**trace, "records": trace["records"][: slid[0]]}
    assert run_reference(early, progress=False, mode="recompute")["maxAbsDiff"] < 1e-4
    assert run_reference(trace, progress=False, mode="recompute")["maxAbsDiff"] > 1e-2


def test_streaming_without_history_falls_back_to_prefixes(gqa_checkpoint):
    """Records whose pasts were never fed by an earlier record (no slide involved) are
    recomputed over their prefix, which is exact for them."""
    trace = hf_trace(gqa_checkpoint, 10, seed=3, max_past=SINKS + WINDOW)
    result = run_reference(trace, progress=False, mode="streaming")
    assert result["fallbacks"] > 0
    assert result["maxAbsDiff"] < 1e-4 and result["pickMismatches"] == []


def test_reference_detects_wrong_logits_and_picks(make_checkpoint):
    ckpt = make_checkpoint(seed=6)
    trace = hf_trace(ckpt, 6, seed=1, max_past=5)
    rec = trace["records"][3]
    rec["logits"][0][7] += 0.25
    pick = rec["picks"][0]
    right = pick["token"]
    wrong = next(t for t in pick["allowed"] if t != right)
    pick["token"] = wrong
    for mode in ("recompute", "streaming"):
        result = run_reference(trace, progress=False, mode=mode)
        assert abs(result["maxAbsDiff"] - 0.25) < 1e-4
        assert len(result["pickMismatches"]) == 1
        mm = result["pickMismatches"][0]
        assert (mm["record"], mm["row"], mm["token"], mm["hfToken"]) == (3, 0, wrong, right)
        assert mm["gap"] > 0


def test_reference_cli_hundreds_of_records(tmp_path, make_checkpoint):
    ckpt = make_checkpoint(layers=2, hidden=64, heads=4, intermediate=128, vocab=66, seed=1)
    trace = engine_trace(ckpt, tmp_path, ticks=50, sinks=4, window=40)
    assert len(trace["records"]) == 300
    (tmp_path / "trace.json").write_text(json.dumps(trace))
    start = time.perf_counter()
    proc = run_cli("reference", "--trace", tmp_path / "trace.json", "--out", tmp_path / "out.json", "--quiet")
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert {"records", "rows", "maxAbsDiff", "picks", "pickMismatches"} <= set(out)
    assert out["records"] == 300 and out["pickMismatches"] == [] and out["maxAbsDiff"] < 1e-4
    print(f"reference CLI: 300 records in {elapsed:.1f} s (process start included)")
