"""Random-weight Llama checkpoints for tests and benchmarks (no hub access needed).

Weights are drawn with a larger std than transformers' default (0.2 instead of 0.02) and the
biases / norm weights are randomised too: with the default init every logit is ~equal, and
the engine's test compares greedy argmax picks, which near-ties would make fragile; zero
biases and unit norms would also leave those code paths untested.
"""

from __future__ import annotations

import json
from pathlib import Path

from .manifest import TOKENS_FILE, validate_tokens

ROPE_SCALINGS = ("none", "linear", "llama3", "yarn", "dynamic")


def rope_parameters_for(kind: str, max_context: int, theta: float = 10000.0) -> dict:
    # Small "original" contexts so that the scaled frequency bands are actually hit by a
    # tiny head_dim (llama3 only touches wavelengths longer than original/high_freq_factor).
    original = max(16, max_context // 4)
    if kind == "none":
        return {"rope_type": "default", "rope_theta": theta}
    if kind == "linear":
        return {"rope_type": "linear", "factor": 2.0, "rope_theta": theta}
    if kind == "llama3":
        return {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": original,
            "rope_theta": theta,
        }
    if kind == "yarn":  # static, and attention_scaling != 1
        return {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": original, "rope_theta": theta}
    if kind == "dynamic":  # position-dependent: the exporter must refuse it
        return {"rope_type": "dynamic", "factor": 2.0, "rope_theta": theta}
    raise ValueError(f"rope scaling must be one of {ROPE_SCALINGS}, not {kind!r}")


def tiny_config(
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    intermediate: int = 128,
    vocab: int = 66,
    max_context: int = 256,
    tied: bool = False,
    rope_scaling: str = "none",
    attention_bias: bool = False,
    mlp_bias: bool = False,
    rms_norm_eps: float = 1e-5,
    init_std: float = 0.2,
):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        head_dim=head_dim or hidden // heads,
        max_position_embeddings=max_context,
        rms_norm_eps=rms_norm_eps,
        tie_word_embeddings=tied,
        attention_bias=attention_bias,
        mlp_bias=mlp_bias,
        rope_parameters=rope_parameters_for(rope_scaling, max_context),
        initializer_range=init_std,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        attn_implementation="eager",
    )


def tiny_model(config, seed: int = 0):
    """A LlamaForCausalLM with seeded random weights, biases and norm weights."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(seed + 1)
    std = config.initializer_range
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
    model.eval()
    return model


def default_tokens(vocab: int, unit_base=None, unit_count=None, s0=None, s1=None) -> dict:
    """Units at 0..vocab-3, [S0] = vocab-2, [S1] = vocab-1 unless given."""
    base = 0 if unit_base is None else unit_base
    tokens = {
        "unitBase": base,
        "unitCount": (vocab - 2 - base) if unit_count is None else unit_count,
        "s0": vocab - 2 if s0 is None else s0,
        "s1": vocab - 1 if s1 is None else s1,
    }
    return validate_tokens(tokens, vocab)


def write_tiny(out: Path, config, seed: int, tokens: dict) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = tiny_model(config, seed)
    model.save_pretrained(str(out))
    (out / TOKENS_FILE).write_text(json.dumps(tokens, indent=2) + "\n")
    return out
