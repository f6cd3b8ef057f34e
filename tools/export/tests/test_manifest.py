"""The `llama` export end to end (in process): manifest contents, sha256, token ids."""

import hashlib
import json

import onnx
import pytest

from duet_export import EXPORTER
from duet_export.export import export_llama, verify_export
from duet_export.manifest import TokenError, resolve_tokens, validate_tokens
from duet_export.rope import RopeError, rope_spec

NO_FLAGS = {"unitBase": None, "unitCount": None, "s0": None, "s1": None}


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_contents(tmp_path, make_checkpoint):
    ckpt = make_checkpoint(layers=3, hidden=48, heads=8, kv_heads=2, head_dim=8, intermediate=64, vocab=120,
                           attention_bias=True, rope_scaling="llama3", max_context=512,
                           tokens={"unitBase": 40, "unitCount": 64, "s0": 110, "s1": 111})
    path = export_llama(ckpt, tmp_path / "onnx", NO_FLAGS, progress=False)
    m = json.loads(path.read_text())
    assert m["format"] == "duet.synclm" and m["version"] == 1 and m["model"] == "model.onnx"
    assert m["sha256"] == sha(tmp_path / "onnx/model.onnx")
    assert "externalData" not in m
    assert m["architecture"] == {
        "family": "llama", "layers": 3, "hidden": 48, "heads": 8, "kvHeads": 2, "headDim": 8, "intermediate": 64,
        "vocabSize": 120, "maxContext": 512, "rmsNormEps": 1e-5, "tiedEmbeddings": False,
    }
    from transformers import AutoConfig

    spec = rope_spec(AutoConfig.from_pretrained(str(ckpt)))
    assert m["rope"] == {"type": "llama3", "theta": 10000.0, "invFreq": spec.inv_freq.tolist(), "attentionScaling": 1.0}
    assert len(m["rope"]["invFreq"]) == 4
    assert m["tokens"] == {"unitBase": 40, "unitCount": 64, "s0": 110, "s1": 111}
    assert m["source"]["exporter"] == EXPORTER and m["source"]["checkpoint"] == str(ckpt.resolve())
    assert {"torch", "transformers"} <= set(m["source"])
    onnx.checker.check_model(str(tmp_path / "onnx/model.onnx"))
    diffs = verify_export(ckpt, path)
    assert max(diffs.values()) < 1e-4


def test_external_data_in_manifest(tmp_path, make_checkpoint):
    ckpt = make_checkpoint(tied=True)
    path = export_llama(ckpt, tmp_path / "onnx", NO_FLAGS, external="always", progress=False)
    m = json.loads(path.read_text())
    data = tmp_path / "onnx/model.onnx.data"
    assert m["externalData"] == {"file": "model.onnx.data", "sha256": sha(data)}
    assert m["sha256"] == sha(tmp_path / "onnx/model.onnx")
    # re-exporting inline removes the stale data file
    export_llama(ckpt, tmp_path / "onnx", NO_FLAGS, external="never", progress=False)
    assert not data.exists() and "externalData" not in json.loads(path.read_text())


def test_token_flags_override_file(tmp_path, make_checkpoint):
    ckpt = make_checkpoint(vocab=66)
    assert json.loads((ckpt / "duet_tokens.json").read_text()) == {"unitBase": 0, "unitCount": 64, "s0": 64, "s1": 65}
    flags = {"unitBase": 2, "unitCount": 60, "s0": 0, "s1": 1}
    path = export_llama(ckpt, tmp_path / "onnx", flags, progress=False)
    assert json.loads(path.read_text())["tokens"] == flags
    (ckpt / "duet_tokens.json").unlink()
    with pytest.raises(TokenError, match="unknown"):
        resolve_tokens(ckpt, 66, NO_FLAGS)
    assert resolve_tokens(ckpt, 66, flags) == flags


@pytest.mark.parametrize(
    "tokens, message",
    [
        ({"unitBase": 0, "unitCount": 65, "s0": 64, "s1": 65}, "inside the unit range"),
        ({"unitBase": 10, "unitCount": 60, "s0": 0, "s1": 1}, "exceed the vocabulary"),
        ({"unitBase": 0, "unitCount": 10, "s0": 66, "s1": 20}, "outside the vocabulary"),
        ({"unitBase": 0, "unitCount": 10, "s0": 20, "s1": 20}, "must differ"),
        ({"unitBase": -1, "unitCount": 10, "s0": 20, "s1": 21}, ">= 0"),
        ({"unitBase": 0, "unitCount": 10, "s0": 20}, "s1 must be an integer"),
        ({"unitBase": 0, "unitCount": 10.0, "s0": 20, "s1": 21}, "unitCount must be an integer"),
    ],
)
def test_token_validation(tokens, message):
    with pytest.raises(TokenError, match=message):
        validate_tokens(tokens, 66)


def test_dynamic_rope_refused_before_writing(tmp_path, make_checkpoint):
    ckpt = make_checkpoint(rope_scaling="dynamic")
    with pytest.raises(RopeError, match="dynamic"):
        export_llama(ckpt, tmp_path / "onnx", NO_FLAGS, progress=False)
    assert not (tmp_path / "onnx").exists()
