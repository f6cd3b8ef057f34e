"""extend-vocab on a tiny locally built tokenizer and random Llama."""

import json

import pytest
import torch

from duet_export.tiny import tiny_config, tiny_model
from duet_export.vocab import extend_vocab, unit_token

WORDS = ["[UNK]", "[PAD]", "hello", "world", "the", "cat", "sat", "on", "mat", "a", "dog", "ran"]


def make_text_checkpoint(path, tied):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    model = tiny_model(tiny_config(vocab=len(WORDS), hidden=32, heads=2, intermediate=48, tied=tied), seed=7)
    model.save_pretrained(str(path))
    fast.save_pretrained(str(path))
    return model


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_extend_vocab(tmp_path, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    old = make_text_checkpoint(tmp_path / "text", tied)
    tokens = extend_vocab(tmp_path / "text", tmp_path / "sync", 20, seed=3, log=lambda m: None)
    V0 = len(WORDS)
    assert tokens == {"unitBase": V0, "unitCount": 20, "s0": V0 + 20, "s1": V0 + 21}
    assert json.loads((tmp_path / "sync/duet_tokens.json").read_text()) == tokens

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "sync"))
    ids = tok(f"hello [S0] {unit_token(3)}{unit_token(19)} cat [S1]", add_special_tokens=False)["input_ids"]
    assert ids == [2, V0 + 20, V0 + 3, V0 + 19, 5, V0 + 21]
    assert tok.convert_ids_to_tokens([V0, V0 + 19]) == [unit_token(0), unit_token(19)]

    new = AutoModelForCausalLM.from_pretrained(str(tmp_path / "sync"))
    assert new.config.vocab_size == V0 + 22
    assert bool(new.config.tie_word_embeddings) == tied
    for get in (lambda m: m.get_input_embeddings().weight, lambda m: m.get_output_embeddings().weight):
        w_old, w_new = get(old).detach(), get(new).detach()
        assert w_new.shape == (V0 + 22, 32)
        torch.testing.assert_close(w_new[:V0], w_old)  # existing rows untouched
        added = w_new[V0:]
        mean = w_old.mean(0)
        assert (added - mean).abs().max() < 0.05 * w_old.std() + 1e-6  # mean + small noise
        assert (added - mean).abs().max() > 0  # ... but not all identical
    if tied:
        assert new.lm_head.weight.data_ptr() == new.model.embed_tokens.weight.data_ptr()
    else:  # the lm_head rows start at the lm_head's own mean, not the embedding's
        lm_mean = old.lm_head.weight.detach().mean(0)
        assert (new.lm_head.weight.detach()[V0:] - lm_mean).abs().max() < 0.05 * old.lm_head.weight.std()

    # deterministic for a seed
    extend_vocab(tmp_path / "text", tmp_path / "again", 20, seed=3, log=lambda m: None)
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "again"))
    torch.testing.assert_close(again.get_input_embeddings().weight, new.get_input_embeddings().weight)

    # refuses to extend twice
    with pytest.raises(ValueError, match="already"):
        extend_vocab(tmp_path / "sync", tmp_path / "twice", 20, log=lambda m: None)


def test_extended_checkpoint_exports(tmp_path):
    """The tokens written by extend-vocab flow into the manifest, and the export verifies."""
    from duet_export.export import export_llama, verify_export

    make_text_checkpoint(tmp_path / "text", tied=False)
    extend_vocab(tmp_path / "text", tmp_path / "sync", 8, log=lambda m: None)
    manifest = export_llama(tmp_path / "sync", tmp_path / "onnx", {"unitBase": None, "unitCount": None, "s0": None,
                                                                  "s1": None}, progress=False)
    m = json.loads(manifest.read_text())
    assert m["tokens"] == {"unitBase": 12, "unitCount": 8, "s0": 20, "s1": 21}
    assert m["architecture"]["vocabSize"] == 22
    assert max(verify_export(tmp_path / "sync", manifest).values()) < 1e-4
