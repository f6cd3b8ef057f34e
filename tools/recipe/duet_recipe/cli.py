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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .speech import SpeechError
    from .tokenizer import TokenizerError

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
    except (SpeechError, TokenizerError, FileNotFoundError) as e:
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
