"""Parameter-efficient fine-tuning through ``peft``: LoRA, DoRA and QLoRA, plus adapter save / merge.

- LoRA (Hu et al. 2021): W + (alpha/r) B A on chosen linear layers, B initialised to zero.
- DoRA (Liu et al. 2024): LoRA on the direction of W with a learned magnitude (``use_dora=True``).
- QLoRA (Dettmers et al. 2023): the frozen base in 4-bit NF4 with double quantisation (bitsandbytes, CUDA
  only), LoRA on *all* linear layers of the blocks, which is also our default target for LoRA/DoRA.

Target modules are found per architecture (all linear projections of the transformer blocks; never the LM
head) and can be overridden. Chat special tokens whose embedding rows the base never trained (e.g. ``<|end|>``
of a model pre-trained here) can be made trainable without training the whole embedding, through peft's
``trainable_token_indices`` (tied input/output embeddings included).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ..config import Section
from ..errors import InputError

# the linear projections of each block, by ``config.model_type`` (QLoRA §4: adapt every linear layer)
TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}
BASE_FILE = "lmforge_base.json"  # in an adapter folder: the base model spec, for `lmforge export`


class PeftSection(Section):
    """The adapter settings of every stage that tunes a model (SFT ``peft``, reward models ``model.lora``, RL)."""
    method: Literal["none", "lora", "dora", "qlora"] = Field(
        "none", description="none: full fine-tuning; lora / dora: adapters; qlora: LoRA on a 4-bit base (GPU)")
    r: int = Field(16, ge=1, description="adapter rank")
    alpha: float = Field(32.0, gt=0, description="scale alpha/r")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="module names to adapt; null: every linear "
                                             "projection of the blocks for this architecture")
    train_special_tokens: bool | None = Field(None, description="also train the embedding rows of the special "
                                              "tokens (role markers, end of turn); null: the stage's choice "
                                              "(SFT yes: a base never trained them; reward models no)")
    merge: bool = Field(False, description="SFT: also save a merged plain model beside the adapter (reward "
                        "models are always saved merged)")

    # reward models wrote ``lora.enabled: true|false`` before the stages shared this section
    renamed_keys = {"enabled": "method"}

    @classmethod
    def from_old_key(cls, data: dict, old: str, new: str, value) -> None:
        if old == "enabled":  # true: LoRA unless a method is named; false: no adapter
            data["method"] = (data.get("method", "none") if data.get("method", "none") != "none" else "lora") \
                if value else "none"
        else:
            super().from_old_key(data, old, new, value)

    @property
    def adapter(self) -> bool:
        return self.method != "none"


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Short names of the linear layers inside the transformer blocks (fallback for unknown architectures)."""
    from .blocks import transformer_blocks

    names = set()
    for block in transformer_blocks(model):
        for name, mod in block.named_modules():
            if isinstance(mod, torch.nn.Linear) or type(mod).__name__ in ("Conv1D", "Linear4bit", "Linear8bitLt"):
                names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def default_target_modules(model: torch.nn.Module) -> list[str]:
    """The adapter targets for ``model``'s architecture (see :data:`TARGETS`), else every block linear."""
    kind = getattr(model.config, "model_type", "")
    names = TARGETS.get(kind) or linear_module_names(model)
    if not names:
        raise InputError(f"no linear layers found to adapt in a {kind!r} model; set peft.target_modules",
                         field="peft.target_modules")
    return names


def check_qlora_available() -> None:
    """QLoRA needs a CUDA GPU and bitsandbytes; say so plainly otherwise."""
    if not torch.cuda.is_available():
        raise InputError("QLoRA quantises the base to 4 bits with bitsandbytes, which needs a CUDA GPU; none is "
                         "available here: use peft.method=lora (same adapter, full-precision base)",
                         field="peft.method")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise InputError("QLoRA needs the bitsandbytes package: pip install bitsandbytes",
                         field="peft.method") from None


def quantization_config():
    """NF4 with double quantisation and bf16 compute (the QLoRA paper's recipe)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def apply_peft(model, cfg: PeftSection, special_token_ids: list[int] | None = None, *,
               train_special_default: bool = True, task: str = "CAUSAL_LM", top_layers: int | None = None,
               modules_to_save: list[str] | None = None):
    """Wrap ``model`` with a LoRA/DoRA adapter: only adapter weights (and the special-token rows, and the
    ``modules_to_save``, e.g. a reward model's head) train. ``top_layers``: adapt only the last N blocks."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from .blocks import transformer_blocks

    targets = cfg.target_modules or default_target_modules(model)
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise InputError(f"target modules not in the model: {', '.join(missing)} (it has e.g. "
                         f"{', '.join(linear_module_names(model)[:8])})", field="peft.target_modules")
    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    train_special = cfg.train_special_tokens if cfg.train_special_tokens is not None else train_special_default
    tokens = sorted(set(special_token_ids or [])) if train_special else []
    layers = None
    if top_layers:
        n = len(transformer_blocks(model))
        layers = list(range(n - min(top_layers, n), n))
    config = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                        use_dora=cfg.method == "dora", task_type=task, bias="none",
                        trainable_token_indices=tokens or None, layers_to_transform=layers,
                        modules_to_save=modules_to_save)
    return get_peft_model(model, config)


def save_adapter(model, tokenizer, path: str | Path, base_spec: str) -> Path:
    """An adapter folder that ``peft.PeftModel.from_pretrained(base, path)`` loads, with the tokenizer and the
    base model's spec (a GGUF file or folder) for ``lmforge export``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    (path / BASE_FILE).write_text(json.dumps({"base_model": base_spec}, indent=1))
    from ..runs import default_file_modes

    default_file_modes(path)  # safetensors writes 0600
    return path


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def base_of(adapter: str | Path) -> str:
    """The base model an adapter was trained on (our record first, else peft's ``base_model_name_or_path``)."""
    adapter = Path(adapter)
    ours = adapter / BASE_FILE
    if ours.exists():
        return json.loads(ours.read_text())["base_model"]
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    if not cfg.get("base_model_name_or_path"):
        raise InputError("adapter does not name its base model; pass --base", file=adapter)
    return cfg["base_model_name_or_path"]


def load_merged(adapter: str | Path, base: str | None = None, dtype: str = "float32"):
    """Base model + adapter, merged into plain weights (``merge_and_unload``)."""
    from peft import PeftModel

    from .load import load_causal_lm

    model = load_causal_lm(base or base_of(adapter), dtype=dtype)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def load_any(name_or_path: str, dtype: str = "float32"):
    """``(model, tokenizer)`` of anything this project saves or reads: a Hugging Face folder, a .gguf file, a hub
    id, or an adapter folder (merged over its base; its tokenizer when saved beside it, else the base's)."""
    from .load import load_causal_lm, load_tokenizer

    if is_adapter(name_or_path):
        has_tokenizer = (Path(name_or_path) / "tokenizer_config.json").exists()
        tokenizer = load_tokenizer(str(name_or_path) if has_tokenizer else base_of(name_or_path))
        return load_merged(name_or_path, dtype=dtype), tokenizer
    return load_causal_lm(str(name_or_path), dtype), load_tokenizer(str(name_or_path))
