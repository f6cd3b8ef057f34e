"""Rotary-embedding parameters of a checkpoint, computed by transformers itself.

The engine computes the RoPE angles on the host (float64 `p * inv_freq`), so everything a
rope scaling type does must be expressible as a fixed `inv_freq` vector and one
`attention_scaling` factor. We call transformers' own init functions so that every static
type (`default`, `linear`, `llama3`, `yarn`, ...) is reproduced bit for bit, and refuse the
types whose frequencies depend on the current sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class RopeError(ValueError):
    """The checkpoint's rope scaling cannot be expressed in the contract."""


@dataclass(frozen=True)
class RopeSpec:
    type: str
    theta: float
    inv_freq: np.ndarray  # float64, [head_dim / 2]
    attention_scaling: float


def _position_dependent(rope_type: str) -> bool:
    # Mirrors transformers' `dynamic_rope_update`: these types recompute inv_freq in forward()
    # from the current sequence length, which a fixed inv_freq cannot express.
    return "dynamic" in rope_type or rope_type == "longrope"


def rope_parameters(config) -> dict:
    """The config's rope parameters in the transformers 5 layout (`rope_type`, `rope_theta`, ...)."""
    params = getattr(config, "rope_parameters", None)
    if params is None:  # transformers 4.x layout
        params = dict(getattr(config, "rope_scaling", None) or {})
        params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params = dict(params)
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def rope_spec(config) -> RopeSpec:
    """inv_freq and attention_scaling exactly as transformers' LlamaRotaryEmbedding computes them."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = rope_parameters(config)
    rope_type = str(params["rope_type"])
    if _position_dependent(rope_type):
        raise RopeError(
            f"rope scaling type {rope_type!r} changes its frequencies with the sequence length; "
            "the duet.synclm contract needs position-independent inv_freq (supported: default, linear, "
            "llama3, yarn and other static types)"
        )
    if rope_type == "default":
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        inv_freq, scaling = LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    elif rope_type in ROPE_INIT_FUNCTIONS:
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None)
    else:
        raise RopeError(f"unknown rope scaling type {rope_type!r} (transformers knows {sorted(ROPE_INIT_FUNCTIONS)})")

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    inv = np.asarray(inv_freq.detach().cpu().numpy() if hasattr(inv_freq, "detach") else inv_freq, dtype=np.float64)
    if inv.shape != (head_dim // 2,):
        raise RopeError(
            f"rope gives {inv.shape[0]} frequencies but head_dim/2 = {head_dim // 2}: partial rotary "
            "embeddings are not part of the contract"
        )
    if not np.all(np.isfinite(inv)):
        raise RopeError("rope inv_freq has non-finite values")
    return RopeSpec(
        type=rope_type,
        theta=float(params.get("rope_theta", 10000.0)),
        inv_freq=inv,
        attention_scaling=float(scaling),
    )


def rope_tables(spec: RopeSpec, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`rope_cos`/`rope_sin` inputs for integer positions [B, T], as the engine computes them
    (float64 angles, then float32)."""
    angles = np.asarray(positions, dtype=np.float64)[..., None] * spec.inv_freq
    cos = (np.cos(angles) * spec.attention_scaling).astype(np.float32)
    sin = (np.sin(angles) * spec.attention_scaling).astype(np.float32)
    return cos, sin
