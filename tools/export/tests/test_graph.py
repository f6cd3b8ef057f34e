"""The exported graph against transformers, and its structure against the contract."""

import numpy as np
import onnx
import pytest

from duet_export.contract import compare_with_hf, ort_session
from duet_export.graph import IR_VERSION, OPSET, export_onnx, llama_shape
from duet_export.rope import rope_spec
from duet_export.tiny import tiny_config, tiny_model
from duet_export.weights import SafetensorsWeights, StateDictWeights

TOL = 1e-4

SHAPES = {
    "mha": dict(layers=2, hidden=64, heads=4, intermediate=128, vocab=66),
    "gqa_4_2_tied_llama3": dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=96, vocab=66,
                                tied=True, rope_scaling="llama3"),
    "gqa_8_2_headdim_bias_linear": dict(layers=3, hidden=48, heads=8, kv_heads=2, head_dim=8, intermediate=64,
                                        vocab=120, attention_bias=True, rope_scaling="linear"),
    "mqa_wide_head_mlp_bias_yarn": dict(layers=2, hidden=32, heads=4, kv_heads=1, head_dim=24, intermediate=48,
                                        vocab=50, mlp_bias=True, rope_scaling="yarn", rms_norm_eps=1e-6),
    "untied_llama3_bias": dict(layers=1, hidden=64, heads=2, kv_heads=2, head_dim=32, intermediate=80, vocab=70,
                               attention_bias=True, mlp_bias=True, rope_scaling="llama3"),
}


@pytest.fixture(scope="module", params=list(SHAPES), ids=list(SHAPES))
def exported(request, tmp_path_factory):
    kw = SHAPES[request.param]
    config = tiny_config(**kw)
    model = tiny_model(config, seed=list(SHAPES).index(request.param))
    out = tmp_path_factory.mktemp(request.param)
    path, data = export_onnx(config, StateDictWeights(model.state_dict()), out, progress=False)
    assert data is None
    return config, model, path, ort_session(path)


def _ids(rng, vocab, n):
    return rng.integers(0, vocab, n).tolist()


def test_batch_with_different_pasts_and_padding(exported):
    """B=2 with different past lengths, padded new tokens, cache larger than both pasts
    (unused columns hold garbage, masked by -1e9)."""
    config, model, _, session = exported
    rng = np.random.default_rng(1)
    V = config.vocab_size
    pasts = [_ids(rng, V, 13), _ids(rng, V, 5)]
    news = [_ids(rng, V, 6), _ids(rng, V, 2)]
    diffs = compare_with_hf(model, session, llama_shape(config), rope_spec(config), pasts, news, capacity=20, seed=2)
    assert max(diffs.values()) < TOL, diffs


def test_decode_step_and_prefill_without_cache(exported):
    config, model, _, session = exported
    rng = np.random.default_rng(3)
    shape, rope = llama_shape(config), rope_spec(config)
    V = config.vocab_size
    # one-token decode with a full cache (C == past)
    d1 = compare_with_hf(model, session, shape, rope, [_ids(rng, V, 30)], [_ids(rng, V, 1)], capacity=30)
    # prefill from nothing with C = 0 (the cache inputs have a zero-length dimension)
    d2 = compare_with_hf(model, session, shape, rope, [[], []], [_ids(rng, V, 7), _ids(rng, V, 4)], capacity=0)
    # empty past in one row, long past in the other
    d3 = compare_with_hf(model, session, shape, rope, [[], _ids(rng, V, 9)], [_ids(rng, V, 3), _ids(rng, V, 3)], capacity=11)
    for d in (d1, d2, d3):
        assert max(d.values()) < TOL, d


def test_masking_really_hides_garbage(exported):
    """Sanity check of the test itself: unmasking the garbage columns changes the logits."""
    from duet_export.contract import contract_feeds, hf_forward

    config, model, _, session = exported
    rng = np.random.default_rng(5)
    past = _ids(rng, config.vocab_size, 4)
    batch = contract_feeds(llama_shape(config), rope_spec(config), [hf_forward(model, past, True)[1]],
                           [_ids(rng, config.vocab_size, 2)], 8, rng)
    good = session.run(["logits"], batch.feeds)[0]
    batch.feeds["attn_mask"][..., 4:8] = 0.0
    bad = session.run(["logits"], batch.feeds)[0]
    assert np.abs(good - bad).max() > 1e-2


def test_graph_follows_the_contract(exported):
    config, _, path, session = exported
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    s = llama_shape(config)
    assert m.ir_version == IR_VERSION <= 10
    assert [(o.domain, o.version) for o in m.opset_import] == [("", OPSET)]
    assert all(n.domain == "" for n in m.graph.node)

    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    ins = {i.name: dims(i) for i in m.graph.input}
    outs = {o.name: dims(o) for o in m.graph.output}
    half = s.head_dim // 2
    assert ins.pop("input_ids") == ["batch", "tokens"]
    assert ins.pop("rope_cos") == ins.pop("rope_sin") == ["batch", "tokens", half]
    assert ins.pop("attn_mask")[:4] == ["batch", 1, 1, "tokens"]
    assert outs.pop("logits") == ["batch", "tokens", s.vocab]
    for l in range(s.layers):
        assert ins.pop(f"past_key_{l}") == ["batch", s.kv_heads, s.head_dim, "cache"]
        assert ins.pop(f"past_value_{l}") == ["batch", s.kv_heads, "cache", s.head_dim]
        assert outs.pop(f"new_key_{l}") == ["batch", s.kv_heads, s.head_dim, "tokens"]
        assert outs.pop(f"new_value_{l}") == ["batch", s.kv_heads, "tokens", s.head_dim]
    assert ins == {} and outs == {}
    assert [i.name for i in session.get_inputs()][:4] == ["input_ids", "rope_cos", "rope_sin", "attn_mask"]

    # The cache is only ever viewed (Unsqueeze, inside the per-row / per-head branches) and read
    # by MatMul: never concatenated, sliced or repeated.
    def all_nodes(graph):
        for node in graph.node:
            yield node
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from all_nodes(a.g)

    nodes = list(all_nodes(m.graph))
    views = set()
    for n in nodes:
        for i in n.input:
            if i.startswith("past_"):
                assert n.op_type in ("Unsqueeze", "Shape"), (n.op_type, i)
                if n.op_type == "Unsqueeze":
                    views.update(n.output)
    assert len(views) == 2 * 2 * s.layers  # keys and values, per-row and per-head branch
    for n in nodes:
        for i in n.input:
            if i in views:
                assert n.op_type == "MatMul", (n.op_type, i)
    # Every projection is Gemm(transB=1) on an [out, in] initializer.
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    gemms = [n for n in m.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 7 * s.layers + 1
    for n in gemms:
        assert {a.name: a.i for a in n.attribute} == {"transB": 1}
        assert n.input[1] in inits
    # Tied: the lm_head Gemm uses the embedding initializer, stored once.
    lm = gemms[-1].input[1]
    if s.tied:
        assert lm == "model.embed_tokens.weight" and "lm_head.weight" not in inits
    else:
        assert lm == "lm_head.weight"
    assert len(inits) == len(set(inits))


def test_external_data_roundtrip(tmp_path, make_checkpoint):
    """Large models store weights in model.onnx.data; forced here on a tiny model, read
    lazily from safetensors, and must give the same logits as the inline export."""
    from transformers import AutoConfig

    ckpt = make_checkpoint(layers=2, hidden=32, heads=4, kv_heads=2, intermediate=48, vocab=40, tied=True, seed=4)
    config = AutoConfig.from_pretrained(str(ckpt))
    inline, _ = export_onnx(config, SafetensorsWeights(ckpt), tmp_path / "inline", external="never", progress=False)
    ext, data = export_onnx(config, SafetensorsWeights(ckpt), tmp_path / "ext", external="always", progress=False)
    assert data is not None and data.name == "model.onnx.data" and data.stat().st_size > 0
    assert ext.stat().st_size < 20_000 < inline.stat().st_size
    m = onnx.load(str(ext), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer if "weight" in t.name)
    rng = np.random.default_rng(0)
    from duet_export.contract import contract_feeds

    feeds = contract_feeds(llama_shape(config), rope_spec(config), [None], [rng.integers(0, 40, 5).tolist()], 0, rng).feeds
    a = ort_session(inline).run(["logits"], feeds)[0]
    b = ort_session(ext).run(["logits"], feeds)[0]
    np.testing.assert_array_equal(a, b)


def test_weight_bytes_estimate_matches_initializers(tmp_path):
    for kw in SHAPES.values():
        config = tiny_config(**kw)
        model = tiny_model(config)
        path, _ = export_onnx(config, StateDictWeights(model.state_dict()), tmp_path, progress=False)
        m = onnx.load(str(path))
        weights = sum(np.prod(t.dims) * 4 for t in m.graph.initializer if not t.name.startswith("const_"))
        assert weights == llama_shape(config).weight_bytes()


def test_refuses_non_llama_and_bad_act():
    from duet_export.graph import UnsupportedModelError

    config = tiny_config()
    config.hidden_act = "gelu"
    with pytest.raises(UnsupportedModelError, match="hidden_act"):
        llama_shape(config)
    config = tiny_config()
    config.model_type = "mistral"
    with pytest.raises(UnsupportedModelError, match="model_type"):
        llama_shape(config)
