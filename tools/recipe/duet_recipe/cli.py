"""Command line: `python -m duet_recipe <command> ...` (tools/recipe/duet-recipe).

Progress goes to stderr (tqdm); each command prints one JSON summary line on stdout.
Errors the user can fix exit 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import RECIPE

DEFAULT_UTTERANCES = 2000
DEFAULT_UNITS = 128
REPO_ROOT = Path(__file__).resolve().parents[3]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duet-recipe", description=RECIPE)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("speech", help="synthesise an augmented espeak-ng speech corpus (resumable)")
    p.add_argument("--out", required=True, type=Path, help="corpus directory (wav/, index.jsonl, corpus.json)")
    p.add_argument("--utterances", type=int, default=DEFAULT_UTTERANCES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=0, help="worker processes (0: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("tokenizer", help="fit log-mel + k-means on a corpus, export duet.units/1 ONNX + manifest")
    p.add_argument("--corpus", required=True, type=Path, help="a `speech` corpus directory")
    p.add_argument("--out", required=True, type=Path, help="output directory (model.onnx, manifest.json)")
    p.add_argument("--units", type=int, default=DEFAULT_UNITS, help="k-means K (unitCount)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mels", type=int, default=40, help="mel bands")
    p.add_argument("--kmeans-steps", type=int, default=400, help="mini-batch steps (then 10 full Lloyd passes)")
    p.add_argument("--kmeans-batch", type=int, default=4096)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("default-tokenizer", help="speech + tokenizer with the defaults (the committed default model)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models/default/units")
    p.add_argument("--corpus", type=Path, default=REPO_ROOT / ".cache/recipe/speech",
                   help="where the corpus is written (reused when it exists)")
    p.add_argument("--utterances", type=int, default=DEFAULT_UTTERANCES)
    p.add_argument("--units", type=int, default=DEFAULT_UNITS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=0)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("vocoder", help="train a small unit HiFi-GAN generator on a corpus tokenised by a tokenizer")
    p.add_argument("--corpus", required=True, type=Path, help="a `speech` corpus directory")
    p.add_argument("--tokenizer", required=True, type=Path, help="a duet.units/1 directory (model.onnx, manifest.json)")
    p.add_argument("--out", required=True, type=Path, help="training directory (g_NNNNNNNN, config.json, state.pt; resumable)")
    _vocoder_args(p)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (also)")
    p.add_argument("--batch", type=int, default=8, help="1 s segments per step")

    p = sub.add_parser("default-vocoder", help="vocoder with the defaults + export + held-out figures (the committed default model)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models/default/vocoder")
    p.add_argument("--corpus", type=Path, default=REPO_ROOT / ".cache/recipe/speech")
    p.add_argument("--tokenizer", type=Path, default=REPO_ROOT / "models/default/units")
    p.add_argument("--work", type=Path, default=REPO_ROOT / ".cache/recipe/vocoder",
                   help="training directory (checkpoints; a rerun resumes)")
    _vocoder_args(p)

    # --- the dialogue model (issue 7)
    p = sub.add_parser("dialogue-text", help="write generated text dialogues as JSONL (the loader's format)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dialogues", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("dialogue-data", help="text dialogues -> espeak-ng pieces -> stage 1/2/3 unit samples (resumable)")
    _data_args(p, required=True)

    p = sub.add_parser("dialogue-train", help="train one stage of the dialogue model (resumable)")
    p.add_argument("--data", required=True, type=Path, help="a dialogue-data directory")
    p.add_argument("--work", required=True, type=Path, help="training directory of this stage (state.pt, final/)")
    p.add_argument("--stage", required=True, type=int, choices=(1, 2, 3))
    p.add_argument("--init", type=Path, default=None, help="Hugging Face checkpoint to start from (previous stage's final/)")
    _train_args(p)

    p = sub.add_parser("dialogue-export", help="export a trained checkpoint to duet.synclm/1 (tools/export)")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("dialogue-measure", help="timing behaviour of an exported or HF dialogue model on an eval set")
    p.add_argument("--model", required=True, type=Path, help="a Hugging Face checkpoint dir or an exported model dir")
    p.add_argument("--evalset", type=Path, default=REPO_ROOT / ".cache/recipe/evalset")
    p.add_argument("--tokenizer", type=Path, default=REPO_ROOT / "models/default/units")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=1, help="sampled runs per item")
    p.add_argument("--timing-temperature", type=float, default=None,
                   help="draw the timing decision (a tag or some unit) at this temperature without top-p; "
                        "--temperature / --top-p then pick the unit (default: one draw at --temperature)")
    p.add_argument("--oracle-user", action="store_true",
                   help="no prediction of the caller: the agent's chunk n+1 sees the real chunk n")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("dialogue-hazard",
                       help="teacher-forced floor-taking hazards after caller turn ends, pauses and sentence gaps")
    p.add_argument("--model", required=True, type=Path, help="a Hugging Face checkpoint dir or an exported model dir")
    p.add_argument("--data", type=Path, default=REPO_ROOT / ".cache/recipe/dialogue", help="dialogue-data output")
    p.add_argument("--stage", type=int, choices=(2, 3), default=3)
    p.add_argument("--split", choices=("heldout", "train"), default="heldout")
    p.add_argument("--chunk-ms", type=int, choices=(160, 200, 240), default=160)
    p.add_argument("--limit", type=int, default=None, help="at most this many samples")
    p.add_argument("--evalset", type=Path, default=None,
                   help="instead: the eval set's turn and pause items with the agent kept silent (duet eval's context)")
    p.add_argument("--tokenizer", type=Path, default=REPO_ROOT / "models/default/units", help="with --evalset")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("eval-set", help="held-out synthetic callers + manifest.json for duet eval")
    p.add_argument("--out", type=Path, default=REPO_ROOT / ".cache/recipe/evalset")
    p.add_argument("--per-kind", type=int, default=24,
                   help="items of each kind (24: each rate within about +-0.1; 8 gave +-0.17)")
    p.add_argument("--seed", type=int, default=9001)
    p.add_argument("--tiny", action="store_true", help="one short item per kind (CI)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("default-dialogue", help="the whole dialogue recipe with the defaults (the committed default model)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models/default/dialogue")
    p.add_argument("--work", type=Path, default=REPO_ROOT / ".cache/recipe/dialogue-train")
    p.add_argument("--evalset", type=Path, default=REPO_ROOT / ".cache/recipe/evalset")
    p.add_argument("--evalset-per-kind", type=int, default=24, help="items of each kind in the eval set it measures on")
    p.add_argument("--stage-minutes", default="4,12,24", help="time budget of stages 1,2,3 (minutes)")
    p.add_argument("--stage-steps", default="150,400,3000", help="step budget (and schedule length) of stages 1,2,3")
    p.add_argument("--refine-steps", type=int, default=1500,
                   help="steps of the stage-3 refinement that weighs the floor-taking decisions (0: none)")
    p.add_argument("--refine-lr", type=float, default=1e-3)
    p.add_argument("--refine-decision-weight", type=float, default=3.0,
                   help="the refinement's loss weight of the agent's tokens after a caller's turn end")
    p.add_argument("--refine-pause-weight", type=float, default=6.0,
                   help="the refinement's loss weight of the agent's tokens in a caller's mid-turn pause")
    p.add_argument("--refine-interruption-weight", type=float, default=4.0,
                   help="the refinement's loss weight of the agent's tokens from a caller's interruption (or the "
                        "agent's false start) until 1 s after the agent stopped")
    _data_args(p, required=False)
    _train_args(p, with_steps=False)
    p.add_argument("--quiet", action="store_true")
    return parser


def _share(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def _data_args(p, required: bool) -> None:
    from .duplex import CALLER_HESITATION, COMPOSITION, COMPOSITIONS

    if required:
        p.add_argument("--out", required=True, type=Path, help="data directory")
    else:
        p.add_argument("--data", type=Path, default=REPO_ROOT / ".cache/recipe/dialogue", help="data directory")
    p.add_argument("--dialogues", type=int, default=240, help="generated dialogues (or at most this many loaded)")
    p.add_argument("--caller-hesitation", type=_share, default=CALLER_HESITATION,
                   help="share of caller turns with a hesitation (stage 3: a mid-turn pause), 0..1")
    p.add_argument("--composition", type=int, choices=COMPOSITIONS, default=COMPOSITION,
                   help="timing rules of the two-channel samples (5, the default: the agent's false starts in stage "
                        "3 and its answers 0.23-0.58 s after the caller, never in overlap; 3: human answer gaps; "
                        "1: 3 without the false starts; 2: faster yield, no silence after an unanswered last "
                        "caller turn; 4: answers 0.04-0.35 s after the caller; 6: 5 whose agent also answers "
                        "the dialogue's last caller turn; 7: 6 with long gaps up to 2 s; 8: 5 whose interrupted agent "
                        "stops 0.05-0.3 s after the caller starts; tools/recipe/README.md)")
    p.add_argument("--text", type=Path, default=None, help="a local text dialogue dataset (JSONL / text) instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer", type=Path, default=REPO_ROOT / "models/default/units")
    p.add_argument("--variants", type=int, default=2, help="timing renderings per dialogue and stage")
    p.add_argument("--jobs", type=int, default=2)
    if required:
        p.add_argument("--quiet", action="store_true")


def _train_args(p, with_steps: bool = True) -> None:
    if with_steps:
        p.add_argument("--steps", type=int, default=1000, help="steps (the learning-rate schedule's length)")
        p.add_argument("--max-minutes", type=float, default=None, help="stop at this wall-clock budget (across resumes)")
    p.add_argument("--batch", type=int, default=None, help="crops per step (default 8 for stage 1, 4 otherwise)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per crop (default 512 for stage 1, 1024 otherwise)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--chunk-ms", default="160", help="chunk sizes, e.g. 160 or 160,200,240")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=320)
    p.add_argument("--max-context", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (cuda for continued training of a large LLM)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--decision-weight", type=float, default=1.0,
                   help="loss weight of the agent's tokens where it decides to take the floor or not (after a caller's turn end, in a pause)")
    p.add_argument("--pause-weight", type=float, default=None,
                   help="loss weight of the agent's tokens in a caller's mid-turn pause (default: --decision-weight)")
    p.add_argument("--interruption-weight", type=float, default=1.0,
                   help="loss weight of the agent's tokens from a caller's interruption until 1 s after the agent stopped")
    if with_steps:
        p.add_argument("--quiet", action="store_true")


def _train_kwargs(args, stage: int) -> dict:
    return {"batch": args.batch or (8 if stage == 1 else 4), "seq_len": args.seq_len or (512 if stage == 1 else 1024),
            "lr": args.lr, "chunk_ms": [int(x) for x in str(args.chunk_ms).split(",")], "seed": args.train_seed,
            "threads": args.threads, "layers": args.layers, "hidden": args.hidden, "heads": args.heads,
            "kv_heads": args.kv_heads, "intermediate": args.intermediate, "max_context": args.max_context,
            "device": args.device, "dtype": args.dtype, "decision_weight": args.decision_weight,
            "pause_weight": args.pause_weight, "interruption_weight": args.interruption_weight}


def _vocoder_args(p) -> None:
    p.add_argument("--max-minutes", type=float, default=15.0, help="training wall-clock budget (across resumes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", type=int, default=64, help="upsample_initial_channel")
    p.add_argument("--resblock", choices=("1", "2"), default="2")
    p.add_argument("--quiet", action="store_true")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .speech import SpeechError
    from .tokenizer import TokenizerError
    from .vocoder import VocoderRecipeError

    progress = not args.quiet
    t0 = time.time()
    from .dialogue_model import DialogueRecipeError
    from .dialogues import DialogueError

    try:
        if args.command.startswith("dialogue-") or args.command in ("eval-set", "default-dialogue"):
            from .dialogue_cli import run_dialogue_command

            result = run_dialogue_command(args, progress)
        elif args.command == "speech":
            from .speech import make_corpus

            result = make_corpus(args.out, args.utterances, seed=args.seed, jobs=args.jobs or os.cpu_count(),
                                 progress=progress)
        elif args.command == "tokenizer":
            from .tokenizer import train_tokenizer

            m = train_tokenizer(args.corpus, args.out, units=args.units, seed=args.seed, mels=args.mels,
                                kmeans_steps=args.kmeans_steps, kmeans_batch=args.kmeans_batch, progress=progress)
            result = _tokenizer_summary(args.out, m)
        elif args.command == "vocoder":
            from .vocoder import train_vocoder

            result = train_vocoder(args.corpus, args.tokenizer, args.out, max_minutes=args.max_minutes, seed=args.seed,
                                   channels=args.channels, resblock=args.resblock, batch=args.batch,
                                   max_steps=args.max_steps, progress=progress)
        elif args.command == "default-vocoder":
            from .vocoder import default_vocoder

            m = default_vocoder(args.corpus, args.tokenizer, args.out, args.work, max_minutes=args.max_minutes,
                                seed=args.seed, channels=args.channels, resblock=args.resblock, progress=progress)
            result = {"model": str(Path(args.out) / m["model"]), "sha256": m["sha256"],
                      "leftContextUnits": m["leftContextUnits"], "steps": m["recipe"]["steps"],
                      "trainMinutes": m["recipe"]["trainMinutes"], "heldout": m["recipe"]["heldout"]}
        else:
            from .speech import make_corpus
            from .tokenizer import train_tokenizer

            print(f"[1/2] speech corpus -> {args.corpus}", file=sys.stderr, flush=True)
            corpus = make_corpus(args.corpus, args.utterances, seed=args.seed, jobs=args.jobs or os.cpu_count(),
                                 progress=progress)
            t1 = time.time()
            print(f"[2/2] tokenizer -> {args.out}", file=sys.stderr, flush=True)
            m = train_tokenizer(args.corpus, args.out, units=args.units, seed=args.seed, progress=progress)
            result = {"corpus": corpus, "speechSeconds": round(t1 - t0, 1), **_tokenizer_summary(args.out, m)}
    except (SpeechError, TokenizerError, VocoderRecipeError, DialogueRecipeError, DialogueError,
            FileNotFoundError) as e:
        print(f"duet-recipe: {e}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result))
    return 0


def _tokenizer_summary(out: Path, m: dict) -> dict:
    return {
        "model": str(Path(out) / m["model"]),
        "sha256": m["sha256"],
        "unitCount": m["unitCount"],
        "leftContextSamples": m["leftContextSamples"],
        "streamingAgreement": m["leftContext"]["agreement"],
        "heldout": m["recipe"]["heldout"],
        "tokenizerSeconds": m["recipe"]["seconds"],
    }
