"""The DPO stage end to end on a tiny model: learning, the reference cache, its fingerprint, LoRA's reference."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from lmforge.errors import InputError
from lmforge.stages import dpo as dpo_stage
from lmforge.stages.dpo import REFERENCE_FILE, DPOConfig, dpo


def _cfg(tmp: Path, lm: Path, files, name: str = "a", **over) -> DPOConfig:
    data = {"run": {"root": str(tmp / "runs"), "name": name}, "model": {"path": str(lm)},
            "data": {"train": [str(files[0])], "eval": [str(files[1])], "max_length": 64},
            "train": {"steps": 16, "batch_size": 4, "lr": 1e-3, "log_every": 4}}
    for key, value in over.items():
        section, field = key.split("__")
        data.setdefault(section, {})[field] = value
    return DPOConfig.model_validate(data)


def test_dpo_learns_the_preference_on_held_out_prompts(tmp_path, tiny_lm, pref_files):
    s = dpo(_cfg(tmp_path, tiny_lm, pref_files))
    assert s["heldout_loss_after"] < s["heldout_loss_before"] - 0.1
    assert s["heldout_loss_before"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference: -log σ(0)
    assert s["heldout_logp_accuracy_after"] > s["heldout_logp_accuracy_before"]
    assert s["heldout_accuracy_after"] >= 0.9
    assert (Path(s["final"]) / "config.json").is_file()
    lines = [json.loads(x) for x in (tmp_path / "runs/a/metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x.get("split") == "train"]
    assert {"reward_chosen", "reward_rejected", "reward_margin", "accuracy"} <= set(train[-1])


@pytest.mark.parametrize("loss", ["orpo", "simpo", "ipo"])
def test_other_losses_run_and_reference_free_ones_skip_the_cache(tmp_path, tiny_lm, pref_files, loss):
    s = dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=8, loss__name=loss))
    assert s["heldout_loss_after"] < s["heldout_loss_before"]
    assert (tmp_path / "runs/a" / REFERENCE_FILE).is_file() == (loss == "ipo")


def test_lora_dpo_saves_an_adapter_and_holds_out_a_fraction(tmp_path, tiny_lm, pref_files):
    cfg = _cfg(tmp_path, tiny_lm, pref_files, train__steps=8, train__lr=5e-3, peft__method="lora", peft__r=4)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"eval": [], "eval_fraction": 0.2})})
    s = dpo(cfg)
    assert s["adapter"] and (Path(s["final"]) / "adapter_config.json").is_file()
    assert s["heldout_pairs"] > 0 and s["heldout_pairs"] + s["train_pairs"] == 60  # 36 records -> 60 pairs
    assert s["heldout_loss_after"] < s["heldout_loss_before"]


def test_kto_is_refused_with_a_clear_error(tmp_path, tiny_lm, pref_files):
    with pytest.raises(ValueError, match="kto"):
        _cfg(tmp_path, tiny_lm, pref_files, loss__name="kto")


def test_reference_is_computed_once_and_reused_on_resume(tmp_path, tiny_lm, pref_files, monkeypatch):
    calls = []
    real = dpo_stage.compute_reference
    monkeypatch.setattr(dpo_stage, "compute_reference", lambda *a, **k: calls.append(1) or real(*a, **k))
    dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=4))
    assert len(calls) == 2  # train and held-out rows, once each
    cached = torch.load(tmp_path / "runs/a" / REFERENCE_FILE, weights_only=True)
    s = dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=8), resume=True)
    assert len(calls) == 2 and s["steps"] == 8
    again = torch.load(tmp_path / "runs/a" / REFERENCE_FILE, weights_only=True)
    assert torch.equal(cached["train"], again["train"])


def test_a_cache_from_another_tokenizer_is_a_one_line_error(tmp_path, tiny_lm, pref_files):
    dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=2))
    path = tmp_path / "runs/a" / REFERENCE_FILE
    cached = torch.load(path, weights_only=True)
    cached["fingerprint"]["vocab"] = "0" * 64
    torch.save(cached, path)
    with pytest.raises(InputError, match="another vocab"):
        dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=4), resume=True)
    proc = run_cli(["dpo", f"model.path={tiny_lm}", f"run.root={tmp_path / 'runs'}", "run.name=a",
                    f"data.train=[{pref_files[0]}]", f"data.eval=[{pref_files[1]}]", "data.max_length=64",
                    "train.steps=4", "--resume"], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and REFERENCE_FILE in errors[0] and "vocab" in errors[0]


def test_lora_reference_is_the_base_model(tiny_lm, pref_files):
    from collections import Counter

    from lmforge.data.dpo_data import encode_pairs, to_pairs
    from lmforge.data.preference import read_feedback
    from lmforge.models.load import load_causal_lm, load_tokenizer
    from lmforge.models.peft import PeftSection, apply_peft

    tok = load_tokenizer(str(tiny_lm))
    _, rows = encode_pairs(tok, to_pairs(list(read_feedback(pref_files[1])), Counter()), 64, Counter())
    base = load_causal_lm(str(tiny_lm))
    want = dpo_stage.compute_reference(base, rows, tok.pad_token_id, 4, None, adapter=False)
    model = apply_peft(load_causal_lm(str(tiny_lm)), PeftSection(method="lora", r=4), sorted(tok.all_special_ids))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))  # a trained adapter (LoRA B starts at zero)
    got = dpo_stage.compute_reference(model, rows, tok.pad_token_id, 4, None, adapter=True)
    moved = dpo_stage.compute_reference(model, rows, tok.pad_token_id, 4, None, adapter=False)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    assert (moved - want).abs().max() > 1e-2  # the adapter does change the model when it is on


def test_resume_continues_exactly(tmp_path, tiny_lm, pref_files):
    whole = dpo(_cfg(tmp_path, tiny_lm, pref_files, "whole", train__steps=8))
    import shutil

    cfg = _cfg(tmp_path, tiny_lm, pref_files, "split", train__steps=8, train__save_every=4)
    dpo(cfg)
    shutil.rmtree(tmp_path / "runs/split/checkpoints/step-8")  # as if stopped after step 4's checkpoint
    assert [p.name for p in (tmp_path / "runs/split/checkpoints").iterdir()] == ["step-4"]
    split = dpo(cfg, resume=True)
    assert split["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-4)
    assert split["heldout_loss_after"] == pytest.approx(whole["heldout_loss_after"], rel=1e-4)


def test_bad_records_name_their_file_and_line(tmp_path, tiny_lm, pref_files):
    from .conftest import write_jsonl

    same = write_jsonl(tmp_path / "same.jsonl", [{"prompt": "p", "chosen": "x", "rejected": "y"},
                                                 {"prompt": "q", "chosen": "z", "rejected": "z"}])
    with pytest.raises(InputError, match="identical") as e:
        dpo(_cfg(tmp_path, tiny_lm, (same, pref_files[1])))
    assert e.value.line == 2 and e.value.file.endswith("same.jsonl")
    s = dpo(_cfg(tmp_path, tiny_lm, (same, pref_files[1]), "skip", data__on_invalid="skip", train__steps=1))
    assert s["train_pairs"] == 1 and s["data"]["skipped invalid: chosen and rejected are identical"] == 1
    binary = write_jsonl(tmp_path / "bin.jsonl", [{"prompt": "p", "response": "x", "label": True}])
    with pytest.raises(InputError, match="binary"):
        dpo(_cfg(tmp_path, tiny_lm, (binary, pref_files[1]), "b"))
    assert not (tmp_path / "runs/b").exists()  # nothing half-written


def test_a_model_retrained_in_place_invalidates_the_cache(tmp_path, tiny_lm, pref_files):
    import os
    import shutil

    lm = shutil.copytree(tiny_lm, tmp_path / "lm")
    dpo(_cfg(tmp_path, lm, pref_files, train__steps=2))
    weights = next(lm.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with pytest.raises(InputError, match="another weights"):
        dpo(_cfg(tmp_path, lm, pref_files, train__steps=4), resume=True)


def test_shared_prompt_rows_train_like_padded_rows(tmp_path, tiny_lm, pref_files):
    shared = dpo(_cfg(tmp_path, tiny_lm, pref_files, "shared", train__steps=6))
    padded = dpo(_cfg(tmp_path, tiny_lm, pref_files, "padded", train__steps=6, data__share_prompt=False))
    assert shared["train_loss"] == pytest.approx(padded["train_loss"], rel=1e-3)
    assert shared["heldout_loss_after"] == pytest.approx(padded["heldout_loss_after"], rel=1e-3)
    assert shared["tokens"] < padded["tokens"]  # the prompt forwarded once per pair
