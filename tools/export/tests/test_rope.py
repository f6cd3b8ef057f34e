"""RoPE parameters come from transformers' own init functions; position-dependent types are refused."""

import numpy as np
import pytest
import torch

from duet_export.rope import RopeError, rope_spec, rope_tables
from duet_export.tiny import tiny_config


@pytest.mark.parametrize("kind", ["none", "linear", "llama3", "yarn"])
def test_inv_freq_and_scaling_match_hf_rotary_embedding(kind):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = tiny_config(hidden=64, heads=4, head_dim=16, rope_scaling=kind)
    spec = rope_spec(config)
    emb = LlamaRotaryEmbedding(config)
    np.testing.assert_array_equal(spec.inv_freq, emb.inv_freq.double().numpy())
    assert spec.attention_scaling == pytest.approx(emb.attention_scaling)
    assert spec.type == ("default" if kind == "none" else kind)
    # and the cos/sin the engine would feed equal HF's (first half; HF repeats it)
    pos = torch.arange(50)[None]
    cos, sin = emb(torch.zeros(1, 50, 64), pos)
    c, s = rope_tables(spec, pos.numpy())
    np.testing.assert_allclose(c, cos[..., :8].numpy(), atol=2e-5)
    np.testing.assert_allclose(s, sin[..., :8].numpy(), atol=2e-5)


def test_scaling_types_change_frequencies():
    base = rope_spec(tiny_config(rope_scaling="none")).inv_freq
    linear = rope_spec(tiny_config(rope_scaling="linear")).inv_freq
    llama3 = rope_spec(tiny_config(rope_scaling="llama3")).inv_freq
    np.testing.assert_allclose(linear, base / 2.0)
    assert llama3[0] == base[0] and llama3[-1] < base[-1]  # high frequencies kept, low ones scaled
    assert rope_spec(tiny_config(rope_scaling="yarn")).attention_scaling > 1.0


def test_dynamic_rope_is_refused():
    with pytest.raises(RopeError, match="dynamic"):
        rope_spec(tiny_config(rope_scaling="dynamic"))


def test_longrope_and_unknown_types_are_refused():
    config = tiny_config()
    config.rope_parameters = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0] * 8,
                              "long_factor": [2.0] * 8, "original_max_position_embeddings": 64}
    with pytest.raises(RopeError, match="longrope"):
        rope_spec(config)
    config.rope_parameters = {"rope_type": "wobbly", "rope_theta": 10000.0}
    with pytest.raises(RopeError, match="unknown"):
        rope_spec(config)


def test_partial_rotary_is_refused():
    config = tiny_config(head_dim=16)
    config.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    with pytest.raises(RopeError, match="partial"):
        rope_spec(config)
