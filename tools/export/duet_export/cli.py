"""Command line: `python -m duet_export <command> ...` (see `--help` of each command).

Progress and logs go to stderr; machine-readable results (JSON) to stdout or --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import EXPORTER


def _token_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SyncLLM token ids (default: the checkpoint's duet_tokens.json)")
    g.add_argument("--unit-base", type=int, help="id of unit 0")
    g.add_argument("--unit-count", type=int, help="number of unit tokens")
    g.add_argument("--s0", type=int, help="id of [S0]")
    g.add_argument("--s1", type=int, help="id of [S1]")


def _tokens_of(args) -> dict:
    return {"unitBase": args.unit_base, "unitCount": args.unit_count, "s0": args.s0, "s1": args.s1}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duet-export", description=EXPORTER)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("llama", help="export a HF Llama checkpoint to the duet.synclm/1 ONNX contract")
    p.add_argument("--checkpoint", required=True, type=Path, help="HF checkpoint directory")
    p.add_argument("--out", required=True, type=Path, help="output directory (model.onnx, manifest.json)")
    _token_flags(p)
    p.add_argument("--external-data", choices=["auto", "always", "never"], default="auto",
                   help="weights in model.onnx.data (auto: when they exceed ~1.5 GB)")
    p.add_argument("--skip-ort-check", action="store_true", help="do not load the result in onnxruntime")
    p.add_argument("--verify", action="store_true", help="compare onnxruntime with transformers (fails > 1e-3)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("tiny", help="write a random-weight LlamaForCausalLM checkpoint")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=None, help="default: --heads")
    p.add_argument("--head-dim", type=int, default=None, help="default: hidden/heads")
    p.add_argument("--intermediate", type=int, default=128)
    p.add_argument("--vocab", type=int, default=66)
    p.add_argument("--max-context", type=int, default=256)
    p.add_argument("--tied", action="store_true", help="tie lm_head to the embeddings")
    p.add_argument("--rope-scaling", default="none", choices=["none", "linear", "llama3", "yarn", "dynamic"])
    p.add_argument("--attention-bias", action="store_true")
    p.add_argument("--mlp-bias", action="store_true")
    p.add_argument("--rms-norm-eps", type=float, default=1e-5)
    p.add_argument("--init-std", type=float, default=0.2, help="weight std (HF default 0.02 makes near-equal logits)")
    p.add_argument("--seed", type=int, default=0)
    _token_flags(p)

    p = sub.add_parser("extend-vocab", help="add SyncLLM unit tokens and [S0]/[S1] to a checkpoint")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--units", type=int, default=501, help="number of unit tokens (SyncLLM: 501 HuBERT units)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.01, help="new-row noise std, relative to the embeddings' std")

    p = sub.add_parser("reference", help="HF reference logits/picks for an engine trace")
    p.add_argument("--trace", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--mode", choices=["streaming", "recompute"], default=None,
                   help="how slid histories are recomputed (default: the trace's window.mode, else streaming)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("bench-hf", help="HF transformers eager baseline of the serving benchmark")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--prefill", type=int, default=10)
    p.add_argument("--decode", type=int, default=10)
    p.add_argument("--ticks", type=int, default=30)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-calls", type=int, default=16)
    p.add_argument("--budget-ms", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("hubert-units", help="export HF HubertModel + k-means centroids to the duet.units/1 ONNX contract")
    p.add_argument("--checkpoint", required=True, type=Path, help="HF HubertModel checkpoint directory")
    p.add_argument("--layer", required=True, type=int, help="transformer layer whose output is clustered (1-based)")
    p.add_argument("--centroids", required=True, type=Path, help="k-means centroids .npy, [K, hidden]")
    p.add_argument("--out", required=True, type=Path, help="output directory (model.onnx, manifest.json)")
    p.add_argument("--left-context-ms", type=int, default=None,
                   help="left context for the manifest (default: measured on the exported model)")
    p.add_argument("--measure-audio", type=Path, default=None,
                   help="16 kHz mono speech (.wav 16-bit or .npy) for the measurement (default: seeded noise)")
    p.add_argument("--chunk-units", type=int, default=4, help="chunk size of the measurement (U, units)")
    p.add_argument("--target-agreement", type=float, default=0.95,
                   help="streaming-vs-offline unit agreement the measured left context must reach")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("unit-hifigan", help="export a speech-resynthesis unit HiFi-GAN to the duet.vocoder/1 ONNX contract")
    p.add_argument("--checkpoint", required=True, type=Path, help="generator checkpoint (state dict under 'generator')")
    p.add_argument("--config", required=True, type=Path, help="the generator's JSON config")
    p.add_argument("--out", required=True, type=Path, help="output directory (model.onnx, manifest.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("tiny-hubert", help="write a small random HubertModel checkpoint + random k-means centroids")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--units", type=int, default=24, help="number of centroids")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("tiny-hifigan", help="write a small random unit HiFi-GAN checkpoint + config (speech-resynthesis format)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--units", type=int, default=32, help="number of unit ids")
    p.add_argument("--resblock", choices=["1", "2"], default="1")
    p.add_argument("--seed", type=int, default=0)
    return parser


def _quiet_transformers() -> None:
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .graph import UnsupportedModelError
    from .manifest import TokenError
    from .rope import RopeError

    try:
        _quiet_transformers()
        return _run(args)
    except (RopeError, TokenError, UnsupportedModelError, FileNotFoundError, ValueError) as e:
        # Refusals (unsupported model, bad token ids, bad input) are ValueErrors: one line, exit 2.
        print(f"duet-export {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command == "llama":
        from .export import VERIFY_TOLERANCE, export_llama, verify_export

        manifest = export_llama(
            args.checkpoint, args.out, _tokens_of(args),
            external=args.external_data, ort_check=not args.skip_ort_check, progress=not args.quiet,
        )
        result = {"manifest": str(manifest)}
        if args.verify:
            diffs = verify_export(args.checkpoint, manifest)
            print(f"verify: max abs diff logits {diffs['logits']:.3g}, new keys {diffs['keys']:.3g}, "
                  f"new values {diffs['values']:.3g} (tolerance {VERIFY_TOLERANCE})", file=sys.stderr)
            result["verify"] = diffs
            print(json.dumps(result))
            if max(diffs.values()) > VERIFY_TOLERANCE:
                print("verify: FAILED", file=sys.stderr)
                return 1
            return 0
        print(json.dumps(result))
        return 0

    if args.command == "tiny":
        from .tiny import default_tokens, tiny_config, write_tiny

        config = tiny_config(
            layers=args.layers, hidden=args.hidden, heads=args.heads, kv_heads=args.kv_heads, head_dim=args.head_dim,
            intermediate=args.intermediate, vocab=args.vocab, max_context=args.max_context, tied=args.tied,
            rope_scaling=args.rope_scaling, attention_bias=args.attention_bias, mlp_bias=args.mlp_bias,
            rms_norm_eps=args.rms_norm_eps, init_std=args.init_std,
        )
        tokens = default_tokens(args.vocab, args.unit_base, args.unit_count, args.s0, args.s1)
        out = write_tiny(args.out, config, args.seed, tokens)
        print(json.dumps({"checkpoint": str(out), "tokens": tokens}))
        return 0

    if args.command == "extend-vocab":
        from .vocab import extend_vocab

        tokens = extend_vocab(args.checkpoint, args.out, args.units, seed=args.seed, noise=args.noise)
        print(json.dumps({"checkpoint": str(args.out), "tokens": tokens}))
        return 0

    if args.command == "reference":
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        from .reference import reference_command

        result = reference_command(args.trace, args.out, progress=not args.quiet, mode=args.mode)
        print(f"reference ({result['mode']}): {result['records']} records, {result['rows']} rows, max abs diff {result['maxAbsDiff']:.3g}, "
              f"{result['picks']} picks, {len(result['pickMismatches'])} mismatches", file=sys.stderr)
        return 0

    if args.command == "bench-hf":
        from .bench_hf import bench_hf

        result = bench_hf(
            str(args.checkpoint), context=args.context, prefill=args.prefill, decode=args.decode, ticks=args.ticks,
            threads=args.threads, max_calls=args.max_calls, budget_ms=args.budget_ms, warmup=args.warmup, seed=args.seed,
        )
        print(json.dumps(result))
        return 0

    if args.command == "hubert-units":
        from .units import export_hubert_units

        manifest = export_hubert_units(
            args.checkpoint, args.layer, args.centroids, args.out, left_context_ms=args.left_context_ms,
            measure_audio=args.measure_audio, chunk_units=args.chunk_units, target_agreement=args.target_agreement,
            progress=not args.quiet,
        )
        m = json.loads(manifest.read_text())
        print(json.dumps({"manifest": str(manifest), "unitCount": m["unitCount"],
                          "leftContextSamples": m["leftContextSamples"]}))
        return 0

    if args.command == "unit-hifigan":
        from .vocoder import export_unit_hifigan

        manifest = export_unit_hifigan(args.checkpoint, args.config, args.out, progress=not args.quiet)
        m = json.loads(manifest.read_text())
        print(json.dumps({"manifest": str(manifest), "unitCount": m["unitCount"],
                          "leftContextUnits": m["leftContextUnits"], "chunkMaxAbsDiff": m["leftContext"]["maxAbsDiff"]}))
        return 0

    if args.command == "tiny-hubert":
        from .units import write_tiny_hubert

        checkpoint, centroids = write_tiny_hubert(args.out, units=args.units, seed=args.seed)
        print(json.dumps({"checkpoint": str(checkpoint), "centroids": str(centroids)}))
        return 0

    if args.command == "tiny-hifigan":
        from .vocoder import tiny_config, write_tiny

        raw = tiny_config(args.units)
        if args.resblock == "2":
            raw.update(resblock="2", resblock_dilation_sizes=[[1, 3], [1, 3]])
        ckpt, config = write_tiny(args.out, raw, seed=args.seed)
        print(json.dumps({"checkpoint": str(ckpt), "config": str(config)}))
        return 0

    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
