"""`dialogue-data`: text dialogues -> synthesised pieces -> stage 1/2/3 samples of 25 Hz units.

Layout of --out (resumable: pieces are kept; composing and tokenising are redone, they are cheap):
  data.json            settings (seed, counts, tokenizer sha256, hours per stage)
  dialogues.jsonl      the text dialogues used (generated or loaded)
  pieces/NNNNNN.npz    synthesised pieces of dialogue N (int16, see duplex.synthesize_dialogue)
  stage{1,2,3}.npz     units of every sample: `agent`, `user` (uint8, concatenated; stage 1: one
                       channel `units` per turn with `speaker` 0 = agent, 1 = caller), `offsets`
  stage{2,3}.jsonl     per sample: dialogue, variant, split, seconds, callerSpeech, agentSpeech,
                       turns, events, callerDegradation
Dialogue i is held out when i % 20 == 19 (never trained on; `dialogue-measure` uses them).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from . import RECIPE
from .dialogues import generate_dialogues, load_dialogues
from .duplex import CALLER_HESITATION, COMPOSITION, UnitsTokenizer, compose, synthesize_dialogue
from .speech import available_variants, check_tools

HELDOUT_EVERY = 20
FORMAT = "duet.recipe.dialogue-data"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def is_heldout(i: int) -> bool:
    return i % HELDOUT_EVERY == HELDOUT_EVERY - 1


_WORKER: dict = {}


def _synth_job(job):
    out, seed, i, dialogue, variants, hesitation = job
    path = Path(out) / "pieces" / f"{i:06d}.npz"
    existed = path.exists()
    synthesize_dialogue(dialogue, seed, i, variants, path, hesitation)
    return i, not existed


def _compose_job(job):
    out, seed, i, dialogue, variants, tokenizer_dir, n_variants, hesitation, composition = job
    tok = _WORKER.get("tok")
    if tok is None or _WORKER.get("dir") != tokenizer_dir:
        tok = _WORKER["tok"] = UnitsTokenizer(Path(tokenizer_dir))
        _WORKER["dir"] = tokenizer_dir
    plan = synthesize_dialogue(dialogue, seed, i, variants, Path(out) / "pieces" / f"{i:06d}.npz", hesitation)
    results = []
    for stage in (2, 3):
        for v in range(n_variants):
            rng = np.random.default_rng([seed, i, stage, v, 5])
            s = compose(plan, dialogue, stage, rng, composition=composition)
            agent = tok(s["agent"]).astype(np.uint8)
            user = tok(s["caller"]).astype(np.uint8)
            meta = {k: s[k] for k in ("seconds", "callerSpeech", "agentSpeech", "turns", "events", "callerDegradation")}
            meta.update({"dialogue": i, "variant": v, "split": "heldout" if is_heldout(i) else "train"})
            turn_units = []
            if stage == 2 and v == 0:  # stage 1: the turns of this rendering, turn-based
                for t in s["turns"]:
                    ch = agent if t["speaker"] == "agent" else user
                    a, b = int(t["start"] * 25), int(np.ceil(t["end"] * 25))
                    turn_units.append((0 if t["speaker"] == "agent" else 1, ch[a:b]))
            results.append((stage, meta, agent, user, turn_units))
    return i, results


def data_identity(info: dict, stage: int | None = None) -> dict:
    """What makes two dialogue data directories the same corpus, from their data.json: a complete
    one is reused by `dialogue-data`, and a training stage resumes only on the same. A data.json
    older than a key was made with its first value (hesitation share 0.45, composition 1). With
    `stage` 1 or 2: the same samples of that stage (composition 3 differs from 1 only in stage 3)."""
    keys = ("seed", "text", "dialogues", "variants")
    composition = info.get("composition", 1)
    if stage is not None and stage < 3 and composition == 3:
        composition = 1
    return {**{k: info.get(k) for k in keys}, "callerHesitation": info.get("callerHesitation", 0.45),
            "composition": composition, "tokenizer": info.get("tokenizer", {}).get("sha256")}


def build_dialogue_data(out: Path, *, dialogues: int = 500, seed: int = 0, text: Path | None = None,
                        tokenizer: Path, variants: int = 2, jobs: int = 2, caller_hesitation: float = CALLER_HESITATION,
                        composition: int = COMPOSITION, progress: bool = True) -> dict:
    from multiprocessing import get_context

    from tqdm import tqdm

    check_tools()
    out = Path(out)
    (out / "pieces").mkdir(parents=True, exist_ok=True)
    if text is not None:
        dlg = load_dialogues(Path(text), limit=dialogues or None)
    else:
        dlg = generate_dialogues(dialogues, seed)
    settings_path = out / "data.json"
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        if old.get("seed") != seed or old.get("text") != (str(text) if text else None):
            raise ValueError(f"{out} holds dialogue data made with another seed or text source; use another --out")
    with open(out / "dialogues.jsonl", "w") as f:
        for d in dlg:
            f.write(json.dumps(d) + "\n")
    vs = available_variants()
    tokenizer = Path(tokenizer).resolve()
    tok_manifest = json.loads((tokenizer / "manifest.json").read_text())

    jobs = max(1, jobs)
    ctx = get_context("fork")
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        want = data_identity({"seed": seed, "text": str(text) if text else None, "dialogues": len(dlg),
                              "variants": variants, "callerHesitation": caller_hesitation,
                              "composition": composition, "tokenizer": {"sha256": tok_manifest["sha256"]}})
        if data_identity(old) == want and all((out / f"stage{k}.npz").exists() for k in (1, 2, 3)):
            _log(f"dialogue data {out}: complete for these settings, reused")
            return {**old, "composition": old.get("composition", 1), "reused": True}
    work = [(str(out), seed, i, d, vs, caller_hesitation) for i, d in enumerate(dlg)]
    bar = tqdm(total=len(work), desc="synthesise", unit="dlg", file=sys.stderr, disable=not progress)
    new = 0
    with ctx.Pool(jobs) as pool:
        for _i, was_new in pool.imap_unordered(_synth_job, work, chunksize=1):
            new += int(was_new)
            bar.update()
    bar.close()

    work2 = [(str(out), seed, i, d, vs, str(tokenizer), variants, caller_hesitation, composition)
             for i, d in enumerate(dlg)]
    per_stage: dict[int, list] = {1: [], 2: [], 3: []}
    bar = tqdm(total=len(work2), desc="compose+tokenise", unit="dlg", file=sys.stderr, disable=not progress)
    with ctx.Pool(jobs) as pool:
        for i, results in pool.imap_unordered(_compose_job, work2, chunksize=2):
            for stage, meta, agent, user, turn_units in results:
                per_stage[stage].append((i, meta, agent, user))
                if turn_units:
                    per_stage[1].append((i, {"dialogue": i, "split": meta["split"]}, turn_units))
            bar.update()
    bar.close()
    summary = {"format": FORMAT, "version": 1, "recipe": RECIPE, "seed": seed, "text": str(text) if text else None,
               "dialogues": len(dlg), "heldoutDialogues": sum(1 for i in range(len(dlg)) if is_heldout(i)),
               "variants": variants, "callerHesitation": caller_hesitation, "composition": composition,
               "newlySynthesised": new,
               "tokenizer": {"dir": str(tokenizer), "sha256": tok_manifest["sha256"],
                             "unitCount": tok_manifest["unitCount"], "silenceUnit": tok_manifest.get("silenceUnit")},
               "stages": {}}
    for stage in (2, 3):
        items = sorted(per_stage[stage], key=lambda x: (x[0], x[1]["variant"]))
        agents = [x[2] for x in items]
        users = [x[3] for x in items]
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in agents])]).astype(np.int64)
        tmp = out / f"stage{stage}.tmp.npz"
        np.savez(tmp, agent=np.concatenate(agents), user=np.concatenate(users), offsets=offsets)
        os.replace(tmp, out / f"stage{stage}.npz")
        with open(out / f"stage{stage}.jsonl", "w") as f:
            for x in items:
                f.write(json.dumps(x[1]) + "\n")
        secs = [x[1]["seconds"] for x in items]
        train = [x[1]["seconds"] for x in items if x[1]["split"] == "train"]
        summary["stages"][str(stage)] = {"samples": len(items), "hours": round(sum(secs) / 3600, 3),
                                         "trainHours": round(sum(train) / 3600, 3)}
    items = sorted(per_stage[1], key=lambda x: x[0])
    units, speakers, offsets, dialogue_of = [], [], [0], []
    for i, meta, turn_units in items:
        for spk, u in turn_units:
            units.append(u)
            speakers.append(spk)
            dialogue_of.append(i)
            offsets.append(offsets[-1] + len(u))
    tmp = out / "stage1.tmp.npz"
    np.savez(tmp, units=np.concatenate(units) if units else np.zeros(0, np.uint8), speaker=np.array(speakers, np.int8),
             offsets=np.array(offsets, np.int64), dialogue=np.array(dialogue_of, np.int64))
    os.replace(tmp, out / "stage1.npz")
    summary["stages"]["1"] = {"dialogues": len(items), "turns": len(speakers),
                              "hours": round(sum(len(u) for u in units) / 25 / 3600, 3)}
    tmp = settings_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, settings_path)
    _log(f"dialogue data {out}: {len(dlg)} dialogues ({new} newly synthesised); " + ", ".join(
        f"stage {k}: {v['hours']} h" for k, v in sorted(summary["stages"].items())))
    return summary


def load_stage(data: Path, stage: int, split: str | None = "train") -> list:
    """Samples of a stage: stage 1 -> [(dialogue, [(speaker, units), ...])]; 2/3 -> [(meta, agent, user)]."""
    data = Path(data)
    z = np.load(data / f"stage{stage}.npz")
    off = z["offsets"]
    if stage == 1:
        by: dict[int, list] = {}
        spk = z["speaker"]
        dlg = z["dialogue"]
        for k in range(len(spk)):
            i = int(dlg[k])
            if split is not None and (is_heldout(i) != (split == "heldout")):
                continue
            by.setdefault(i, []).append(("agent" if spk[k] == 0 else "caller", z["units"][off[k]:off[k + 1]]))
        return sorted(by.items())
    metas = [json.loads(x) for x in (data / f"stage{stage}.jsonl").read_text().splitlines() if x.strip()]
    out = []
    agent, user = z["agent"], z["user"]
    for k, m in enumerate(metas):
        if split is not None and m["split"] != split:
            continue
        out.append((m, agent[off[k]:off[k + 1]].astype(np.int64), user[off[k]:off[k + 1]].astype(np.int64)))
    return out
