"""SyncLLM vocabulary extension (`extend-vocab`).

SyncLLM (Veluri et al., 2024) extends a text LM's vocabulary with the speech units and two
speaker/sync tags `[S0]`/`[S1]`. Units become added special tokens `<|unit_00000|>`... so the
tokenizer never splits them and their ids are contiguous (the engine addresses unit `u` as
`unitBase + u`). New embedding rows start at the mean of the existing rows plus small seeded
noise: the mean keeps the new tokens' initial logits/activations in the model's usual range
(zero or random rows would start far from it), the noise breaks their symmetry.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .manifest import TOKENS_FILE, validate_tokens

S0, S1 = "[S0]", "[S1]"


def unit_token(u: int) -> str:
    return f"<|unit_{u:05d}|>"


def _init_rows(weight, ids, gen, noise: float) -> None:
    import torch

    existing = weight[: ids[0]] if ids[0] > 0 else weight
    mean = existing.float().mean(dim=0)
    std = existing.float().std() if existing.shape[0] > 1 else torch.tensor(1.0)
    rows = mean.unsqueeze(0) + noise * std * torch.randn((len(ids), weight.shape[1]), generator=gen)
    weight[ids] = rows.to(weight.dtype)


def extend_vocab(checkpoint: Path, out: Path, unit_count: int, *, seed: int = 0, noise: float = 0.01, log=None) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if unit_count < 2:
        raise ValueError("unit_count must be >= 2")
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype="auto")
    new_tokens = [unit_token(u) for u in range(unit_count)] + [S0, S1]
    vocab = tokenizer.get_vocab()
    clash = [t for t in new_tokens if t in vocab]
    if clash:
        raise ValueError(f"tokenizer already has {clash[:3]}... (checkpoint already extended?)")

    old_rows = model.get_input_embeddings().weight.shape[0]
    added = tokenizer.add_tokens(new_tokens, special_tokens=True)
    if added != len(new_tokens):
        raise RuntimeError(f"tokenizer added {added} of {len(new_tokens)} tokens")
    ids = tokenizer.convert_tokens_to_ids(new_tokens)
    unit_base = ids[0]
    if ids[:unit_count] != list(range(unit_base, unit_base + unit_count)):
        raise RuntimeError("unit tokens did not get contiguous ids")
    # Ids can land inside an embedding matrix padded beyond the tokenizer; never shrink it.
    rows = max(old_rows, max(ids) + 1, len(tokenizer))
    log(f"adding {unit_count} units + [S0] [S1]: ids {unit_base}..{max(ids)}, embedding rows {old_rows} -> {rows}")
    model.resize_token_embeddings(rows, mean_resizing=False)

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        _init_rows(model.get_input_embeddings().weight, ids, gen, noise)
        out_emb = model.get_output_embeddings()
        if out_emb is not None and out_emb.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
            _init_rows(out_emb.weight, ids, gen, noise)  # untied lm_head: its own rows too

    tokens = validate_tokens(
        {"unitBase": unit_base, "unitCount": unit_count, "s0": ids[-2], "s1": ids[-1]}, model.config.vocab_size
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / TOKENS_FILE).write_text(json.dumps(tokens, indent=2) + "\n")
    log(f"saved to {out}: {json.dumps(tokens)}")
    return tokens
