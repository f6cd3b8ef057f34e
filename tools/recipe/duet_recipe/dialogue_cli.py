"""The dialogue commands of `duet-recipe` (see cli.py and tools/recipe/README.md)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _data(args, out: Path, progress: bool) -> dict:
    from .dialogue_data import build_dialogue_data

    return build_dialogue_data(out, dialogues=args.dialogues, seed=args.seed, text=args.text,
                               tokenizer=args.tokenizer, variants=args.variants, jobs=args.jobs,
                               caller_hesitation=args.caller_hesitation, composition=args.composition,
                               progress=progress)


def run_dialogue_command(args, progress: bool) -> dict:
    cmd = args.command
    if cmd == "dialogue-text":
        from .dialogues import generate_dialogues

        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w") as f:
            for d in generate_dialogues(args.dialogues, args.seed):
                f.write(json.dumps(d) + "\n")
        return {"out": str(args.out), "dialogues": args.dialogues}
    if cmd == "dialogue-data":
        return _data(args, args.out, progress)
    if cmd == "dialogue-train":
        from .cli import _train_kwargs
        from .dialogue_model import train_stage

        return train_stage(args.data, args.work, stage=args.stage, init=args.init, steps=args.steps,
                           max_minutes=args.max_minutes, progress=progress, **_train_kwargs(args, args.stage))
    if cmd == "dialogue-export":
        from .dialogue_model import export_dialogue

        recipe = None
        rj = Path(args.checkpoint) / "duet_recipe.json"
        if rj.exists():
            recipe = json.loads(rj.read_text())
        m = export_dialogue(args.checkpoint, args.out, recipe, progress=progress)
        return {"model": str(Path(args.out) / m["model"]), "sha256": m["sha256"]}
    if cmd == "dialogue-measure":
        from .measure import measure

        return measure(_hf_dir(args.model), args.evalset, args.tokenizer, temperature=args.temperature,
                       top_p=args.top_p, seed=args.seed, runs=args.runs, predict_user=not args.oracle_user,
                       timing_temperature=args.timing_temperature, progress=progress)
    if cmd == "dialogue-hazard":
        from .hazard import evalset_hazards, floor_hazards, format_evalset_table, format_table

        if args.evalset is not None:
            result = evalset_hazards(_hf_dir(args.model), args.evalset, args.tokenizer, progress=progress)
            if progress:
                _log(format_evalset_table(result))
            return result
        result = floor_hazards(_hf_dir(args.model), args.data, stage=args.stage, split=args.split,
                               chunk_ms=args.chunk_ms, limit=args.limit, progress=progress)
        if progress:
            _log(format_table(result))
        return result
    if cmd == "eval-set":
        from .evalset import make_evalset

        return make_evalset(args.out, per_kind=args.per_kind, seed=args.seed, tiny=args.tiny, jobs=args.jobs,
                            progress=progress)
    if cmd == "default-dialogue":
        return default_dialogue(args, progress)
    raise ValueError(cmd)


def _hf_dir(model: Path) -> Path:
    """A Hugging Face checkpoint dir, or an exported model whose manifest names one."""
    from .dialogue_model import DialogueRecipeError

    model = Path(model)
    if (model / "config.json").exists():
        return model
    if not (model / "manifest.json").exists():
        raise DialogueRecipeError(f"{model}: neither a Hugging Face checkpoint (config.json) nor an exported model "
                                  "(manifest.json)")
    m = json.loads((model / "manifest.json").read_text())
    ck = (m.get("source") or {}).get("checkpoint")
    if not ck:
        raise DialogueRecipeError(f"{model}/manifest.json names no training checkpoint (source.checkpoint); "
                                  "pass --model the Hugging Face checkpoint directory")
    ck = Path(ck)
    if not ck.is_absolute():
        ck = Path(__file__).resolve().parents[3] / ck
    if not (ck / "config.json").exists():
        # The checkpoint stays in the training work directory (.cache/, not committed); these tools
        # run the model with transformers, so they need it, not the ONNX export.
        raise DialogueRecipeError(f"{model} was exported from {ck}, which is not on this machine; rerun the recipe "
                                  "that trained it (e.g. default-dialogue, which resumes) or pass --model the "
                                  "Hugging Face checkpoint directory")
    return ck


def default_dialogue(args, progress: bool) -> dict:
    """dialogue-data -> stage 1 -> 2 -> 3 -> refinement -> export -> eval-set -> measure (figures
    into the manifest)."""
    from .cli import _train_kwargs
    from .dialogue_model import export_dialogue, train_stage
    from .evalset import make_evalset
    from .measure import measure

    t0 = time.time()
    minutes = [float(x) for x in args.stage_minutes.split(",")]
    steps = [int(x) for x in args.stage_steps.split(",")]
    _log(f"[1/6] dialogue data -> {args.data}")
    data = _data(args, args.data, progress)
    times = {"data": round(time.time() - t0, 1)}
    stages = []
    init = None
    for stage in (1, 2, 3):
        _log(f"[{stage + 1}/6] stage {stage} ({minutes[stage - 1]} min, <= {steps[stage - 1]} steps)")
        t = time.time()
        work = Path(args.work) / f"stage{stage}"
        s = train_stage(args.data, work, stage=stage, init=init, steps=steps[stage - 1],
                        max_minutes=minutes[stage - 1], progress=progress, **_train_kwargs(args, stage))
        stages.append(s)
        times[f"stage{stage}"] = round(time.time() - t, 1)
        init = work / "final"
    if args.refine_steps > 0:
        # Stage 3 again at a lower learning rate with the floor-taking decisions weighted: the
        # agent's tokens after the caller's turn ends and in the caller's pauses (tools/recipe/README.md).
        _log(f"[5/6] refinement ({args.refine_steps} steps, decision weight {args.refine_decision_weight}, "
             f"pause weight {args.refine_pause_weight}, interruption weight {args.refine_interruption_weight})")
        t = time.time()
        work = Path(args.work) / "refine"
        kw = {**_train_kwargs(args, 3), "lr": args.refine_lr, "decision_weight": args.refine_decision_weight,
              "pause_weight": args.refine_pause_weight, "interruption_weight": args.refine_interruption_weight}
        s = train_stage(args.data, work, stage=3, init=init, steps=args.refine_steps, progress=progress, **kw)
        stages.append({**s, "refinement": True})
        times["refine"] = round(time.time() - t, 1)
        init = work / "final"
    _log("[6/6] export, eval set, measurement")
    if isinstance(data.get("tokenizer"), dict):
        from .dialogue_model import _display

        data = {**data, "tokenizer": {**data["tokenizer"], "dir": _display(Path(data["tokenizer"]["dir"]))}}
    recipe = {"recipe": "duet-recipe default-dialogue", "chunkMs": _train_kwargs(args, 3)["chunk_ms"],
              "data": {k: data.get(k) for k in ("seed", "dialogues", "heldoutDialogues", "variants", "callerHesitation",
                                                "composition", "stages", "text", "tokenizer")},
              "stages": stages}
    m = export_dialogue(init, args.out, recipe, progress=progress)
    t = time.time()
    ev = make_evalset(args.evalset, per_kind=args.evalset_per_kind, progress=progress)
    times["evalset"] = round(time.time() - t, 1)
    t = time.time()
    # the engine's default sampling (temperature 0.8, top-p 0.95), and temperature 1.0; 3 sampled runs
    figures = measure(init, args.evalset, args.tokenizer, runs=3, progress=progress)
    figures_t1 = measure(init, args.evalset, args.tokenizer, runs=3, temperature=1.0, progress=progress)
    times["measure"] = round(time.time() - t, 1)
    times["total"] = round(time.time() - t0, 1)
    # the figures go into the manifest's recipe block (the sha256 covers model.onnx only)
    path = Path(args.out) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["recipe"].update({"evalset": ev, "timing": figures,
                               "timingTemperature1": {"model": figures_t1["model"], "temperature": 1.0},
                               "seconds": times})
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return {"model": str(Path(args.out) / m["model"]), "sha256": m["sha256"], "timing": figures["model"],
            "timingTemperature1": figures_t1["model"],
            "groundTruth": figures["groundTruth"], "stages": [{k: s[k] for k in ("stage", "steps", "minutes", "finalLoss")}
                                                              for s in stages], "seconds": times}
