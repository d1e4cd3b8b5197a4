"""Keys renamed when the stages came to share one piece still load from files and the command line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.config import dump_config, load_config
from lmforge.errors import InputError
from lmforge.stages.rm import RMConfig


def _rm(tmp_path: Path, model_lines: str, *overrides: str) -> RMConfig:
    path = tmp_path / "rm.yaml"
    path.write_text(f"model:\n  path: some/model\n{model_lines}data:\n  train: [a.jsonl]\n")
    return load_config(RMConfig, path, list(overrides))


def test_forward_tokens_is_read_as_chunk_tokens(tmp_path: Path) -> None:
    assert _rm(tmp_path, "").model.chunk_tokens == 1024
    cfg = _rm(tmp_path, "  forward_tokens: 4096\n")
    assert cfg.model.chunk_tokens == 4096
    assert "forward_tokens" not in dump_config(cfg)  # saved under the one name
    assert _rm(tmp_path, "", "model.forward_tokens=null").model.chunk_tokens is None
    assert _rm(tmp_path, "", "model.chunk_tokens=2048").model.chunk_tokens == 2048


def test_reward_lora_enabled_is_read_as_method(tmp_path: Path) -> None:
    assert _rm(tmp_path, "").model.lora.method == "none"
    on = _rm(tmp_path, "  lora: {enabled: true, r: 4, alpha: 8}\n")
    assert on.model.lora.method == "lora" and on.model.lora.adapter and on.model.lora.alpha == 8.0
    assert "enabled" not in dump_config(on)
    assert _rm(tmp_path, "  lora: {enabled: true, method: dora}\n").model.lora.method == "dora"
    assert _rm(tmp_path, "  lora: {method: dora, enabled: false}\n").model.lora.method == "none"
    assert _rm(tmp_path, "", "model.lora.enabled=true").model.lora.method == "lora"
    assert _rm(tmp_path, "", "model.lora.method=dora").model.lora.method == "dora"  # the SFT spelling works too


def test_reward_lora_refuses_qlora(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="qlora is not available for reward models"):
        _rm(tmp_path, "  lora: {method: qlora}\n")


def test_sft_and_reward_models_share_the_section() -> None:
    from lmforge.models.peft import PeftSection
    from lmforge.models.reward import RewardModelSection
    from lmforge.stages.sft import SFTConfig

    assert SFTConfig.model_fields["peft"].annotation is PeftSection
    assert RewardModelSection.model_fields["lora"].annotation is PeftSection


def test_special_token_rows_train_by_the_stage_default() -> None:
    """null: SFT trains the special-token rows, reward models do not; an explicit value wins in both."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from lmforge.models.peft import PeftSection, apply_peft

    def trains_rows(cfg, default):
        torch.manual_seed(0)
        lm = AutoModelForCausalLM.from_config(LlamaConfig(
            vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=32))
        model = apply_peft(lm, cfg, [1, 2], train_special_default=default)
        return any("trainable_tokens" in n for n, p in model.named_parameters() if p.requires_grad)

    assert trains_rows(PeftSection(method="lora"), True)
    assert not trains_rows(PeftSection(method="lora"), False)
    assert trains_rows(PeftSection(method="lora", train_special_tokens=True), False)
    assert not trains_rows(PeftSection(method="lora", train_special_tokens=False), True)
