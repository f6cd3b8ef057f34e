"""`dialogue-hazard`: when does a dialogue model take the floor? Teacher-forced floor-taking
hazards around the caller's silences, model against ground truth.

For every held-out stage-3 sample of `dialogue-data` the model reads the sample's token sequence
(`sequence.interleave`, the ground truth on both sides) and, at the `[S0]` of each chunk, gives
the probability that the agent starts speaking in that chunk: the mass of speech units (not a
silence unit, not the agent's previous unit, which dedup never repeats) among the tokens the
engine may sample there. Around three kinds of caller silence onset, read off the sample's
ground-truth events:
- `turnEnd`: the caller finished a turn (the agent should take the floor, usually 0.1-0.5 s later);
- `pause`: the caller paused mid-turn after a hesitation (the agent should stay quiet);
- `sentenceGap`: the caller's silence between two sentences of one turn (60-300 ms; quiet).
The hazard at offset k (chunks after the onset's chunk) is averaged over the onsets where the
ground-truth agent has not spoken in chunks 0..k-1, i.e. P(start at k | not yet started), for the
model and for the ground truth. The product of (1 - hazard) is the share still silent after k.

A model that cannot tell a turn end from a pause has about the same hazards at both (the
default model's weakness, docs/EVAL.md); a good one is near the ground truth in both rows.
Teacher forcing isolates the decision from the model's own earlier samples (`duet eval` and
`dialogue-measure` run it free).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .sequence import Vocab, interleave

KINDS = ("turnEnd", "pause", "sentenceGap")


def silence_onsets(meta: dict, tolerance: float = 0.05) -> list[tuple[str, float]]:
    """(kind, seconds) of every caller silence onset of a composed sample: turn ends, mid-turn
    pauses, and the other ends of caller speech segments (gaps between sentences of a turn)."""
    ev = meta.get("events", {})
    ends = [float(x) for x in ev.get("callerEnds", [])]
    pauses = [float(a) for a, _b in ev.get("pauses", [])]
    out = [("turnEnd", t) for t in ends] + [("pause", t) for t in pauses]
    for _s, e in meta.get("callerSpeech", []):
        if all(abs(e - t) > tolerance for t in ends + pauses):
            out.append(("sentenceGap", float(e)))
    return sorted(out, key=lambda x: x[1])


def hazard_table(rows: dict[str, list[list[tuple[float, bool]]]], max_chunks: int) -> dict:
    """Aggregates per-onset series of (model P(start), ground truth speaks) into hazards: for each
    kind and offset k, over the onsets whose ground truth has not spoken before k."""
    table = {}
    for kind, series in rows.items():
        per_k = []
        model_still, truth_still = 1.0, 1.0
        for k in range(max_chunks):
            live = [s for s in series if len(s) > k and not any(g for _p, g in s[:k])]
            if not live:
                break
            hz = float(np.mean([s[k][0] for s in live]))
            gt = float(np.mean([s[k][1] for s in live]))
            model_still *= 1.0 - hz
            truth_still *= 1.0 - gt
            per_k.append({"chunk": k, "n": len(live), "modelHazard": round(hz, 4), "truthHazard": round(gt, 4),
                          "modelStillSilent": round(model_still, 4), "truthStillSilent": round(truth_still, 4)})
        table[kind] = {"onsets": len(series), "byChunk": per_k}
    return table


def floor_hazards(checkpoint: Path, data: Path, *, stage: int = 3, split: str = "heldout", chunk_ms: int = 160,
                  max_chunks: int = 8, limit: int | None = None, seq_len: int = 1024, threads: int = 2,
                  progress: bool = True) -> dict:
    import json

    import torch
    from tqdm import tqdm
    from transformers import LlamaForCausalLM

    from .dialogue_data import load_stage

    torch.set_num_threads(threads)
    checkpoint, data = Path(checkpoint), Path(data)
    model = LlamaForCausalLM.from_pretrained(str(checkpoint)).eval()
    vocab = Vocab.of_checkpoint(checkpoint, model.config.vocab_size)
    info = json.loads((data / "data.json").read_text())
    silence = {int(info["tokenizer"].get("silenceUnit") or 0)}
    samples = load_stage(data, stage, split)[:limit]
    speech_units = _speech_tokens(vocab, model.config.vocab_size, silence)
    u = chunk_ms // 40
    cs = chunk_ms / 1000
    rows: dict[str, list] = {k: [] for k in KINDS}
    for meta, agent, user in tqdm(samples, desc="hazard", unit="sample", file=sys.stderr, disable=not progress):
        toks, chunk_of, _side = interleave(agent, user, u, vocab, with_chunks=True)
        t = torch.tensor(toks)[None]
        logp = _log_probs(model, t, vocab.s0, seq_len)
        s0_at = {}
        prev_unit = {}  # chunk -> the agent's last unit before it
        last = None
        for i, tok in enumerate(toks):
            if tok == vocab.s0:
                s0_at[chunk_of[i]] = i
                prev_unit[chunk_of[i]] = last
            elif _side[i] and vocab.unit_base <= tok < vocab.unit_base + vocab.unit_count:
                last = tok - vocab.unit_base

        def p_start(j: int) -> float | None:
            i = s0_at.get(j)
            if i is None:
                return None
            banned = prev_unit.get(j)
            return _start_probability(logp[i], speech_units, None if banned is None else vocab.unit_base + banned)

        def truth(j: int) -> bool:
            i = s0_at.get(j)
            if i is None or i + 1 >= len(toks):
                return False
            nxt = toks[i + 1]
            return vocab.unit_base <= nxt < vocab.unit_base + vocab.unit_count and (nxt - vocab.unit_base) not in silence

        for kind, at in silence_onsets(meta):
            j0 = int(at / cs)
            if truth(j0 - 1):  # the agent was already speaking (an overlap): not a floor decision
                continue
            series = []
            for k in range(max_chunks):
                p = p_start(j0 + k)
                if p is None:
                    break
                series.append((p, truth(j0 + k)))
            if series:
                rows[kind].append(series)
    table = hazard_table(rows, max_chunks)
    return {"model": str(checkpoint), "data": str(data), "stage": stage, "split": split, "chunkMs": chunk_ms,
            "samples": len(samples), "hazards": table, "discrimination": _discrimination(table)}


def evalset_hazards(checkpoint: Path, evalset: Path, tokenizer: Path, *, max_chunks: int = 19, seq_len: int = 1024,
                    threads: int = 2, progress: bool = True) -> dict:
    """Floor-taking hazards on an eval set's `turn` and `pause` items with the agent kept silent:
    the real caller, the agent's channel all silence, and at each chunk from the caller's end
    (turn) or the pause's start (pause) the probability that the agent starts speaking. That is
    the context of a free run in which the agent has not spoken yet, so the hazards are what
    `duet eval` samples from (before temperature and top-p), and they go on past the ground
    truth's answer (at +10 chunks: would it still answer?)."""
    import json

    import torch
    from tqdm import tqdm
    from transformers import LlamaForCausalLM

    from .duplex import UnitsTokenizer
    from .speech import read_wav

    torch.set_num_threads(threads)
    checkpoint, evalset = Path(checkpoint), Path(evalset)
    manifest = json.loads((evalset / "manifest.json").read_text())
    chunk_s = int(manifest.get("chunkMs", 160)) / 1000
    tok = UnitsTokenizer(Path(tokenizer))
    model = LlamaForCausalLM.from_pretrained(str(checkpoint)).eval()
    vocab = Vocab.of_checkpoint(checkpoint, model.config.vocab_size)
    speech = _speech_tokens(vocab, model.config.vocab_size, {tok.silence_unit})
    u = round(chunk_s / 0.04)
    items = [it for it in manifest["items"] if it["kind"] in ("turn", "pause")]
    rows: dict[str, list[list[float]]] = {"turn": [], "pause": []}
    for it in tqdm(items, desc="hazard", unit="item", file=sys.stderr, disable=not progress):
        user = tok(read_wav(evalset / it["caller"])).astype(np.int64)
        agent = np.full_like(user, tok.silence_unit)
        toks, chunk_of, _side = interleave(agent, user, u, vocab, with_chunks=True)
        logp = _log_probs(model, torch.tensor(toks)[None], vocab.s0, seq_len)
        s0_at = {chunk_of[i]: i for i, t in enumerate(toks) if t == vocab.s0}
        at = it["events"]["callerEndS" if it["kind"] == "turn" else "pauseStartS"]
        j0 = int(at / chunk_s)
        series = []
        for k in range(max_chunks):
            i = s0_at.get(j0 + k)
            if i is None:
                break
            # the agent's last unit is the silence unit, which the engine bans next (dedup)
            series.append(_start_probability(logp[i], speech, vocab.unit_base + tok.silence_unit))
        rows[it["kind"]].append(series)
    out = {}
    for kind, series in rows.items():
        by_k = []
        for k in range(max_chunks):
            vals = [s[k] for s in series if len(s) > k]
            if not vals:
                break
            by_k.append(round(float(np.mean(vals)), 4))
        out[kind] = {"items": len(series), "meanHazardByChunk": by_k,
                     "meanHazard1to3": round(float(np.mean(by_k[1:4])), 4) if len(by_k) >= 4 else None}
    return {"model": str(checkpoint), "evalset": str(evalset), "chunkMs": round(chunk_s * 1000),
            "agent": "silent", "hazards": out}


def format_evalset_table(result: dict) -> str:
    h = result["hazards"]
    n = max(len(v["meanHazardByChunk"]) for v in h.values())
    lines = [f"floor-taking hazard on {result['evalset']} (agent kept silent), {result['chunkMs']} ms chunks from the "
             "caller's end (turn) / the pause's start (pause): mean P(agent starts in chunk k)", "",
             "| items | n | " + " | ".join(f"+{k}" for k in range(n)) + " |", "|---|---|" + "---|" * n]
    for kind, v in h.items():
        lines.append(f"| {kind} | {v['items']} | " + " | ".join(f"{x:.2f}" for x in v["meanHazardByChunk"]) + " |")
    return "\n".join(lines)


def _speech_tokens(vocab: Vocab, size: int, silence: set[int]):
    """The unit tokens that are speech (not a silence unit), as a mask over the vocabulary."""
    import torch

    speech = torch.zeros(size, dtype=torch.bool)
    speech[vocab.unit_base:vocab.unit_base + vocab.unit_count] = True
    for s in silence:
        speech[vocab.unit_base + s] = False
    return speech


def _start_probability(logp, speech, banned_token: int | None) -> float:
    """P(the agent's next token is speech) at a chunk's [S0], among the tokens the engine may sample
    there: all but the agent's previous unit, which dedup never repeats."""
    import torch

    p = logp.exp()
    allowed = torch.ones_like(speech)
    if banned_token is not None:
        allowed[banned_token] = False
    return float(p[speech & allowed].sum() / p[allowed].sum())


def _discrimination(table: dict) -> dict:
    """Mean hazard over chunks 1-3 after the onset (the window of a human-like answer), per kind."""
    out = {}
    for kind, t in table.items():
        hz = [r for r in t["byChunk"] if 1 <= r["chunk"] <= 3]
        if hz:
            out[kind] = {"model": round(float(np.mean([r["modelHazard"] for r in hz])), 4),
                         "truth": round(float(np.mean([r["truthHazard"] for r in hz])), 4)}
    return out


def _log_probs(model, tokens, s0: int, seq_len: int):
    """Next-token log-probabilities for every position of a long sequence, in windows of `seq_len`
    tokens (the training crops' length) that start at a chunk's [S0], each at least half a window
    after the previous; a position's figure comes from the earliest window that covers it (the
    one with the most history)."""
    import torch

    n = tokens.shape[1]
    out = None
    starts = (tokens[0] == s0).nonzero().flatten().tolist()
    a, keep_from = 0, 0
    while True:
        with torch.no_grad():
            lg = torch.log_softmax(model(tokens[:, a:a + seq_len]).logits[0].float(), -1)
        if out is None:
            out = torch.empty(n, lg.shape[-1])
        out[a + keep_from:a + lg.shape[0]] = lg[keep_from:]
        if a + seq_len >= n:
            return out
        nxt = [p for p in starts if p >= a + seq_len // 2]
        if not nxt:
            return out
        covered = a + lg.shape[0]
        a = nxt[0]
        keep_from = covered - a


def format_table(result: dict) -> str:
    lines = [f"floor-taking hazard (teacher-forced), {result['samples']} {result['split']} stage-{result['stage']} "
             f"samples, {result['chunkMs']} ms chunks: P(agent starts in chunk k | not started before)",
             "", "| onset | n | " + " | ".join(f"+{k}" for k in range(8)) + " |",
             "|---|---|" + "---|" * 8]
    for kind, t in result["hazards"].items():
        cells = [f"{r['modelHazard']:.2f} / {r['truthHazard']:.2f}" for r in t["byChunk"]]
        cells += [""] * (8 - len(cells))
        lines.append(f"| {kind} (model / truth) | {t['onsets']} | " + " | ".join(cells[:8]) + " |")
    d = result["discrimination"]
    if d:
        lines += ["", "mean hazard in chunks +1..+3: " + "; ".join(
            f"{k} model {v['model']:.3f} truth {v['truth']:.3f}" for k, v in d.items())]
    return "\n".join(lines)
