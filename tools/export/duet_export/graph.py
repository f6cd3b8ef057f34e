"""The `duet.synclm/1` ONNX graph of a Llama-architecture model, written op by op.

Built by hand with `onnx.helper` rather than `torch.onnx.export` because the contract fixes
the exact data flow (docs/synclm-contract.md, "The graph"): the KV cache comes in as plain
inputs in a transposed layout, is never concatenated, sliced or repeated, GQA is a reshape
of the queries, and only the new tokens' keys/values come out. A tracer would produce
whatever the PyTorch code does (cache concat, repeat_kv), which is what the contract avoids.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import EXPORTER
from .weights import WeightSource

OPSET = 17
IR_VERSION = 10
# Protobuf cannot serialise a message over 2 GiB; past this the weights go to model.onnx.data.
EXTERNAL_DATA_THRESHOLD = 1_500_000_000
EXTERNAL_DATA_NAME = "model.onnx.data"
# Offsets of external tensors are aligned so onnxruntime can memory-map them.
_ALIGN = 4096
_INT64_MAX = np.iinfo(np.int64).max


class UnsupportedModelError(ValueError):
    """The checkpoint is not a Llama-architecture model this exporter can express."""


@dataclass(frozen=True)
class LlamaShape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_context: int
    rms_norm_eps: float
    tied: bool
    attention_bias: bool
    mlp_bias: bool

    @property
    def groups(self) -> int:
        return self.heads // self.kv_heads

    def weight_bytes(self) -> int:
        """float32 bytes of all initializers (to decide on external data before building)."""
        h, d, n = self.hidden, self.head_dim, self.layers
        attn = h * d * (self.heads + 2 * self.kv_heads) + self.heads * d * h
        if self.attention_bias:
            attn += d * (self.heads + 2 * self.kv_heads) + h
        mlp = 3 * h * self.intermediate + (2 * self.intermediate + h if self.mlp_bias else 0)
        per_layer = attn + mlp + 2 * h
        total = n * per_layer + self.vocab * h * (1 if self.tied else 2) + h
        return 4 * total


# Up to this many new tokens per invocation, cache products run one row per (head, token).
ROW_PRODUCT_MAX_T = 4


def llama_shape(config) -> LlamaShape:
    """Reads and checks the parts of a LlamaConfig the graph depends on."""
    model_type = getattr(config, "model_type", None)
    if model_type != "llama":
        raise UnsupportedModelError(f"model_type is {model_type!r}; this exporter handles 'llama' checkpoints")
    act = getattr(config, "hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise UnsupportedModelError(f"hidden_act {act!r} is not supported (Llama uses silu)")
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if heads % kv != 0:
        raise UnsupportedModelError(f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv})")
    if head_dim % 2 != 0:
        raise UnsupportedModelError(f"head_dim ({head_dim}) must be even for rotary embeddings")
    return LlamaShape(
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        intermediate=config.intermediate_size,
        vocab=config.vocab_size,
        max_context=config.max_position_embeddings,
        rms_norm_eps=float(config.rms_norm_eps),
        tied=bool(getattr(config, "tie_word_embeddings", False)),
        attention_bias=bool(getattr(config, "attention_bias", False)),
        mlp_bias=bool(getattr(config, "mlp_bias", False)),
    )


class _Weights:
    """Turns checkpoint tensors into initializers: inline, or streamed to an external file so
    that a large model never holds all float32 weights in memory at once."""

    def __init__(self, source: WeightSource, shape: LlamaShape, external: Path | None):
        self.source = source
        self.shape = shape
        self.initializers: list[TensorProto] = []
        self._added: set[str] = set()
        self._external = external
        self._file = open(external, "wb") if external is not None else None

    def add(self, name: str, expect: tuple[int, ...]) -> str:
        if name in self._added:
            return name
        arr = self.source.get(name)
        if tuple(arr.shape) != expect:
            raise UnsupportedModelError(f"{name} has shape {tuple(arr.shape)}, expected {expect}")
        if self._file is None:
            tensor = numpy_helper.from_array(arr, name)
        else:
            pad = (-self._file.tell()) % _ALIGN
            if pad:
                self._file.write(b"\0" * pad)
            offset = self._file.tell()
            data = arr.astype("<f4", copy=False).tobytes()
            self._file.write(data)
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(arr.shape))
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", self._external.name), ("offset", str(offset)), ("length", str(len(data)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
        self.initializers.append(tensor)
        self._added.add(name)
        return name

    def add_optional(self, name: str, expect: tuple[int, ...], present: bool) -> str | None:
        if not present:
            return None
        if not self.source.has(name):
            raise UnsupportedModelError(f"config promises {name} but the checkpoint lacks it")
        return self.add(name, expect)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Graph:
    """Accumulates nodes with unique value names; constants are deduplicated initializers."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[TensorProto] = []
        self._const_names: dict[tuple, str] = {}
        self._used: set[str] = set()

    def _fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._used:
            i += 1
            name = f"{hint}_{i}"
        self._used.add(name)
        return name

    def op(self, op_type: str, inputs: list[str | None], hint: str, outputs: list[str] | int = 1, **attrs):
        if isinstance(outputs, int):
            outs = [self._fresh(f"{hint}_{k}" if outputs > 1 else hint) for k in range(outputs)]
        else:  # fixed names (graph outputs)
            outs = [self._fresh(o) for o in outputs]
        # Optional inputs that are absent are dropped from the end (Gemm's bias).
        ins = list(inputs)
        while ins and ins[-1] is None:
            ins.pop()
        self.nodes.append(helper.make_node(op_type, [i or "" for i in ins], outs, name=f"{outs[0]}/{op_type}", **attrs))
        return outs[0] if len(outs) == 1 else outs

    def const(self, values, dtype=np.int64) -> str:
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_names:
            name = self._fresh(f"const_{arr.dtype.name}_{'_'.join(str(v) for v in arr.ravel()[:6])}".replace("-", "m").replace(".", "p"))
            self.constants.append(numpy_helper.from_array(arr, name))
            self._const_names[key] = name
        return self._const_names[key]


def build_llama_graph(
    config,
    weights: WeightSource,
    *,
    external_data: Path | None = None,
    progress: bool = True,
) -> onnx.ModelProto:
    """The contract graph for `config` with weights from `weights` (HF `[out, in]` layout).

    With `external_data`, every weight is written to that file as it is read and the returned
    ModelProto only references it (its basename is the `location`).
    """
    from tqdm import tqdm

    s = llama_shape(config)
    H, K, G, D, hid, V = s.heads, s.kv_heads, s.groups, s.head_dim, s.hidden, s.vocab
    w = _Weights(weights, s, external_data)
    g = _Graph()
    try:
        # ---- shapes (B, T from input_ids; C from the cache) ----
        ids_shape = g.op("Shape", ["input_ids"], "shape/ids")
        B = g.op("Slice", [ids_shape, g.const([0]), g.const([1])], "shape/B")
        T = g.op("Slice", [ids_shape, g.const([1]), g.const([2])], "shape/T")
        key_shape = g.op("Shape", ["past_key_0"], "shape/past_key")
        C = g.op("Slice", [key_shape, g.const([3]), g.const([4])], "shape/C")
        shape_bthd = g.op("Concat", [B, T, g.const([H, D])], "shape/BTHD", axis=0)
        shape_btkd = g.op("Concat", [B, T, g.const([K, D])], "shape/BTKD", axis=0)
        shape_q = g.op("Concat", [B, g.const([K, G]), T, g.const([D])], "shape/B_K_G_T_D", axis=0)
        group_axis = g.const([2])
        small_t = g.op("LessOrEqual", [T, g.const([ROW_PRODUCT_MAX_T])], "shape/small_T")
        shape_rows = g.op("Concat", [B, g.const([K, G]), T, g.const([1, -1])], "shape/B_K_G_T_1_X", axis=0)
        shape_prod = g.op("Concat", [B, g.const([K, G]), T, g.const([-1])], "shape/B_K_G_T_Y", axis=0)
        group_token_axes = g.const([2, 3])

        def cache_product(a: str, cache: str, hint: str) -> str:
            """`a [B,K,G,T,X] @ cache [B,K,X,Y]` (the cache broadcast over G, a view) -> [B,K,G,T,Y].

            For a few tokens (decode steps) every (head, token) row is its own product, which
            MLAS runs as a matrix-vector kernel straight from the cache; for a prefill the rows
            of a head share one product, where packing the cache once pays off.
            """
            rows, cache6, prod6, small = (g._fresh(f"{hint}/{x}") for x in ("rows", "cache6", "prod6", "small"))
            then_branch = helper.make_graph(
                [
                    helper.make_node("Reshape", [a, shape_rows], [rows], name=f"{rows}/Reshape"),
                    helper.make_node("Unsqueeze", [cache, group_token_axes], [cache6], name=f"{cache6}/Unsqueeze"),
                    helper.make_node("MatMul", [rows, cache6], [prod6], name=f"{prod6}/MatMul"),
                    helper.make_node("Reshape", [prod6, shape_prod], [small], name=f"{small}/Reshape"),
                ],
                f"{hint}/per_row",
                [],
                [helper.make_tensor_value_info(small, TensorProto.FLOAT, None)],
            )
            cache5, large = g._fresh(f"{hint}/cache5"), g._fresh(f"{hint}/large")
            else_branch = helper.make_graph(
                [
                    helper.make_node("Unsqueeze", [cache, group_axis], [cache5], name=f"{cache5}/Unsqueeze"),
                    helper.make_node("MatMul", [a, cache5], [large], name=f"{large}/MatMul"),
                ],
                f"{hint}/per_head",
                [],
                [helper.make_tensor_value_info(large, TensorProto.FLOAT, None)],
            )
            return g.op("If", [small_t], hint, then_branch=then_branch, else_branch=else_branch)
        shape_bhtd = g.op("Concat", [B, g.const([H]), T, g.const([D])], "shape/BHTD", axis=0)
        shape_logits = g.op("Concat", [B, T, g.const([V])], "shape/BTV", axis=0)
        flat_hd = g.const([-1, H * D])

        eps = g.const(s.rms_norm_eps, np.float32)
        two = g.const(2.0, np.float32)

        def rms_norm(x: str, weight: str, hint: str) -> str:
            sq = g.op("Pow", [x, two], f"{hint}/sq")
            mean = g.op("ReduceMean", [sq], f"{hint}/mean", axes=[-1], keepdims=1)
            std = g.op("Sqrt", [g.op("Add", [mean, eps], f"{hint}/add_eps")], f"{hint}/std")
            normed = g.op("Div", [x, std], f"{hint}/normed")
            return g.op("Mul", [normed, weight], hint)

        def linear(x: str, prefix: str, out_f: int, in_f: int, bias: bool, hint: str) -> str:
            wt = w.add(f"{prefix}.weight", (out_f, in_f))
            b = w.add_optional(f"{prefix}.bias", (out_f,), bias)
            return g.op("Gemm", [x, wt, b], hint, transB=1)

        # cos/sin [B, T, D/2] -> [B, T, 1, D/2], shared by all layers and heads.
        cos = g.op("Unsqueeze", ["rope_cos", g.const([2])], "rope/cos")
        sin = g.op("Unsqueeze", ["rope_sin", g.const([2])], "rope/sin")

        def rope(x: str, hint: str) -> str:
            # HF rotate_half: concat(x1*cos - x2*sin, x2*cos + x1*sin).
            x1, x2 = g.op("Split", [x], f"{hint}/half", outputs=2, axis=-1)
            r1 = g.op("Sub", [g.op("Mul", [x1, cos], f"{hint}/x1cos"), g.op("Mul", [x2, sin], f"{hint}/x2sin")], f"{hint}/r1")
            r2 = g.op("Add", [g.op("Mul", [x2, cos], f"{hint}/x2cos"), g.op("Mul", [x1, sin], f"{hint}/x1sin")], f"{hint}/r2")
            return g.op("Concat", [r1, r2], hint, axis=-1)

        # ---- embeddings, hidden state kept 2-D [B*T, hidden] ----
        embed = w.add("model.embed_tokens.weight", (V, hid))
        flat_ids = g.op("Reshape", ["input_ids", g.const([-1])], "embed/ids")
        x = g.op("Gather", [embed, flat_ids], "embed/x", axis=0)
        q_scale = g.const(D**-0.5, np.float32)

        for l in tqdm(range(s.layers), desc="layers", unit="layer", file=sys.stderr, disable=not progress):
            p = f"model.layers.{l}"
            n = f"l{l}"
            h = rms_norm(x, w.add(f"{p}.input_layernorm.weight", (hid,)), f"{n}/input_norm")
            ab = s.attention_bias
            q = g.op("Reshape", [linear(h, f"{p}.self_attn.q_proj", H * D, hid, ab, f"{n}/q_proj"), shape_bthd], f"{n}/q")
            k = g.op("Reshape", [linear(h, f"{p}.self_attn.k_proj", K * D, hid, ab, f"{n}/k_proj"), shape_btkd], f"{n}/k")
            v = g.op("Reshape", [linear(h, f"{p}.self_attn.v_proj", K * D, hid, ab, f"{n}/v_proj"), shape_btkd], f"{n}/v")
            q = g.op("Mul", [rope(q, f"{n}/q_rot"), q_scale], f"{n}/q_scaled")
            k = rope(k, f"{n}/k_rot")
            # [B,T,H,D] -> [B,H,T,D] -> [B,K,G,T,D]: head h = k*G + g uses kv head h // G (repeat_kv).
            # The cache is never copied: cache_product() views it broadcast over G.
            q = g.op("Reshape", [g.op("Transpose", [q], f"{n}/q_bhtd", perm=[0, 2, 1, 3]), shape_q], f"{n}/q_grouped")
            new_key = g.op("Transpose", [k], f"{n}/new_key", outputs=[f"new_key_{l}"], perm=[0, 2, 3, 1])
            new_value = g.op("Transpose", [v], f"{n}/new_value", outputs=[f"new_value_{l}"], perm=[0, 2, 1, 3])
            new_key5 = g.op("Unsqueeze", [new_key, group_axis], f"{n}/new_key5")
            new_value5 = g.op("Unsqueeze", [new_value, group_axis], f"{n}/new_value5")
            scores = g.op(
                "Concat",
                [
                    cache_product(q, f"past_key_{l}", f"{n}/scores_cache"),
                    g.op("MatMul", [q, new_key5], f"{n}/scores_new"),
                ],
                f"{n}/scores",
                axis=-1,
            )  # [B, K, G, T, C+T]
            probs = g.op("Softmax", [g.op("Add", [scores, "attn_mask"], f"{n}/masked")], f"{n}/probs", axis=-1)
            minus1 = g.const([-1])
            p_cache = g.op("Slice", [probs, g.const([0]), C, minus1], f"{n}/probs_cache")
            p_new = g.op("Slice", [probs, C, g.const([_INT64_MAX]), minus1], f"{n}/probs_new")
            attn = g.op(
                "Add",
                [
                    cache_product(p_cache, f"past_value_{l}", f"{n}/attn_cache"),
                    g.op("MatMul", [p_new, new_value5], f"{n}/attn_new"),
                ],
                f"{n}/attn",
            )  # [B, K, G, T, D]
            attn = g.op("Reshape", [attn, shape_bhtd], f"{n}/attn_bhtd")
            attn = g.op("Transpose", [attn], f"{n}/attn_bthd", perm=[0, 2, 1, 3])
            attn = g.op("Reshape", [attn, flat_hd], f"{n}/attn_flat")
            attn = linear(attn, f"{p}.self_attn.o_proj", hid, H * D, ab, f"{n}/o_proj")
            x = g.op("Add", [x, attn], f"{n}/resid_attn")

            h = rms_norm(x, w.add(f"{p}.post_attention_layernorm.weight", (hid,)), f"{n}/post_norm")
            mb = s.mlp_bias
            gate = linear(h, f"{p}.mlp.gate_proj", s.intermediate, hid, mb, f"{n}/gate_proj")
            up = linear(h, f"{p}.mlp.up_proj", s.intermediate, hid, mb, f"{n}/up_proj")
            act = g.op("Mul", [gate, g.op("Sigmoid", [gate], f"{n}/gate_sigmoid")], f"{n}/gate_silu")
            down = linear(g.op("Mul", [act, up], f"{n}/gated"), f"{p}.mlp.down_proj", hid, s.intermediate, mb, f"{n}/down_proj")
            x = g.op("Add", [x, down], f"{n}/resid_mlp")

        x = rms_norm(x, w.add("model.norm.weight", (hid,)), "final_norm")
        # Tied: the embedding initializer itself is the lm_head ([V, hidden] either way).
        lm = embed if s.tied else w.add("lm_head.weight", (V, hid))
        logits = g.op("Gemm", [x, lm], "lm_head", transB=1)
        g.op("Reshape", [logits, shape_logits], "logits", outputs=["logits"])
    finally:
        w.close()

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info("input_ids", i64, ["batch", "tokens"]),
        helper.make_tensor_value_info("rope_cos", f32, ["batch", "tokens", D // 2]),
        helper.make_tensor_value_info("rope_sin", f32, ["batch", "tokens", D // 2]),
        helper.make_tensor_value_info("attn_mask", f32, ["batch", 1, 1, "tokens", "cache_plus_tokens"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "tokens", V])]
    for l in range(s.layers):
        inputs.append(helper.make_tensor_value_info(f"past_key_{l}", f32, ["batch", K, D, "cache"]))
        inputs.append(helper.make_tensor_value_info(f"past_value_{l}", f32, ["batch", K, "cache", D]))
        outputs.append(helper.make_tensor_value_info(f"new_key_{l}", f32, ["batch", K, D, "tokens"]))
        outputs.append(helper.make_tensor_value_info(f"new_value_{l}", f32, ["batch", K, "tokens", D]))

    graph = helper.make_graph(
        g.nodes, "duet_synclm_llama", inputs, outputs, initializer=g.constants + w.initializers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=EXPORTER.split()[0])
    model.ir_version = IR_VERSION
    model.producer_version = EXPORTER.split()[1]
    model.doc_string = "duet.synclm/1 (docs/synclm-contract.md)"
    helper.set_model_props(model, {"duet.format": "duet.synclm", "duet.version": "1"})
    return model


def export_onnx(
    config,
    weights: WeightSource,
    out_dir: Path,
    *,
    external: str = "auto",
    progress: bool = True,
) -> tuple[Path, Path | None]:
    """Writes `model.onnx` (and `model.onnx.data` when the weights are large) into `out_dir`
    and checks it with onnx.checker. `external`: "auto" | "always" | "never"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.onnx"
    data_path = out_dir / EXTERNAL_DATA_NAME
    if external == "auto":
        use_external = llama_shape(config).weight_bytes() > EXTERNAL_DATA_THRESHOLD
    elif external in ("always", "never"):
        use_external = external == "always"
    else:
        raise ValueError(f"external must be auto, always or never, not {external!r}")
    if data_path.exists():
        data_path.unlink()  # a stale data file would be hashed into the manifest otherwise
    model = build_llama_graph(config, weights, external_data=data_path if use_external else None, progress=progress)
    tmp = model_path.with_suffix(".onnx.tmp")
    onnx.save_model(model, str(tmp))
    os.replace(tmp, model_path)
    # A path (not the proto) so the checker resolves external data and copes with > 2 GiB.
    onnx.checker.check_model(str(model_path))
    return model_path, (data_path if use_external else None)
