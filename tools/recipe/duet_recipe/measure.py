"""`dialogue-measure`: a quick timing check of a dialogue model on an eval set (Python, not `duet eval`).

Per item: the caller and ground-truth agent WAVs are tokenised with the default tokenizer; the
model runs the SyncLLM loop on a Hugging Face checkpoint (KV cache, the sequence of
`sequence.interleave`): at tick n it predicts the caller's chunk n (`[S1]` + units or nothing),
then writes `[S0]` and the agent's units of chunk n+1 -- the ground truth up to and including
the prompt's last chunk boundary (`n+1 <= promptSeconds / chunk`, as `duet eval` opens the engine
with the ground truth's next chunk), else sampled (temperature / top-p as the engine's defaults, unit
tokens and the two tags only, the previous agent unit banned, a tag closes the chunk, at most U
units); then the prediction is rolled back (cache cropped) and the caller's real chunk n and the
agent's chunk are fed again: the engine's loop when every caller chunk arrives on time.

The agent's chunks are expanded to 40 ms slots (`expandChunk`); a slot is speech when its unit
is not a silence unit (units that the ground-truth agent channels use mostly outside their
speech segments, plus the tokenizer's `silenceUnit`). Speech runs: gaps < 200 ms merged, runs
< 120 ms dropped. Figures (all in seconds of audio time):
- pause_takeover_rate: items `pause` where the agent speaks >= 0.5 s in [pauseStartS, pauseEndS + 0.5]
- turn_takeover_rate / turn_latency_s: items `turn`, `pause`, `backchannel`: the agent speaks
  >= 0.5 s within 3 s after callerEndS; latency = onset of its first run from callerEndS - 0.3 s
- backchannel: agent runs < 1 s during the long caller turn (rate per item) and takeovers
  (a run >= 1 s ending > 0.3 s before callerEndS)
- interruption_stop_rate / interruption_stop_s: items `interruption`: time from interruptS until
  the agent is silent for 0.5 s; stopped when that is <= 1.0 s
- agent speech fraction while the caller speaks vs in the 2 s after each caller turn end
  (excluding the prompt), model and ground truth.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .duplex import UnitsTokenizer
from .sequence import Vocab, dedup_chunk
from .speech import read_wav

SLOT = 0.04


def _runs(speech: np.ndarray, merge: float = 0.2, min_len: float = 0.12) -> list[list[float]]:
    runs = []
    i = 0
    n = len(speech)
    while i < n:
        if speech[i]:
            j = i
            while j < n and speech[j]:
                j += 1
            runs.append([i * SLOT, j * SLOT])
            i = j
        else:
            i += 1
    merged: list[list[float]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < merge:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [r for r in merged if r[1] - r[0] >= min_len]


def _overlap(runs, a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in runs)


class LoopModel:
    def __init__(self, checkpoint: Path, threads: int = 2):
        import torch
        from transformers import LlamaForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = LlamaForCausalLM.from_pretrained(str(checkpoint), attn_implementation="sdpa").eval()
        self.vocab = Vocab.of_checkpoint(checkpoint, self.model.config.vocab_size)

    def run(self, agent_gt: np.ndarray, user: np.ndarray, u: int, prompt_chunks: int, *, temperature: float,
            top_p: float, seed: int, predict_user: bool = True,
            timing_temperature: float | None = None) -> list[list[int]]:
        """Agent chunks (deduped units) of one call. With `predict_user` (the engine's loop), at tick n
        the model first predicts the caller's chunk n, then generates its own chunk n+1 after that
        prediction; at the next tick the prediction is rolled back (KV cache cropped) and the real
        caller units are fed instead. Without it, the agent's chunk n+1 sees the real chunk n
        (one chunk more information than the engine has)."""
        torch = self.torch
        from transformers import DynamicCache

        v = self.vocab
        gen = torch.Generator().manual_seed(seed)
        cache = DynamicCache()
        ranges = {
            "agent": [(v.unit_base, v.unit_base + v.unit_count), (v.s0, v.s0 + 1), (v.s1, v.s1 + 1)],
            "open": [(v.s0, v.s0 + 1), (v.s1, v.s1 + 1)],
            "first": [(v.unit_base, v.unit_base + v.unit_count)],
            "more": [(v.unit_base, v.unit_base + v.unit_count), (v.s0, v.s0 + 1)],
        }
        masks = {}
        for k, rs in ranges.items():
            m = torch.full((v.vocab_size,), float("-inf"))
            for a, b in rs:
                m[a:b] = 0
            masks[k] = m
        state = {"pending": [], "length": 0}

        def logits_after():
            ids = torch.tensor([state["pending"]])
            with torch.no_grad():
                out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
            state["length"] += len(state["pending"])
            state["pending"] = []
            return out.logits[0, -1]

        unit_slice = slice(v.unit_base, v.unit_base + v.unit_count)

        def sample(kind: str, banned) -> int:
            logits = logits_after() + masks[kind]
            if banned is not None:
                logits[v.unit_base + banned] = float("-inf")
            if timing_temperature is not None:
                # The timing decision (a tag, or some unit) at timing_temperature, without top-p;
                # temperature and top-p then pick the unit (the engine's `timingTemperature`).
                t = max(timing_temperature, 1e-4)
                groups = torch.softmax(logits / t, -1)
                unit_mass = groups[unit_slice].sum()
                groups[unit_slice] = 0
                groups[v.unit_base] = unit_mass
                g = int(torch.multinomial(groups, 1, generator=gen))
                if g != v.unit_base:
                    return g
                only_units = torch.full_like(logits, float("-inf"))
                only_units[unit_slice] = logits[unit_slice]
                logits = only_units
            probs = torch.softmax(logits / max(temperature, 1e-4), -1)
            sp, si = torch.sort(probs, descending=True)
            sp = sp * ((torch.cumsum(sp, 0) - sp) < top_p)
            return int(si[torch.multinomial(sp / sp.sum(), 1, generator=gen)])

        prev_a = prev_u = None
        chunks: list[list[int]] = [[]]
        n = min(len(agent_gt), len(user)) // u
        state["pending"].append(v.s0)  # the agent's chunk 0: always empty
        for j in range(n):
            # tick j: context = agent chunks <= j, real caller chunks < j
            nxt = j + 1
            # As the engine opens a call after a prompt: the agent's chunk at the prompt's end is
            # the ground truth's too (it goes on speaking), the model's own start after it.
            generate = nxt > prompt_chunks  # nxt >= 1: without a prompt every agent chunk is the model's
            if generate and predict_user:
                mark = state["length"] + len(state["pending"])
                tok = sample("open", None)
                if tok == v.s1:
                    state["pending"].append(tok)
                    last, k = prev_u, 0
                    while k < u:
                        tok = sample("first" if k == 0 else "more", last)
                        if tok == v.s0:
                            break
                        state["pending"].append(tok)
                        last, k = tok - v.unit_base, k + 1
            # the agent's chunk j+1
            if not predict_user or not generate:
                us = dedup_chunk(user[j * u:(j + 1) * u], prev_u)
                if us:
                    prev_u = us[-1]
                    state["pending"].append(v.s1)
                    state["pending"].extend(v.unit_base + x for x in us)
            state["pending"].append(v.s0)
            a_units: list[int] = []
            if not generate:
                a_units = dedup_chunk(agent_gt[nxt * u:(nxt + 1) * u], prev_a)
                state["pending"].extend(v.unit_base + x for x in a_units)
            else:
                last = prev_a
                while len(a_units) < u:
                    tok = sample("agent", last)
                    if tok in (v.s0, v.s1):
                        break
                    a_units.append(tok - v.unit_base)
                    last = a_units[-1]
                    state["pending"].append(tok)
            if a_units:
                prev_a = a_units[-1]
            chunks.append(a_units)
            if generate and predict_user:
                # the real caller chunk j replaces the prediction (rollback), the agent chunk follows again
                if state["length"] > mark:
                    cache.crop(mark)
                    state["length"] = mark
                agent_tail = [v.s0] + [v.unit_base + x for x in a_units]
                state["pending"] = []
                us = dedup_chunk(user[j * u:(j + 1) * u], prev_u)
                if us:
                    prev_u = us[-1]
                    state["pending"].append(v.s1)
                    state["pending"].extend(v.unit_base + x for x in us)
                state["pending"].extend(agent_tail)
        return chunks[:n]


def expand(chunks: list[list[int]], u: int, fill: int) -> np.ndarray:
    slots = []
    prev = None
    for c in chunks:
        if not c:
            slots.extend([prev if prev is not None else fill] * u)
            continue
        out = [0] * u
        for i, x in enumerate(c):
            for s in range(i * u // len(c), (i + 1) * u // len(c)):
                out[s] = x
        slots.extend(out)
        prev = c[-1]
    return np.array(slots, np.int64)


def silence_units(items, units_of, unit_count: int, silence_unit: int) -> set[int]:
    inside = np.zeros(unit_count)
    total = np.zeros(unit_count)
    for it in items:
        a = units_of(it)[0]
        t = (np.arange(len(a)) + 0.5) * SLOT
        sp = np.zeros(len(a), bool)
        for s, e in it["agentSpeech"]:
            sp |= (t >= s) & (t < e)
        np.add.at(total, a, 1)
        np.add.at(inside, a, sp.astype(float))
    sil = {int(k) for k in range(unit_count) if total[k] >= 3 and inside[k] / total[k] < 0.5}
    sil.add(int(silence_unit))
    return sil


def item_figures(it: dict, speech: np.ndarray) -> dict:
    runs = _runs(speech)
    ev = it["events"]
    f: dict = {"kind": it["kind"], "id": it["id"]}
    end = it.get("_seconds", len(speech) * SLOT)
    if it["kind"] == "pause":
        f["pauseTakeover"] = _overlap(runs, ev["pauseStartS"], ev["pauseEndS"] + 0.5) >= 0.5
    if "callerEndS" in ev and it["kind"] in ("turn", "pause", "backchannel"):
        ce = ev["callerEndS"]
        f["turnTakeover"] = _overlap(runs, ce, ce + 3.0) >= 0.5
        onsets = [s for s, e in runs if ce - 0.3 <= s <= ce + 3.0 and e - s >= 0.2]
        f["turnLatency"] = (onsets[0] - ce) if onsets else None
    if it["kind"] == "backchannel":
        ce = ev["callerEndS"]
        start = it["callerSpeech"][0][0]
        f["backchannels"] = sum(1 for s, e in runs if start <= s < ce - 0.3 and e - s < 1.0)
        f["earlyTakeover"] = any(start <= s and e - s >= 1.0 and e < ce - 0.3 for s, e in runs)
    if it["kind"] == "interruption":
        at = ev["interruptS"]
        stop = None
        t = at
        while t < end:
            if _overlap(runs, t, t + 0.5) == 0:
                stop = t - at
                break
            nxt = [e for s, e in runs if e > t]
            t = min(nxt) if nxt else end
        f["stopS"] = stop
        f["stopped"] = stop is not None and stop <= 1.0
    # speech while the caller speaks vs shortly after caller turn ends (after the prompt)
    t = (np.arange(len(speech)) + 0.5) * SLOT
    caller = np.zeros(len(speech), bool)
    for s, e in it["callerSpeech"]:
        caller |= (t >= s) & (t < e)
    after = np.zeros(len(speech), bool)
    ends = [ev["callerEndS"]] if "callerEndS" in ev else []
    if it["kind"] == "dialogue":
        ends = [e for _s, e in it["callerSpeech"]]
    for ce in ends:
        after |= (t >= ce) & (t < ce + 2.0)
    after &= ~caller
    live = t >= it["promptSeconds"]
    f["_slots"] = {"caller": int((caller & live).sum()), "callerAgent": int((caller & live & speech).sum()),
                   "after": int((after & live).sum()), "afterAgent": int((after & live & speech).sum())}
    return f


def summarise(figs: list[dict]) -> dict:
    def mean(xs):
        xs = [x for x in xs if x is not None]
        return round(float(np.mean(xs)), 3) if xs else None

    def rate(key, kinds=None):
        xs = [f[key] for f in figs if key in f and (kinds is None or f["kind"] in kinds)]
        return round(float(np.mean(xs)), 3) if xs else None

    slots = {k: sum(f["_slots"][k] for f in figs) for k in ("caller", "callerAgent", "after", "afterAgent")}
    return {
        "pause_takeover_rate": rate("pauseTakeover"),
        "turn_takeover_rate": rate("turnTakeover"),
        "turn_latency_s": mean([f.get("turnLatency") for f in figs]),
        "backchannels_per_item": mean([f.get("backchannels") for f in figs if f["kind"] == "backchannel"]),
        "backchannel_early_takeover_rate": rate("earlyTakeover"),
        "interruption_stop_rate": rate("stopped"),
        "interruption_stop_s": mean([f.get("stopS") for f in figs if f["kind"] == "interruption"]),
        "agent_speech_while_caller_speaks": round(slots["callerAgent"] / max(1, slots["caller"]), 3),
        "agent_speech_after_caller_stops": round(slots["afterAgent"] / max(1, slots["after"]), 3),
        "items": len(figs),
    }


def measure(model_dir: Path, evalset: Path, tokenizer: Path, *, temperature: float = 0.8, top_p: float = 0.95,
            seed: int = 0, runs: int = 1, predict_user: bool = True, timing_temperature: float | None = None,
            progress: bool = True) -> dict:
    from tqdm import tqdm

    evalset = Path(evalset)
    manifest = json.loads((evalset / "manifest.json").read_text())
    tok = UnitsTokenizer(Path(tokenizer))
    u = int(manifest["chunkMs"]) // 40
    cache: dict = {}

    def units_of(it):
        if it["id"] not in cache:
            a = tok(read_wav(evalset / it["agent"]))
            c = tok(read_wav(evalset / it["caller"]))
            cache[it["id"]] = (a, c)
        return cache[it["id"]]

    items = manifest["items"]
    sil = silence_units(items, units_of, tok.unit_count, tok.silence_unit)
    model = LoopModel(Path(model_dir))
    figs, gt_figs = [], []
    bar = tqdm(total=len(items) * runs, desc="measure", unit="item", file=sys.stderr, disable=not progress)
    for r in range(runs):
        for k, it in enumerate(items):
            a, c = units_of(it)
            prompt_chunks = int(round(it["promptSeconds"] / (u * SLOT)))
            chunks = model.run(a, c, u, prompt_chunks, temperature=temperature, top_p=top_p, seed=seed + 1000 * r + k,
                               predict_user=predict_user, timing_temperature=timing_temperature)
            slots = expand(chunks, u, tok.silence_unit)
            figs.append(item_figures(it, ~np.isin(slots, list(sil))))
            if r == 0:
                gt = a[:len(slots)]
                gt_figs.append(item_figures(it, ~np.isin(gt, list(sil))))
            bar.update()
    bar.close()
    out = {"model": summarise(figs), "groundTruth": summarise(gt_figs), "silenceUnits": sorted(sil),
           "temperature": temperature, "topP": top_p, "timingTemperature": timing_temperature, "runs": runs,
           "predictUser": predict_user,
           "perKind": {k: sum(1 for it in items if it["kind"] == k) for k in sorted({it["kind"] for it in items})}}
    return out
