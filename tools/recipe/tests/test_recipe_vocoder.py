"""The vocoder recipe on the tiny corpus/tokenizer: a few training steps, resume, export through
`duet-export unit-hifigan` (library and CLI), the duet.vocoder/1 geometry, held-out figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_vocoder(tiny_recipe, tmp_path_factory):
    from duet_recipe.vocoder import train_vocoder

    work = tmp_path_factory.mktemp("vocoder")
    # the tiny corpus may hold no clean utterance: train on every kind
    summary = train_vocoder(tiny_recipe["corpus"], tiny_recipe["out"], work, max_steps=3, channels=16, batch=2,
                            kinds=None, progress=False)
    return {**tiny_recipe, "work": work, "train": summary}


def _session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_checkpoint_format_and_resume(tiny_vocoder):
    import torch

    from duet_recipe.vocoder import train_vocoder

    work, s = tiny_vocoder["work"], tiny_vocoder["train"]
    assert s["steps"] == 3 and Path(s["checkpoint"]).name == "g_00000003"
    blob = torch.load(s["checkpoint"], map_location="cpu", weights_only=True)
    keys = set(blob["generator"])
    assert "dict.weight" in keys and "conv_pre.weight_g" in keys and "conv_pre.weight_v" in keys
    assert "ups.0.weight_g" in keys and "conv_post.weight_v" in keys
    assert not any(k.endswith(".weight") and k != "dict.weight" for k in keys)
    cfg = json.loads((work / "config.json").read_text())
    assert cfg["upsample_initial_channel"] == 16 and cfg["num_embeddings"] == tiny_vocoder["manifest"]["unitCount"]
    again = train_vocoder(tiny_vocoder["corpus"], tiny_vocoder["out"], work, max_steps=4, channels=16, batch=2,
                          kinds=None, progress=False)
    assert again["steps"] == 4 and sorted(p.name for p in work.glob("g_*")) == ["g_00000004"]


def test_export_contract_and_roundtrip(tiny_vocoder, tmp_path):
    import torch
    from duet_export.vocoder import export_unit_hifigan, fold_weight_norm, load_generator

    from duet_recipe.vocoder import build_trainable

    work = tiny_vocoder["work"]
    ckpt = sorted(work.glob("g_*"))[-1]
    out = tmp_path / "voc"
    manifest = json.loads(export_unit_hifigan(ckpt, work / "config.json", out, progress=False).read_text())
    assert manifest["format"] == "duet.vocoder" and manifest["samplesPerUnit"] == 640
    k = manifest["unitCount"]
    sess = _session(out / "model.onnx")
    units = np.random.default_rng(0).integers(0, k, (1, 9))
    audio = sess.run(["audio"], {"units": units})[0]
    assert audio.shape == (1, 9 * 640) and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0

    # the trained (weight-norm) module and the exported ONNX agree
    raw = json.loads((work / "config.json").read_text())
    trained = build_trainable(raw)
    trained.load_state_dict(torch.load(str(ckpt), map_location="cpu", weights_only=True)["generator"])
    trained.eval()
    with torch.no_grad():
        ref = trained(torch.from_numpy(units)).numpy()
    np.testing.assert_allclose(audio, ref, atol=1e-5)
    folded, _ = load_generator(ckpt, work / "config.json")
    assert set(folded.state_dict()) == set(fold_weight_norm(trained.state_dict()))

    # and the CLI exports the same checkpoint unchanged
    env = dict(os.environ)
    cli_out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "duet_export", "unit-hifigan", "--checkpoint", str(ckpt),
                        "--config", str(work / "config.json"), "--out", str(cli_out), "--quiet"],
                       cwd=REPO_ROOT / "tools" / "export", env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    cli_manifest = json.loads((cli_out / "manifest.json").read_text())
    assert cli_manifest["sha256"] == manifest["sha256"]


def test_measure_figures(tiny_vocoder, tmp_path):
    from duet_export.vocoder import export_unit_hifigan

    from duet_recipe.vocoder import measure_vocoder

    work = tiny_vocoder["work"]
    ckpt = sorted(work.glob("g_*"))[-1]
    out = tmp_path / "voc"
    export_unit_hifigan(ckpt, work / "config.json", out, progress=False)
    f = measure_vocoder(out, tiny_vocoder["out"], tiny_vocoder["corpus"], progress=False)
    assert f["heldoutUtterances"] == 1 and 0.0 <= f["resynthUnitAgreement"] <= 1.0
    assert np.isfinite(f["mcdDb"]) and np.isfinite(f["logMelL1"]) and f["silenceRms"] >= 0
    assert f["speed"]["msPerChunkMedian"] > 0


def test_cli_vocoder_refuses_missing_tokenizer(tmp_path, tiny_recipe):
    from duet_recipe.cli import main

    assert main(["vocoder", "--corpus", str(tiny_recipe["corpus"]), "--tokenizer", str(tmp_path / "none"),
                 "--out", str(tmp_path / "v"), "--quiet"]) == 2
