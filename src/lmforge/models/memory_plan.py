"""Peak training memory of a model, from its config alone (no weights are read or allocated).

The estimate is a sum of parts, each from what the training step holds at its peak (the end of the forward
pass, when every activation saved for backward is alive together with the weights and optimizer state):

=====================  ======================================================================================
part                   bytes
=====================  ======================================================================================
weights                every parameter at the weight dtype; QLoRA: the block linears at 4.127 bits (NF4 with
                       double-quantised block scales, Dettmers et al. 2023, §3) and the rest at bf16
gradients              trainable parameters at the weight dtype (adapters: fp32)
optimizer              AdamW's two moments per trainable parameter, at the gradient dtype
activations            what autograd saves for backward, counted by running the model's own forward on fake
                       tensors (``torch._subclasses.FakeTensorMode``) with the planned batch and sequence
                       length, so any architecture ``transformers`` builds is counted as it really runs
loss                   the cross-entropy's fp32 log-softmax (saved) with its gradient and the logits' gradient
                       at the start of backward, ``3 x B x T x V x 4``
backward               one block's gradient buffers, alive while its saved activations still are: the
                       activations / number of blocks (measured: the peak grows 1.4x the saved activations
                       per token on a 2-block model, 1 + 1/2); with adapters that train the chat special
                       tokens' embedding rows, the full embedding (and tied output) weight's gradient
workspace              what the first step allocates beyond tensors (allocator arenas, autograd engine and
                       OpenMP threads): 0.09 GB, measured on CPU with ``bench/plan_memory.py``
runtime                the process itself: ~0.4 GB for Python + torch on a CPU, ~0.5 GB more for the CUDA
                       context on a GPU (a fixed allowance, not measured per model)
=====================  ======================================================================================

The peak is everything else plus the larger of (activations + loss + backward) and the gradients: the trainer
sets gradients to None after each step, and during backward they grow as the saved activations are freed.

Data parallelism (``ddp``) keeps a full copy per GPU plus a gradient bucket copy; ``fsdp`` divides weights,
gradients and optimizer state by the number of GPUs and adds one gathered block. Activations are per GPU.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .blocks import transformer_blocks

GB = 1024**3
NF4_BITS = 4.127  # 4-bit NF4 + fp8 block scales per 64 + fp32 scales per 256 blocks (QLoRA §3, double quant)
METHODS = ("full", "lora", "dora", "qlora")
RUNTIME_CPU_GB, CUDA_CONTEXT_GB, WORKSPACE_GB = 0.4, 0.5, 0.09
FORWARD_PARTS = ("activations", "loss", "backward")  # alive at the start of backward, before any gradient
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def load_config(source: str):
    """A ``transformers`` config from a config.json file, a model folder, a GGUF file or a hub id."""
    from transformers import AutoConfig, PretrainedConfig

    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
            return AutoConfig.for_model(**data) if "model_type" in data else PretrainedConfig(**data)
        except (ValueError, KeyError) as e:
            raise InputError(f"not a model config.json ({e})", file=path) from None
    from .load import resolve

    where, extra = resolve(source)
    try:
        return AutoConfig.from_pretrained(where, **extra)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the model's config ({e})", file=source) from None


@dataclass
class Shape:
    params: int  # all parameters
    block_linear: int  # parameters of the transformer blocks' linear layers (what QLoRA quantises)
    adapter: int  # LoRA parameters at the planned rank on the default targets (0 for full fine-tuning)


@dataclass
class Plan:
    model: str
    method: str
    batch: int
    seq: int
    gpus: int
    device: str
    dtype: str
    params: int
    trainable: int
    parts_gb: dict[str, float] = field(default_factory=dict)

    @property
    def total_gb(self) -> float:
        """The peak: gradients are set to None after each step and grow during backward as the saved
        activations are freed, so they are never all alive together with the forward's activations; the
        peak is the larger of the two, on top of everything else."""
        forward = sum(self.parts_gb.get(k, 0.0) for k in FORWARD_PARTS)
        rest = sum(v for k, v in self.parts_gb.items() if k not in FORWARD_PARTS and k != "gradients")
        return round(rest + max(forward, self.parts_gb.get("gradients", 0.0)), 3)

    @property
    def training_gb(self) -> float:
        """Everything but the fixed runtime allowance: what a run adds to the process it starts in."""
        return round(self.total_gb - self.parts_gb.get("runtime", 0.0), 3)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_gb": self.total_gb, "training_gb": self.training_gb}


def _fake_model(config, dtype: torch.dtype, method: str, r: int, special_tokens: bool):
    """The model built on fake tensors (call inside ``FakeTensorMode``), with the adapter when planned."""
    from transformers import AutoModelForCausalLM

    config = type(config).from_dict(config.to_dict())
    config._attn_implementation = "sdpa"
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF source's: the weights would be plain tensors after load
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if method != "full":
        from unittest import mock

        from peft import LoraConfig, get_peft_model

        from .peft import default_target_modules

        # peft moves each new adapter to its base layer's device with Module.to, which swaps tensors, and fake
        # tensors refuse a swap; they are all on one fake device already, so the moves are skipped
        with mock.patch.object(torch.nn.Module, "to", lambda self, *a, **k: self):
            model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, use_dora=method == "dora",
                                                     target_modules=default_target_modules(model),
                                                     trainable_token_indices=[0] if special_tokens else None))
    return model


def _trainable_token_weights(model) -> int:
    """Elements of the full weights behind peft's trainable token rows (``peft.train_special_tokens``).

    peft rebuilds each such embedding / tied output weight with the trained rows copied in at every forward
    (saved for backward, so counted in the activations) and backward produces that full weight's gradient
    before keeping the rows: one weight-sized transient per wrapped module."""
    return sum(m.token_adapter.base_layer.weight.numel() if hasattr(m, "token_adapter") else 0
               for m in model.modules() if type(m).__name__ == "TrainableTokensWrapper")


def _shape(model, method: str) -> Shape:
    params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    blocks = transformer_blocks(model)
    block_linear = sum(m.weight.numel() for b in blocks for name, m in b.named_modules()
                       if isinstance(m, torch.nn.Linear) and "lora_" not in name)
    adapter = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) if method != "full" else 0
    return Shape(params=params, block_linear=block_linear, adapter=adapter)


def _saved_activation_bytes(model, batch: int, seq: int) -> int:
    """Bytes autograd saves during one forward + cross-entropy of ``batch x seq`` tokens (inside the
    ``FakeTensorMode`` the model was built in: shapes, dtypes and what autograd saves are real, nothing is
    allocated, and data-dependent checks in ``transformers`` see a tracing tensor and skip themselves)."""
    ids = torch.zeros(batch, seq, dtype=torch.long)
    sizes: dict[int, int] = {}
    params = {p.untyped_storage()._cdata for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        sizes[storage._cdata] = storage.nbytes()  # views of one tensor share a storage: counted once
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(input_ids=ids, use_cache=False).logits
        torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten(), reduction="sum")
    return sum(n for k, n in sizes.items() if k not in params)


def plan(source: str, method: str = "full", batch: int = 1, seq: int = 512, gpus: int | None = None,
         dtype: str | None = None, r: int = 16, distributed: str = "ddp", special_tokens: bool = True) -> Plan:
    """Estimate peak training memory per device (see the module docstring for each part)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r} (choose from {', '.join(METHODS)})", field="method")
    config = load_config(source)
    device = "cpu" if gpus == 0 or (gpus is None and not torch.cuda.is_available()) else "gpu"
    n_gpus = max(1, gpus or (torch.cuda.device_count() if device == "gpu" else 1))
    dtype = dtype or ("float32" if device == "cpu" else "bfloat16")
    if method == "qlora":
        dtype = "bfloat16"  # the compute dtype of the 4-bit base
    if dtype not in _BYTES:
        raise InputError(f"unknown dtype {dtype!r} (choose from {', '.join(_BYTES)})", field="dtype")
    wbytes = _BYTES[dtype]
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=False):
        model = _fake_model(config, getattr(torch, dtype), method, r, special_tokens).train()
        shape = _shape(model, method)
        activations = _saved_activation_bytes(model, batch, seq)
        n_blocks = len(transformer_blocks(model))
        token_rows = _trainable_token_weights(model)
    vocab = int(getattr(config, "vocab_size", 0) or getattr(getattr(config, "text_config", None), "vocab_size", 0))

    if method == "qlora":
        weights = shape.block_linear * NF4_BITS / 8 + (shape.params - shape.block_linear) * 2
    else:
        weights = shape.params * wbytes
    trainable = shape.params if method == "full" else shape.adapter
    grad_bytes = wbytes if method == "full" else 4  # peft keeps adapters in fp32
    weights += 0 if method == "full" else shape.adapter * 4
    grads = trainable * grad_bytes
    optimizer = 2 * trainable * grad_bytes
    shards = n_gpus if distributed == "fsdp" else 1
    parts = {
        "weights": weights / shards,
        "gradients": grads / shards + (grads if distributed == "ddp" and n_gpus > 1 else 0),
        "optimizer": optimizer / shards,
        "activations": float(activations),
        "loss": 3.0 * batch * seq * vocab * 4,
        "backward": activations / max(1, n_blocks) + token_rows * wbytes,
        "workspace": WORKSPACE_GB * GB,
    }
    if distributed == "fsdp" and n_gpus > 1:
        parts["gathered block"] = weights / max(1, n_blocks)
    parts["runtime"] = (RUNTIME_CPU_GB + (CUDA_CONTEXT_GB if device == "gpu" else 0.0)) * GB
    return Plan(model=source, method=method, batch=batch, seq=seq, gpus=n_gpus if device == "gpu" else 0,
                device=device, dtype=dtype, params=shape.params, trainable=trainable,
                parts_gb={k: round(v / GB, 3) for k, v in parts.items()})
