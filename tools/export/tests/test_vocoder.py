"""unit-hifigan: speech-resynthesis unit HiFi-GAN checkpoints -> duet.vocoder/1 ONNX."""

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from duet_export import vocoder
from duet_export.contract import ort_session
from duet_export.manifest import sha256_file

SPU = 640


@pytest.fixture(scope="module", params=["1", "2"])
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"hifigan{request.param}")
    raw = vocoder.tiny_config(32)
    if request.param == "2":
        raw.update(resblock="2", resblock_dilation_sizes=[[1, 3], [1, 3]])
    ckpt, config = vocoder.write_tiny(root / "ckpt", raw, seed=int(request.param))
    manifest = vocoder.export_unit_hifigan(ckpt, config, root / "onnx", progress=False)
    return ckpt, config, manifest


def _runner(manifest):
    session = ort_session(manifest.parent / "model.onnx")
    return lambda u: session.run(["audio"], {"units": np.ascontiguousarray(u, dtype=np.int64)})[0]


def test_onnx_equals_pytorch(exported):
    ckpt, config, manifest = exported
    model, _ = vocoder.load_generator(ckpt, config)
    run = _runner(manifest)
    rng = np.random.default_rng(0)
    for n in (1, 4, 13, 40):
        u = rng.integers(0, 32, (2, n))
        got = run(u)
        with torch.no_grad():
            ref = model(torch.tensor(u)).numpy()
        assert got.shape == (2, n * SPU) and got.dtype == np.float32
        assert np.abs(got - ref).max() < 1e-4
        assert ref.std() > 0.05  # not a degenerate (silent or saturated) generator


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_loader_matches_torch_weight_norm(exported):
    """The checkpoint's weight_g/weight_v pairs loaded into torch's own weight_norm modules
    (strict: every name must match) give the same audio as the folded generator."""
    ckpt, config, _ = exported
    model, cfg = vocoder.load_generator(ckpt, config)
    wn = vocoder._build_generator(cfg)
    for name, mod in list(wn.named_modules()):
        if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            torch.nn.utils.weight_norm(mod)  # the deprecated API speech-resynthesis uses
    wn.load_state_dict(torch.load(str(ckpt), weights_only=True)["generator"], strict=True)
    u = torch.tensor(np.random.default_rng(1).integers(0, 32, (1, 9)))
    with torch.no_grad():
        assert torch.abs(wn(u) - model(u)).max() < 1e-5


def test_manifest_and_chunking(exported):
    import onnx

    _, _, manifest = exported
    m = json.loads(manifest.read_text())
    path = manifest.parent / m["model"]
    assert m["format"] == "duet.vocoder" and m["version"] == 1 and m["sha256"] == sha256_file(path)
    assert (m["sampleRate"], m["unitRate"], m["samplesPerUnit"], m["unitCount"]) == (16000, 25, 640, 32)
    left = m["leftContextUnits"]
    assert 0 < left <= m["leftContext"]["receptiveFieldUnits"]
    model = onnx.load(str(path))
    assert model.ir_version <= 10 and {(o.domain, o.version) for o in model.opset_import} == {("", 17)}
    assert [i.name for i in model.graph.input] == ["units"] and [o.name for o in model.graph.output] == ["audio"]

    # Fresh sequences (not the ones measured on): with the manifest's left context a chunked run
    # reproduces the one-shot output on the chunk's samples; with one unit less it does not.
    run = _runner(manifest)
    seq = np.random.default_rng(11).integers(0, 32, (2, left + 16))
    assert vocoder.chunk_difference(run, seq, 4, left) <= vocoder.CHUNK_TOLERANCE
    assert vocoder.chunk_difference(run, seq, 4, left - 1) > vocoder.CHUNK_TOLERANCE


def test_chunk_model_equals_one_shot_tail(exported):
    """chunk.onnx computes only what a chunk with the manifest's left context needs: its output
    for N units is the one-shot output from `trimmedSamples` on, and it does less work."""
    _, _, manifest = exported
    m = json.loads(manifest.read_text())
    c = m["chunkModel"]
    path = manifest.parent / c["model"]
    assert c["sha256"] == sha256_file(path) and c["minUnits"] == m["leftContextUnits"] + 1
    assert c["trimmedSamples"] == m["leftContextUnits"] * SPU - vocoder.CHUNK_KEEP_SAMPLES
    full, chunk = _runner(manifest), ort_session(path)
    rng = np.random.default_rng(3)
    for n in (c["minUnits"], c["minUnits"] + 4, 30):
        u = rng.integers(0, 32, (3, n)).astype(np.int64)
        got = chunk.run(["audio"], {"units": u})[0]
        want = full(u)[:, c["trimmedSamples"]:]
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= vocoder.CHUNK_MODEL_TOLERANCE
    # Every upsample stage starts later than position 0: the left context is not synthesised.
    _, keep = vocoder.chunk_trims(vocoder.parse_config(json.loads((manifest.parent.parent / "ckpt" / "config.json").read_text())), c["trimmedSamples"])
    assert all(k > 0 for k in keep)


@pytest.mark.parametrize("k, s", [(16, 8), (20, 10), (11, 5), (4, 2), (8, 8), (9, 3)])
def test_polyphase_upsample_equals_conv_transpose(k, s):
    torch.manual_seed(k * s)
    up = torch.nn.ConvTranspose1d(6, 3, k, s, padding=(k - s) // 2)
    x = torch.randn(2, 6, 13)
    with torch.no_grad():
        want, got = up(x), vocoder.polyphase_upsample(up)(x)
    assert got.shape == want.shape == (2, 3, 13 * s)
    assert torch.abs(got - want).max() < 1e-5


def _raw(**kw):
    raw = vocoder.tiny_config(32)
    raw.update(kw)
    return raw


@pytest.mark.parametrize("raw, match", [
    (_raw(f0=True), "conditioning"),
    (_raw(multispkr="single"), "conditioning"),
    (_raw(model_in_dim=48), "model_in_dim"),
    (_raw(upsample_rates=[5, 4, 4, 2, 2], upsample_kernel_sizes=[11, 8, 8, 4, 4]), "= 320 samples per unit.*need 640"),
    (_raw(upsample_kernel_sizes=[16, 15, 20]), "kernel 15 with rate 8"),
    (_raw(sampling_rate=22050), "22050"),
])
def test_config_refusals(raw, match):
    with pytest.raises(vocoder.VocoderError, match=match):
        vocoder.parse_config(raw)


def test_checkpoint_refusals(tmp_path):
    ckpt, config = vocoder.write_tiny(tmp_path / "t")
    blob = torch.load(str(ckpt), weights_only=True)
    blob["generator"]["spkr.weight"] = torch.zeros(200, 16)
    torch.save(blob, str(tmp_path / "spkr"))
    with pytest.raises(vocoder.VocoderError, match="spkr"):
        vocoder.load_generator(tmp_path / "spkr", config)
    (tmp_path / "corrupt").write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(vocoder.VocoderError, match="cannot read"):
        vocoder.load_generator(tmp_path / "corrupt", config)
    (tmp_path / "wide.json").write_text(json.dumps(_raw(upsample_initial_channel=64)))
    with pytest.raises(vocoder.VocoderError, match="shape"):
        vocoder.load_generator(ckpt, tmp_path / "wide.json")


def test_cli(tmp_path):
    proc = run_cli("tiny-hifigan", "--out", tmp_path / "t", "--units", 20, "--resblock", "2")
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    proc = run_cli("unit-hifigan", "--checkpoint", made["checkpoint"], "--config", made["config"], "--out", tmp_path / "o",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["unitCount"] == 20 and result["leftContextUnits"] > 0
    (tmp_path / "f0.json").write_text(json.dumps(_raw(f0=True)))
    proc = run_cli("unit-hifigan", "--checkpoint", made["checkpoint"], "--config", tmp_path / "f0.json", "--out", tmp_path / "x")
    assert proc.returncode == 2 and "VocoderError" in proc.stderr and "Traceback" not in proc.stderr
