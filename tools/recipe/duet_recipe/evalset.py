"""`eval-set`: held-out synthetic callers for `duet eval` (format in tools/recipe/README.md).

Texts come from the dialogue generator with a seed the training corpus never uses (9001), voices
and timing are drawn as in stages 2/3 (`duplex`). Per kind (`--per-kind N`):
- turn: the caller speaks one caller turn and stops at `callerEndS`; the ground-truth agent
  answers after a human-like gap;
- pause: the caller hesitates mid-sentence (", um," intonation) and pauses 0.8-1.5 s
  (`pauseStartS`..`pauseEndS`), then finishes the turn (`callerEndS`); the agent answers after;
- backchannel: one long caller turn (4-5 sentences, 8 s or more); the ground-truth agent
  back-channels once or twice at sentence boundaries and answers after `callerEndS`;
- interruption: the agent speaks a long turn from ~0.4 s; the caller starts at `interruptS`
  (1.4-3 s into it), the ground-truth agent stops 0.2-0.4 s later and answers after the caller's
  turn; `promptSeconds` = `interruptS` rounded down to a chunk (the agent channel up to there is
  teacher-forced);
- dialogue: a held-out stage-3 composition of the first 4-7 turns of a dialogue (20-40 s),
  `promptSeconds` = 30 % of it (at most 8 s), rounded down to a chunk;
- callerbackchannel: the agent speaks a long turn from ~0.4 s; the caller back-channels ("Mm hmm.",
  "Yeah.", ...) at `backchannelS` (1.4-3 s into it) and the ground-truth agent goes on to the end of
  its turn (`agentEndS`): an agent that yields to it has mistaken it for an interruption (Full-Duplex-
  Bench v1.5's "user backchannel"); `promptSeconds` as for interruptions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from .dialogues import generate_dialogue
from .duplex import (AGENT_BACKCHANNELS, CALLER_BACKCHANNELS, HESITATIONS, Channel, compose, degrade_caller, draw_gap,
                     merge_segments, plan_pieces, speak, split_sentences, synthesize_dialogue)
from .speech import SAMPLE_RATE, available_variants, check_tools, write_wav

# New kinds go last: an item's texts and timing are drawn from its kind's position here.
KINDS = ("turn", "pause", "backchannel", "interruption", "dialogue", "callerbackchannel")
DEFAULT_SEED = 9001
CHUNK_S = 0.16


def _sentences(dialogue: dict, speaker: str, skip_first: bool = True) -> list[str]:
    out = []
    for k, t in enumerate(dialogue["turns"]):
        if t["speaker"] == speaker and not (skip_first and k == 0):
            out.extend(split_sentences(t["text"]))
    return out


def _finish(item_id: str, kind: str, caller: Channel, agent: Channel, rng, *, prompt: float, events: dict,
            min_end: float, out: Path, tiny: bool) -> dict:
    end = max(caller.end, agent.end, min_end) + 0.6
    n = int(np.ceil(end / CHUNK_S)) * int(CHUNK_S * SAMPLE_RATE)
    a = agent.render(n, 10 ** (float(rng.uniform(-20, -14)) / 20) / 0.1)
    c = caller.render(n, 10 ** (float(rng.uniform(-24, -10)) / 20) / 0.1)
    degradation, c = degrade_caller(c, rng) if not tiny else ("clean", c)
    write_wav(out / f"{item_id}.caller.wav", c)
    write_wav(out / f"{item_id}.agent.wav", a)
    return {"id": item_id, "kind": kind, "caller": f"{item_id}.caller.wav", "agent": f"{item_id}.agent.wav",
            "promptSeconds": round(prompt, 3), "callerSpeech": merge_segments(caller.segments),
            "agentSpeech": merge_segments(agent.segments), "events": {k: round(v, 3) for k, v in events.items()},
            "seconds": round(n / SAMPLE_RATE, 3), "callerDegradation": degradation}


def _answer(agent: Channel, voices, sents_agent, rng, at: float, n: int = 1) -> None:
    """The ground-truth agent's answer after a human-like gap (a sentence of 4+ words: a takeover)."""
    sents_agent = [s for s in sents_agent if len(s.split()) >= 4] or sents_agent
    t = at + max(0.12, draw_gap(rng, "agent", 2))
    for j in range(n):
        t = agent.place(t, speak(sents_agent[int(rng.integers(len(sents_agent)))], voices["agent"]))
        t += float(rng.uniform(0.08, 0.25))


FILLERS = tuple(sorted({h for h in HESITATIONS if h.strip(", ")}))  # ", um," ...: the hesitations with a word


def pause_cue(fragment: str) -> str:
    """What tells a listener that a hesitation is not a turn end: a filler ("um", "uh", "er"), or
    only the continuation intonation of a bare comma (which the default 128 k-means units keep
    little of: tools/recipe/README.md)."""
    return "filler" if fragment.rstrip().endswith(FILLERS) else "intonation"


def make_item(kind: str, k: int, seed: int, variants: list[str], out: Path, tiny: bool) -> dict:
    idx = KINDS.index(kind) * 100000 + k
    d = generate_dialogue(seed, idx)
    rng = np.random.default_rng([seed, idx, 3])
    voices = plan_pieces(d, seed, idx, variants)["voices"]
    caller_s = _sentences(d, "caller") or [t["text"] for t in d["turns"]]
    agent_s = _sentences(d, "agent") or [t["text"] for t in d["turns"]]
    caller, agent = Channel(), Channel()
    item_id = f"{kind}-{k:03d}"
    t0 = float(rng.uniform(0.3, 0.8))
    if kind == "turn":
        t = t0
        for j in range(1 if tiny else int(rng.integers(1, 3))):
            if j:
                t += float(rng.uniform(0.08, 0.3))
            t = caller.place(t, speak(caller_s[int(rng.integers(len(caller_s)))], voices["caller"]))
        _answer(agent, voices, agent_s, rng, t, 1)
        return _finish(item_id, kind, caller, agent, rng, prompt=0.0, events={"callerEndS": t}, min_end=t + 3.0,
                       out=out, tiny=tiny)
    if kind == "pause":
        long_ones = [s for s in caller_s if len(s.split()) >= 5] or ["I think the football match was really wonderful."]
        s = long_ones[int(rng.integers(len(long_ones)))]
        words = s.split()
        cut = int(rng.integers(2, len(words) - 1))
        first = " ".join(words[:cut]).rstrip(",.?!") + HESITATIONS[int(rng.integers(len(HESITATIONS)))]
        t = t0
        if not tiny and rng.random() < 0.5:
            t = caller.place(t, speak(caller_s[int(rng.integers(len(caller_s)))], voices["caller"]))
            t += float(rng.uniform(0.08, 0.3))
        p0 = caller.place(t, speak(first, voices["caller"]))
        p1 = p0 + float(rng.uniform(0.8, 1.5))
        t = caller.place(p1, speak(" ".join(words[cut:]), voices["caller"]))
        _answer(agent, voices, agent_s, rng, t, 1)
        item = _finish(item_id, kind, caller, agent, rng, prompt=0.0,
                       events={"pauseStartS": p0, "pauseEndS": p1, "callerEndS": t}, min_end=t + 3.0, out=out,
                       tiny=tiny)
        return {**item, "pauseCue": pause_cue(first)}
    if kind == "backchannel":
        t = t0
        bounds = []
        n = 2 if tiny else int(rng.integers(4, 6))
        for j in range(n):
            if j:
                g = float(rng.uniform(0.1, 0.35))
                bounds.append(t)
                t += g
            t = caller.place(t, speak(caller_s[int(rng.integers(len(caller_s)))], voices["caller"]))
        for b in sorted(rng.choice(bounds, size=min(len(bounds), int(rng.integers(1, 3))), replace=False)):
            bc = speak(AGENT_BACKCHANNELS[int(rng.integers(len(AGENT_BACKCHANNELS)))], voices["agent"])
            at = float(b) + float(rng.uniform(0.0, 0.2))
            if at + len(bc) / SAMPLE_RATE < t - 0.3 and all(at > e + 0.3 for _s, e in agent.segments):
                agent.place(at, bc)
        _answer(agent, voices, agent_s, rng, t, 1)
        return _finish(item_id, kind, caller, agent, rng, prompt=0.0, events={"callerEndS": t}, min_end=t + 3.0,
                       out=out, tiny=tiny)
    if kind in ("interruption", "callerbackchannel"):
        t = t0
        for j in range(2 if tiny else 4):
            if j:
                t += float(rng.uniform(0.08, 0.3))
            t = agent.place(t, speak(agent_s[int(rng.integers(len(agent_s)))], voices["agent"]))
        # (a caller's back-channel leaves the agent 3 s of its turn to go on with, when it has them)
        at = min(t0 + float(rng.uniform(1.4, 3.0)), t - (3.0 if kind == "callerbackchannel" and not tiny else 0.5))
        # the agent must be speaking at interruptS: out of a gap between its sentences, into the next one
        for s0, e0 in sorted(agent.segments):
            if at < s0:
                at = min(s0 + 0.1, e0 - 0.1)
                break
            if at < e0:
                break
        prompt = np.floor(at / CHUNK_S) * CHUNK_S
        if kind == "callerbackchannel":
            # the caller only signals that it listens; the agent talks on
            e = caller.place(at, speak(CALLER_BACKCHANNELS[int(rng.integers(len(CALLER_BACKCHANNELS)))],
                                       voices["caller"]))
            return _finish(item_id, kind, caller, agent, rng, prompt=float(prompt),
                           events={"backchannelS": at, "backchannelEndS": e, "agentEndS": t}, min_end=t + 1.0,
                           out=out, tiny=tiny)
        agent.cut(at + float(rng.uniform(0.2, 0.4)))
        long_caller = [x for x in caller_s if len(x.split()) >= 4] or caller_s  # a real interruption, no back-channel
        c = caller.place(at, speak(long_caller[int(rng.integers(len(long_caller)))], voices["caller"]))
        _answer(agent, voices, agent_s, rng, c, 1)
        return _finish(item_id, kind, caller, agent, rng, prompt=float(prompt),
                       events={"interruptS": at, "callerEndS": c}, min_end=c + 3.0, out=out, tiny=tiny)
    # dialogue
    n_turns = 3 if tiny else int(rng.integers(4, 8))
    short = {**d, "turns": d["turns"][:n_turns]}
    plan = synthesize_dialogue(short, seed, idx, variants)
    # composition 1 whatever the training data's default: the eval set is the yardstick, it stays put
    s = compose(plan, short, 3, rng, caller_degrade=not tiny, tail=1.0, composition=1)
    n = int(np.ceil(len(s["caller"]) / (CHUNK_S * SAMPLE_RATE))) * int(CHUNK_S * SAMPLE_RATE)
    for ch in ("caller", "agent"):
        x = np.zeros(n, np.float32)
        x[:len(s[ch])] = s[ch]
        write_wav(out / f"{item_id}.{ch}.wav", x)
    prompt = float(np.floor(min(8.0, 0.3 * n / SAMPLE_RATE) / CHUNK_S) * CHUNK_S)
    ev = {}
    ends = [e for e in s["events"]["callerEnds"] if e > prompt]
    if ends:
        ev["callerEndS"] = ends[0]
    return {"id": item_id, "kind": kind, "caller": f"{item_id}.caller.wav", "agent": f"{item_id}.agent.wav",
            "promptSeconds": round(prompt, 3), "callerSpeech": s["callerSpeech"], "agentSpeech": s["agentSpeech"],
            "events": ev, "seconds": round(n / SAMPLE_RATE, 3), "callerDegradation": s["callerDegradation"],
            "groundTruth": {"turns": s["turns"], "pauses": s["events"]["pauses"],
                            "interruptions": s["events"]["interruptions"],
                            "backchannels": s["events"]["backchannels"]}}


def _job(job):
    kind, k, seed, variants, out, tiny = job
    return make_item(kind, k, seed, variants, Path(out), tiny)


def make_evalset(out: Path, *, per_kind: int = 24, seed: int = DEFAULT_SEED, tiny: bool = False, jobs: int = 2,
                 progress: bool = True) -> dict:
    from multiprocessing import get_context

    from tqdm import tqdm

    check_tools()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if tiny:
        per_kind = 1
    if (out / "details.json").exists() and (out / "manifest.json").exists():
        old = json.loads((out / "details.json").read_text())
        items = json.loads((out / "manifest.json").read_text())["items"]
        # a set made before pause items carried their cue is remade (the same audio: seeded)
        cued = all("pauseCue" in it for it in items if it["kind"] == "pause")
        if (old.get("seed") == seed and old.get("tiny") == tiny and cued
                and len(old.get("items", [])) == per_kind * len(KINDS)):
            return {"out": str(out), "items": len(items),
                    "audioSeconds": round(sum(it["seconds"] for it in old["items"]), 1),
                    "kinds": {k: sum(1 for it in items if it["kind"] == k) for k in KINDS}, "reused": True}
    variants = available_variants()
    work = [(kind, k, seed, variants, str(out), tiny) for kind in KINDS for k in range(per_kind)]
    items = []
    bar = tqdm(total=len(work), desc="eval-set", unit="item", file=sys.stderr, disable=not progress)
    if jobs <= 1:
        for w in work:
            items.append(_job(w))
            bar.update()
    else:
        with get_context("fork").Pool(jobs) as pool:
            for it in pool.imap_unordered(_job, work):
                items.append(it)
                bar.update()
    bar.close()
    order = {kind: i for i, kind in enumerate(KINDS)}
    items.sort(key=lambda it: (order[it["kind"]], it["id"]))
    keys = ("id", "kind", "caller", "agent", "promptSeconds", "callerSpeech", "agentSpeech", "events")
    manifest = {"format": "duet.evalset", "version": 1, "sampleRate": SAMPLE_RATE, "chunkMs": int(CHUNK_S * 1000),
                "items": [{k: it[k] for k in keys + ("pauseCue",) if k in it} for it in items]}
    # Extras (seed, durations, caller degradation, a dialogue's turns/events) beside the manifest.
    details = {"seed": seed, "tiny": tiny,
               "items": [{k: v for k, v in it.items() if k not in keys[1:] + ("pauseCue",)} for it in items]}
    for name, obj in (("details.json", details), ("manifest.json", manifest)):
        tmp = out / f"{name}.tmp"
        tmp.write_text(json.dumps(obj, indent=1) + "\n")
        os.replace(tmp, out / name)
    secs = sum(it["seconds"] for it in items)
    return {"out": str(out), "items": len(items), "audioSeconds": round(secs, 1),
            "kinds": {k: sum(1 for it in items if it["kind"] == k) for k in KINDS}}
