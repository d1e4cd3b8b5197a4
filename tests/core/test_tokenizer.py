"""The byte-level BPE tokenizer: round trip, chat template in plain transformers, pad != EOS."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import synthetic_text
from lmforge.data.tokenizer import EOS, PAD, token_byte_lengths, train_bpe


@pytest.fixture(scope="module")
def saved_tokenizer(tmp_path_factory) -> Path:
    tok = train_bpe(synthetic_text(300).split("\n\n") + ["What is the capital of France? Paris."], vocab_size=400)
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(path)
    return path


def test_round_trip_any_unicode(saved_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(saved_tokenizer)
    for text in ("The cat sat on the mat.", "naïve café — 東京 🙂\n\ttabs  and  spaces", "x" * 50):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        lengths = token_byte_lengths(tok)
        assert sum(lengths[i] for i in ids) == len(text.encode("utf-8"))


def test_special_tokens_and_chat_template(saved_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(saved_tokenizer)
    assert tok.pad_token == PAD and tok.eos_token == EOS and tok.pad_token_id != tok.eos_token_id
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye?"},
            {"role": "assistant", "content": "Bye."}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == ("<|system|>\nBe brief.<|end|>\n<|user|>\nHi?<|end|>\n<|assistant|>\nHello.<|end|>\n"
                    "<|user|>\nBye?<|end|>\n<|assistant|>\nBye.<|end|>\n")
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|user|>\nHi?<|end|>\n<|assistant|>\n")
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(marked) == "Hello.<|end|>Bye.<|end|>"  # both assistant turns, each with its EOS
    role_ids = {tok.convert_tokens_to_ids(t) for t in ("<|user|>", "<|assistant|>", "<|system|>")}
    assert len(role_ids) == 3 and all(i not in (None, tok.unk_token_id) for i in role_ids)


def test_cli_trains_a_tokenizer_that_transformers_loads(tmp_path: Path, corpus_file: Path, capsys) -> None:
    from transformers import AutoTokenizer

    from lmforge.cli.main import main

    out = tmp_path / "tok"
    with pytest.raises(SystemExit) as exc:
        main(["tokenizer", "train", str(corpus_file), "--out", str(out), "--vocab-size", "300"])
    assert exc.value.code in (0, None) and "saved 300-token tokenizer" in capsys.readouterr().out
    assert not (tmp_path / "tok.tmp").exists()
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.pad_token != tok.eos_token and tok.pad_token == PAD and tok.eos_token == EOS
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "hi" in text
