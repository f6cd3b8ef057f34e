"""A tiny end-to-end run of the recipe (speech -> tokenizer) and the G.711 reference check."""

import json
import os
import warnings

import numpy as np
import pytest

from duet_recipe import g711

SPU = 640


def _session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_corpus_index(tiny_recipe):
    corpus = tiny_recipe["corpus"]
    lines = (corpus / "index.jsonl").read_text().splitlines()
    assert len(lines) == 12
    recs = [json.loads(x) for x in lines]
    for r in recs:
        assert (corpus / r["file"]).exists() and r["samples"] > 0
        assert {"text", "voice", "rate", "pitch", "augmentation", "split"} <= r.keys()
    assert len({r["voice"] for r in recs}) > 3
    assert {r["split"] for r in recs} == {"train"}  # every 20th is held out; the tokenizer then holds out the last
    assert tiny_recipe["manifest"]["recipe"]["corpus"]["heldoutUtterances"] == 1


def test_corpus_is_resumable(tiny_recipe):
    from duet_recipe.speech import make_corpus

    before = (tiny_recipe["corpus"] / "index.jsonl").read_text()
    again = make_corpus(tiny_recipe["corpus"], 12, seed=3, jobs=1, progress=False)
    assert again["new"] == 0 and again["reused"] == 12
    assert (tiny_recipe["corpus"] / "index.jsonl").read_text() == before


def test_onnx_contract(tiny_recipe):
    import onnx

    from duet_export.manifest import sha256_file

    out, m = tiny_recipe["out"], tiny_recipe["manifest"]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == m
    assert m["format"] == "duet.units" and m["version"] == 1 and m["model"] == "model.onnx"
    assert (m["sampleRate"], m["unitRate"], m["samplesPerUnit"], m["unitCount"]) == (16000, 25, 640, 16)
    assert m["leftContextSamples"] == 640 and m["leftContextSamples"] % SPU == 0
    assert m["sha256"] == sha256_file(out / "model.onnx")
    assert 0.0 <= m["leftContext"]["agreement"] <= 1.0 and m["recipe"]["corpus"]["utterances"] == 12
    model = onnx.load(str(out / "model.onnx"))
    assert model.ir_version <= 10
    assert {(o.domain or "ai.onnx", o.version) for o in model.opset_import} == {("ai.onnx", 17)}
    assert (out / "model.onnx").stat().st_size < 2_000_000

    sess = _session(out / "model.onnx")
    audio = (0.1 * np.random.default_rng(0).standard_normal((2, SPU * 7))).astype(np.float32)
    (units,) = sess.run(["units"], {"audio": audio})
    assert units.dtype == np.int64 and units.shape == (2, 7)
    assert units.min() >= 0 and units.max() < 16


def test_onnx_equals_torch_and_streams(tiny_recipe):
    import torch

    from duet_recipe.speech import read_wav
    from duet_recipe.tokenizer import agreement_counts, make_module

    m = tiny_recipe["manifest"]
    assert m["recipe"]["heldout"]["onnxVsTorchAgreement"] == 1.0
    sess = _session(tiny_recipe["out"] / "model.onnx")
    run = lambda a: sess.run(["units"], {"audio": np.ascontiguousarray(a, dtype=np.float32)})[0]  # noqa: E731
    corpus = tiny_recipe["corpus"]
    rec = json.loads((corpus / "index.jsonl").read_text().splitlines()[0])
    speech = read_wav(corpus / rec["file"])
    speech = speech[: len(speech) // SPU * SPU]

    # the torch module rebuilt from the ONNX initialisers gives the ONNX units
    import onnx
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tiny_recipe["out"] / "model.onnx")).graph.initializer}
    module = make_module(40, inits["mean"], 1.0 / inits["inv_std"], inits["centroids_t"].T)
    with torch.no_grad():
        ref = module(torch.from_numpy(speech)[None])[0].numpy()
    np.testing.assert_array_equal(run(speech[None])[0], ref)

    same, total = agreement_counts(run, speech, 4, m["leftContextSamples"] // SPU)
    assert same / total >= 0.99


def test_chunk_model_equals_model_tail(tiny_recipe):
    """chunk.onnx skips the left context unit: on speech with a whole unit of left context its
    units are the model's from the second on."""
    from duet_export.manifest import sha256_file
    from duet_recipe.speech import read_wav

    out, m = tiny_recipe["out"], tiny_recipe["manifest"]
    c = m["chunkModel"]
    assert c["model"] == "chunk.onnx" and c["sha256"] == sha256_file(out / "chunk.onnx")
    assert (c["trimmedUnits"], c["minLeftContextSamples"]) == (1, SPU)
    full, chunk = _session(out / "model.onnx"), _session(out / "chunk.onnx")
    corpus = tiny_recipe["corpus"]
    for line in (corpus / "index.jsonl").read_text().splitlines()[:4]:
        speech = read_wav(corpus / json.loads(line)["file"])
        for start in range(0, len(speech) - 5 * SPU, 4 * SPU):
            a = np.ascontiguousarray(speech[None, start:start + 5 * SPU], dtype=np.float32)
            (want,) = full.run(["units"], {"audio": a})
            (got,) = chunk.run(["units"], {"audio": a})
            np.testing.assert_array_equal(got, want[:, 1:])


def test_silence_is_one_unit(tiny_recipe):
    sess = _session(tiny_recipe["out"] / "model.onnx")
    (units,) = sess.run(["units"], {"audio": np.zeros((3, SPU * 10), np.float32)})
    assert len(np.unique(units)) == 1
    assert int(units[0, 0]) == tiny_recipe["manifest"]["silenceUnit"]


def test_g711_matches_audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    codes = np.arange(256, dtype=np.uint8)
    assert g711.lin2ulaw(pcm).tobytes() == audioop.lin2ulaw(pcm.tobytes(), 2)
    assert g711.lin2alaw(pcm).tobytes() == audioop.lin2alaw(pcm.tobytes(), 2)
    assert g711.ulaw2lin(codes).tobytes() == audioop.ulaw2lin(codes.tobytes(), 2)
    assert g711.alaw2lin(codes).tobytes() == audioop.alaw2lin(codes.tobytes(), 2)


def test_g711_known_values():
    # ITU-T G.711 tables: 0 -> mu 0xFF / A 0xD5; full scale -> mu 0x80 / A 0xAA; decoded extremes.
    assert g711.lin2ulaw(np.array([0, 32767, -32768], np.int16)).tolist() == [0xFF, 0x80, 0x00]
    assert g711.lin2alaw(np.array([0, 32767, -32768], np.int16)).tolist() == [0xD5, 0xAA, 0x2A]
    assert g711.ulaw2lin(np.array([0x00, 0x80, 0xFF, 0x7F], np.uint8)).tolist() == [-32124, 32124, 0, 0]
    assert g711.alaw2lin(np.array([0xAA, 0x2A, 0xD5, 0x55], np.uint8)).tolist() == [32256, -32256, 8, -8]
    x = np.sin(np.linspace(0, 20, 4000)).astype(np.float32) * 0.5
    for law in ("ulaw", "alaw"):
        y = g711.round_trip(x, law)
        snr = 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))
        assert snr > 30  # G.711 gives ~38 dB on a loud sine


def test_augmentations_stay_in_range():
    from duet_recipe.speech import augment, telephone_g711

    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    y = augment(x, {"kind": "noise+g711", "gainDb": -10.0, "padMs": [100, 50], "noise": "pink", "snrDb": 10.0,
                    "law": "alaw"}, rng)
    assert y.dtype == np.float32 and len(y) == 16000 + 1600 + 800 and np.abs(y).max() <= 1.0
    # the phone path removes content above 4 kHz
    hi = (0.3 * np.sin(np.arange(16000) * 2 * np.pi * 6000 / 16000)).astype(np.float32)
    assert np.sqrt(np.mean(telephone_g711(hi, "ulaw") ** 2)) < 0.02


def test_opus_round_trip_keeps_length_and_speech_band():
    import shutil

    from duet_recipe.speech import opus_round_trip

    if shutil.which("opusenc") is None:
        if os.environ.get("CI"):
            pytest.fail("opus-tools is missing although scripts/setup.sh installs it")
        pytest.skip("opus-tools is needed (scripts/setup.sh installs it)")
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    for kbps in (12, 32):
        y = opus_round_trip(x, kbps)
        assert y.dtype == np.float32 and len(y) == len(x)
        # aligned (opusdec removes the pre-skip) and close: a lossy codec, not a different signal
        corr = float(np.dot(x[1600:], y[1600:]) / (np.linalg.norm(x[1600:]) * np.linalg.norm(y[1600:])))
        assert corr > 0.95


def test_cli_refuses_missing_corpus(tmp_path):
    from duet_recipe.cli import main

    assert main(["tokenizer", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
