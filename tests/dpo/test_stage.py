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
    assert s["heldout_accuracy_before"] == pytest.approx(0.5)  # every implicit reward 0: each pair a tie, half
    assert s["heldout_logp_accuracy_after"] > s["heldout_logp_accuracy_before"]
    assert s["heldout_accuracy_after"] >= 0.9
    assert (Path(s["final"]) / "config.json").is_file()
    lines = [json.loads(x) for x in (tmp_path / "runs/a/metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x.get("split") == "train"]
    assert {"reward_chosen", "reward_rejected", "reward_margin", "accuracy"} <= set(train[-1])


@pytest.mark.parametrize("loss", ["orpo", "simpo", "ipo", "rpo"])
def test_other_losses_run_and_reference_free_ones_skip_the_cache(tmp_path, tiny_lm, pref_files, loss):
    s = dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=8, loss__name=loss))
    assert s["heldout_loss_after"] < s["heldout_loss_before"]
    assert (tmp_path / "runs/a" / REFERENCE_FILE).is_file() == (loss in ("ipo", "rpo"))


def test_lora_dpo_saves_an_adapter_and_holds_out_a_fraction(tmp_path, tiny_lm, pref_files):
    cfg = _cfg(tmp_path, tiny_lm, pref_files, train__steps=8, train__lr=5e-3, peft__method="lora", peft__r=4)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"eval": [], "eval_fraction": 0.2})})
    s = dpo(cfg)
    assert s["adapter"] and (Path(s["final"]) / "adapter_config.json").is_file()
    assert s["heldout_pairs"] > 0 and s["heldout_pairs"] + s["train_pairs"] == 60  # 36 records -> 60 pairs
    assert s["heldout_loss_after"] < s["heldout_loss_before"]


def _count_reference_rows(monkeypatch) -> list[int]:
    """Rows the reference forward is run on, per call."""
    calls: list[int] = []
    real = dpo_stage.compute_reference
    monkeypatch.setattr(dpo_stage, "compute_reference", lambda model, rows, *a, **k: calls.append(len(rows)) or
                        real(model, rows, *a, **k))
    return calls


def _drawn(monkeypatch) -> set[int]:
    """Training rows the sampler actually hands out."""
    from lmforge.data.dpo_data import PairBatches

    seen: set[int] = set()
    real = PairBatches.next_batch

    def record(self):
        batch = real(self)
        seen.update(batch["index"].tolist())
        return batch
    monkeypatch.setattr(PairBatches, "next_batch", record)
    return seen


def test_reference_covers_only_the_rows_used_and_resume_adds_the_missing(tmp_path, tiny_lm, monkeypatch):
    from .conftest import records, write_jsonl

    files = (write_jsonl(tmp_path / "big.jsonl", records(150, seed=3)),
             write_jsonl(tmp_path / "eval.jsonl", records(5, seed=1, rankings=False)))
    calls, drawn = _count_reference_rows(monkeypatch), _drawn(monkeypatch)
    s = dpo(_cfg(tmp_path, tiny_lm, files, train__steps=3))
    assert s["train_pairs"] == 250  # 100 pairs + 50 rankings x 3
    # exactly the distinct rows 3 steps x 4 pairs drew, and the 5 held-out pairs: not the other ~240
    assert calls == [len(drawn) + 5] and 5 < len(drawn) + 5 <= 17
    assert s["reference_rows_computed"] == len(drawn) + 5 and s["reference_rows_reused"] == 0
    before = set(drawn)
    s = dpo(_cfg(tmp_path, tiny_lm, files, train__steps=6), resume=True)  # a longer run: only the new rows
    new = drawn - before
    assert s["steps"] == 6 and new and calls == [len(before) + 5, len(new)]
    assert s["reference_rows_computed"] == len(new) and s["reference_rows_reused"] == len(drawn) + 5 - len(new)
    cached = torch.load(tmp_path / "runs/a" / REFERENCE_FILE, weights_only=True)
    assert len(cached["keys"]) == len(drawn) + 5 == cached["values"].shape[0]
    s = dpo(_cfg(tmp_path, tiny_lm, files, train__steps=6), resume=True)  # repeated: nothing to compute
    assert calls[2:] == [] and s["reference_rows_computed"] == 0


def test_cached_values_are_the_ones_a_fresh_run_computes(tmp_path, tiny_lm, pref_files):
    dpo(_cfg(tmp_path, tiny_lm, pref_files, "short", train__steps=2))
    dpo(_cfg(tmp_path, tiny_lm, pref_files, "short", train__steps=8), resume=True)
    dpo(_cfg(tmp_path, tiny_lm, pref_files, "fresh", train__steps=8))
    short, fresh = (torch.load(tmp_path / f"runs/{n}" / REFERENCE_FILE, weights_only=True) for n in ("short", "fresh"))
    a = dict(zip(short["keys"], short["values"], strict=True))
    assert set(a) == set(fresh["keys"])
    torch.testing.assert_close(torch.stack([a[k] for k in fresh["keys"]]), fresh["values"], rtol=1e-6, atol=1e-6)


def test_a_cache_from_another_tokenizer_is_recomputed_with_a_notice(tmp_path, tiny_lm, pref_files, monkeypatch,
                                                                    capfd):
    dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=2))
    path = tmp_path / "runs/a" / REFERENCE_FILE
    cached = torch.load(path, weights_only=True)
    cached["fingerprint"]["vocab"] = "0" * 64
    cached["values"] += 5.0  # wrong values a reuse would train on
    torch.save(cached, path)
    calls = _count_reference_rows(monkeypatch)
    capfd.readouterr()
    s = dpo(_cfg(tmp_path, tiny_lm, pref_files, train__steps=4), resume=True)
    notices = [x for x in capfd.readouterr().err.splitlines() if x.startswith("notice:")]
    assert len(notices) == 1 and REFERENCE_FILE in notices[0] and "vocab" in notices[0]
    assert s["reference_rows_reused"] == 0 and calls == [s["reference_rows_computed"]]
    again = torch.load(path, weights_only=True)
    assert again["fingerprint"]["vocab"] != "0" * 64 and again["values"].max() < 0  # log-probs, not the +5 ones
    again["fingerprint"]["vocab"] = "0" * 64
    torch.save(again, path)
    proc = run_cli(["dpo", f"model.path={tiny_lm}", f"run.root={tmp_path / 'runs'}", "run.name=a",
                    f"data.train=[{pref_files[0]}]", f"data.eval=[{pref_files[1]}]", "data.max_length=64",
                    "train.steps=5", "train.batch_size=4", "--resume"], cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    notices = [x for x in proc.stderr.splitlines() if x.startswith("notice:")]
    assert len(notices) == 1 and "vocab" in notices[0]


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


def test_a_model_retrained_in_place_invalidates_the_cache(tmp_path, tiny_lm, pref_files, capfd):
    import os
    import shutil

    lm = shutil.copytree(tiny_lm, tmp_path / "lm")
    dpo(_cfg(tmp_path, lm, pref_files, train__steps=2))
    weights = next(lm.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    capfd.readouterr()
    s = dpo(_cfg(tmp_path, lm, pref_files, train__steps=4), resume=True)
    assert "another weights" in capfd.readouterr().err and s["reference_rows_reused"] == 0


def test_shared_prompt_rows_train_like_padded_rows(tmp_path, tiny_lm, pref_files):
    shared = dpo(_cfg(tmp_path, tiny_lm, pref_files, "shared", train__steps=6))
    padded = dpo(_cfg(tmp_path, tiny_lm, pref_files, "padded", train__steps=6, data__share_prompt=False))
    assert shared["train_loss"] == pytest.approx(padded["train_loss"], rel=1e-3)
    assert shared["heldout_loss_after"] == pytest.approx(padded["heldout_loss_after"], rel=1e-3)
    assert shared["tokens"] < padded["tokens"]  # the prompt forwarded once per pair


def test_bad_pairs_are_counted_in_the_data_report(tmp_path, tiny_lm, pref_files):
    from .conftest import write_jsonl

    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "p", "chosen": "sure.", "rejected": "sure."},  # identical: invalid, skipped by the rule
        {"prompt": "p", "chosen": "", "rejected": "no."},  # empty response: dropped
        {"prompt": "cats " * 200, "chosen": "sure here.", "rejected": "no."},  # prompt cut from the left
        {"prompt": "p", "chosen": "sure " * 200, "rejected": "no."},  # the response alone is too long: dropped
        {"prompt": "q", "chosen": "sure here.", "rejected": "no wrong."}])
    s = dpo(_cfg(tmp_path, tiny_lm, (bad, pref_files[1]), data__on_invalid="skip", train__steps=1))
    report = json.loads((tmp_path / "runs/a/data_report.json").read_text())
    assert report == s["data"]
    assert report["skipped invalid: chosen and rejected are identical"] == 1
    assert report["dropped: empty response"] == 1
    assert report["prompt truncated from the left"] == 1
    assert report["dropped: response does not fit data.max_length"] == 1
    assert report["train_pairs"] == 2 == s["train_pairs"]
