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
    return parser


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
    try:
        if args.command == "speech":
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
    except (SpeechError, TokenizerError, VocoderRecipeError, FileNotFoundError) as e:
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
