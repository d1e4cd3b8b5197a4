"""Finding the repeated transformer blocks of a Hugging Face model (the FSDP units, the layers LoRA adapts, the
layers freezing counts): one finder for every stage."""
from __future__ import annotations

import torch

# where the blocks sit below ``model.<base_model_prefix>``: llama/qwen/mistral ``layers``, BERT-style
# ``encoder.layer``, GPT-2 ``h``, DistilBERT ``transformer.layer``
_PATHS = ("layers", "encoder.layer", "h", "transformer.layer", "layer")


def _named_list(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    base = getattr(model, getattr(model, "base_model_prefix", ""), model)
    for path in _PATHS:
        node = base
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, torch.nn.ModuleList):
            return node
    return None


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's decoder/encoder blocks, bottom first; ``[]`` when none are found.

    The known attribute paths are tried first (they also find a one-block model); wrapped models (DDP, PEFT,
    FSDP) and unknown architectures fall back to the first ``ModuleList`` of more than one module in
    registration order, which for every HF architecture here is the block list (embeddings are not lists).
    """
    named = _named_list(model)
    if named is not None:
        return list(named)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            return list(module)
    return []
