"""hubert-units: tiny random HubertModel + random centroids -> duet.units/1 ONNX."""

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from duet_export import units
from duet_export.manifest import sha256_file

HIDDEN = 32


def make_hubert(path, *, stable=False, strides=(5, 2, 2, 2, 2, 2, 2), kernels=(10, 3, 3, 3, 3, 2, 2), seed=0):
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=HIDDEN, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        conv_dim=(16,) * len(strides), conv_stride=strides, conv_kernel=kernels,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group",
    )
    HubertModel(config).eval().save_pretrained(str(path))
    return path


def make_centroids(path, k=24, dim=HIDDEN, seed=0):
    np.save(path, np.random.default_rng(seed).standard_normal((k, dim)).astype(np.float32))
    return path


def reference_units(checkpoint, layer, centroids, audio):
    """Independent of the exported module: HF's own forward (output_hidden_states), frames
    pooled in numpy, float64 distances. Returns (units, distances)."""
    model = units.load_hubert(checkpoint)
    g = units.hubert_geometry(model.config)
    with torch.no_grad():
        out = model(torch.nn.functional.pad(torch.tensor(audio), (0, g.pad)), output_hidden_states=True)
    h = out.hidden_states[layer].numpy().astype(np.float64)
    h = h.reshape(h.shape[0], -1, g.pool, h.shape[-1]).mean(axis=2)
    c = np.load(centroids).astype(np.float64)
    d = ((h[:, :, None, :] - c[None, None]) ** 2).sum(-1)
    return d.argmin(-1), d


def assert_units_equal(got, ref, dist):
    """Exact equality; a differing unit is accepted only where the reference distances of the
    two centroids are equal within float32 rounding of the features (a proven tie)."""
    assert got.shape == ref.shape and got.dtype == np.int64
    for b, t in zip(*np.nonzero(got != ref)):
        d = dist[b, t]
        gap = d[got[b, t]] - d[ref[b, t]]
        assert gap <= 1e-5 * np.abs(d).max(), f"unit ({b},{t}): onnx {got[b, t]} vs ref {ref[b, t]}, gap {gap:.3g} is no tie"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubert")
    ckpt = make_hubert(root / "hf")
    cents = make_centroids(root / "c.npy")
    manifest = units.export_hubert_units(ckpt, 2, cents, root / "onnx", measure_seconds=3.0, progress=False)
    return ckpt, cents, manifest


LENGTHS = (1, 3, 17, 50)  # units


def test_onnx_equals_pytorch_pipeline(exported):
    ckpt, cents, manifest = exported
    run = units.ort_runner(manifest.parent / "model.onnx")
    module = units.units_module(units.load_hubert(ckpt), 2, np.load(cents))
    rng = np.random.default_rng(1)
    for n in LENGTHS:
        audio = (0.1 * rng.standard_normal((2, n * units.SAMPLES_PER_UNIT))).astype(np.float32)
        got = run(audio)
        assert got.shape == (2, n)
        ref, dist = reference_units(ckpt, 2, cents, audio)
        assert_units_equal(got, ref, dist)
        with torch.no_grad():
            assert_units_equal(module(torch.tensor(audio)).numpy(), ref, dist)


@pytest.mark.parametrize("variant", ["stable-last-layer", "25hz"])
def test_variants(tmp_path, variant):
    """Pre-norm (large-style) HuBERT at its last layer; a 25 Hz encoder (extra stride 2) used
    without pooling."""
    if variant == "25hz":
        ckpt = make_hubert(tmp_path / "hf", strides=(5, 2, 2, 2, 2, 2, 2, 2), kernels=(10, 3, 3, 3, 3, 2, 2, 2), seed=3)
        layer = 2
    else:
        ckpt = make_hubert(tmp_path / "hf", stable=True, seed=4)
        layer = 3
    cents = make_centroids(tmp_path / "c.npy", k=16, seed=5)
    manifest = units.export_hubert_units(ckpt, layer, cents, tmp_path / "onnx", left_context_ms=1000, progress=False)
    m = json.loads(manifest.read_text())
    assert m["architecture"]["framesPerUnit"] == (1 if variant == "25hz" else 2)
    assert m["leftContextSamples"] == 25 * 640 and m["leftContext"]["method"] == "given"
    run = units.ort_runner(manifest.parent / "model.onnx")
    audio = (0.1 * np.random.default_rng(6).standard_normal((3, 11 * 640))).astype(np.float32)
    ref, dist = reference_units(ckpt, layer, cents, audio)
    assert_units_equal(run(audio), ref, dist)


def test_manifest_and_graph(exported):
    import onnx

    _, cents, manifest = exported
    m = json.loads(manifest.read_text())
    path = manifest.parent / m["model"]
    assert m["format"] == "duet.units" and m["version"] == 1
    assert m["sha256"] == sha256_file(path)
    assert (m["sampleRate"], m["unitRate"], m["samplesPerUnit"], m["unitCount"]) == (16000, 25, 640, 24)
    assert m["leftContextSamples"] % 640 == 0 and m["leftContextSamples"] > 0
    lc = m["leftContext"]
    assert lc["method"] == "measured" and lc["sweep"] and "noise" in lc["audio"]
    assert m["source"]["centroidsSha256"] == sha256_file(cents)
    model = onnx.load(str(path))
    assert model.ir_version <= 10
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 17)}
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "audio" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.name == "units" and out.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "samples"]


def test_streaming_agreement_measure(exported):
    """The measurement behind the manifest's figure: a fraction in [0, 1]; one chunk with all
    of its history is offline tokenisation itself (1.0); and it matches a hand-made replay."""
    _, _, manifest = exported
    run = units.ort_runner(manifest.parent / "model.onnx")
    audio = (0.1 * np.random.default_rng(7).standard_normal(24 * 640)).astype(np.float32)
    assert units.streaming_agreement(run, audio[: 4 * 640], 4, 8) == 1.0
    got = units.streaming_agreement(run, audio, 4, 8)
    offline = run(audio[None])[0]
    same = sum(int((run(audio[None, max(0, s - 8) * 640:(s + 4) * 640])[0][-4:] == offline[s:s + 4]).sum())
               for s in range(0, 24, 4))
    assert got == same / 24 and 0 <= got <= 1


def test_refusals(tmp_path, exported):
    ckpt, cents, _ = exported
    with pytest.raises(units.UnitsError, match=r"layer 0 is out of range.*1\.\.3"):
        units.export_hubert_units(ckpt, 0, cents, tmp_path / "a", left_context_ms=0)
    with pytest.raises(units.UnitsError, match=r"centroids have dim 16 .*hidden size is 32"):
        units.export_hubert_units(ckpt, 1, make_centroids(tmp_path / "c16.npy", dim=16), tmp_path / "b", left_context_ms=0)
    np.save(tmp_path / "c3d.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(units.UnitsError, match="2-D"):
        units.export_hubert_units(ckpt, 1, tmp_path / "c3d.npy", tmp_path / "c", left_context_ms=0)
    assert not (tmp_path / "a").exists()  # refused before anything was written

    proc = run_cli("hubert-units", "--checkpoint", ckpt, "--layer", 4, "--centroids", cents, "--out", tmp_path / "d")
    assert proc.returncode == 2
    assert "UnitsError" in proc.stderr and "--layer 4 is out of range" in proc.stderr and "Traceback" not in proc.stderr
