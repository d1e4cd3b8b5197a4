"""Adapters: automatic targets, training only adapter weights, reload with PeftModel, export to a plain model."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.errors import InputError
from lmforge.models.peft import (
    PeftSection,
    apply_peft,
    default_target_modules,
    save_adapter,
)

from .test_packing import tiny


def test_default_targets_per_architecture() -> None:
    assert default_target_modules(tiny("llama")) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                     "down_proj"]
    assert default_target_modules(tiny("gpt2")) == ["c_attn", "c_proj", "c_fc"]
    model = tiny("llama")
    model.config.model_type = "unknown-arch"  # falls back to every linear layer inside the blocks
    assert default_target_modules(model) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def test_unknown_target_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="target modules not in the model: qkv"):
        apply_peft(tiny("llama"), PeftSection(method="lora", target_modules=["qkv"]))


def test_qlora_on_cpu_says_what_to_do(monkeypatch) -> None:
    from lmforge.models.peft import check_qlora_available

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="needs a CUDA GPU.*peft.method=lora"):
        check_qlora_available()


def _train(model, steps: int = 5) -> list[float]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    x = torch.randint(1, 60, (2, 12), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(steps):
        out = model(input_ids=x, labels=x, use_cache=False)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    return losses


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_adapter_trains_reloads_and_exports(tmp_path: Path, method: str, tokenizer) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge.config import load_config
    from lmforge.stages.export import ExportConfig, export

    base = tiny("llama")
    base.save_pretrained(tmp_path / "base")
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = apply_peft(base, PeftSection(method=method, r=4, alpha=8), special_token_ids=[2, 3])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable)
    losses = _train(model)
    assert losses[-1] < losses[0]
    x = torch.randint(1, 60, (1, 10))
    model.eval()
    with torch.no_grad():
        want = model(input_ids=x).logits
    save_adapter(model, tokenizer, tmp_path / "adapter", str(tmp_path / "base"))  # export needs a tokenizer
    for n, p in model.base_model.model.named_parameters():  # the base weights themselves did not move
        key = n.replace(".base_layer", "")
        if key in before and "lora_" not in n and "trainable_tokens" not in n:
            assert torch.equal(p, before[key]), n

    fresh = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    reloaded = PeftModel.from_pretrained(fresh, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=x).logits, want, atol=1e-5, rtol=1e-5)

    cfg = load_config(ExportConfig, None, [f"source={tmp_path / 'adapter'}", f"out={tmp_path / 'merged'}"])
    summary = export(cfg)
    assert summary["kind"] == "merged adapter"
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=x).logits, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(InputError, match="exists"):
        export(cfg)


def test_frozen_embedding_keeps_all_but_special_rows(tmp_path: Path) -> None:
    from lmforge.models.freeze import freeze_embeddings, freeze_layers

    model = tiny("llama")
    model.config.tie_word_embeddings = True
    model.tie_weights()
    emb = model.get_input_embeddings().weight
    before = emb.detach().clone()
    freeze_embeddings(model, [2, 5])
    assert freeze_layers(model, 1) == 1
    assert not any(p.requires_grad for p in model.model.layers[0].parameters())
    _train(model, steps=3)
    changed = (emb.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [2, 5]
