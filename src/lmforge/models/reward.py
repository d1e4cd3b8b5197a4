"""Reward models: a backbone with a scalar head, saved as a plain ``AutoModelForSequenceClassification`` folder,
or (``model.head: generative``) a causal LM that answers a verdict question, saved as a plain
``AutoModelForCausalLM`` folder (:mod:`lmforge.models.verdict`).

Backbones:

- a causal LM (a folder, hub id or ``.gguf``; e.g. the world's pre-trained model or SmolLM2): becomes
  ``<Arch>ForSequenceClassification`` with a linear ``score`` head; ``transformers`` reads the score at the
  rightmost token that is not ``pad_token_id``, so a pad token is always set (EOS when the tokenizer has none)
  and inputs are right-padded with it;
- an encoder (BERT-style, e.g. all-MiniLM-L6-v2): ``BertForSequenceClassification`` (the [CLS] pooler plus a
  linear ``classifier``), prompt and response encoded as a sentence pair;
- an existing reward-model folder: trained further.

Heads: ``num_labels = 1 + len(criteria)``; label 0 (``reward``) is the overall reward, label 1+i the i-th
criterion's score. The names are ``config.id2label``, so the folder loads unchanged and a plain
``model(**inputs).logits[:, 0]`` is the reward.

Generative head: the verdict's log-odds ``log P(yes) - log P(no)`` at the last token of the verdict question
appended after the response; with ``verdict.mode: criteria`` one question per criterion and the reward their
weighted mean (``[reward, *criteria]`` columns, as a scalar model's heads); with ``verdict.mode: pairwise``
"which response is better, A or B?" (:mod:`lmforge.models.verdict_pairwise`).

Saved with the model (``config.json`` key ``reward`` and the same dict as ``reward.json``): the head kind, the
criteria, the reward mean and std on training responses (for RL to normalise), the input format and (generative)
the verdict template and answer token ids, so :func:`lmforge.data.reward_encode.encode` can rebuild exactly the
token sequences the model was trained on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Section
from ..errors import InputError
from .blocks import transformer_blocks
from .chunked import chunk_tokens_field
from .freeze import FreezeEmbeddings
from .load import DTYPES, load_causal_lm, load_tokenizer, resolve
from .peft import PeftSection
from .tokens import ensure_pad_token
from .verdict import Verdict, VerdictSection  # noqa: F401 (VerdictSection re-exported)

ENCODER_TYPES = {"bert", "roberta", "distilbert", "deberta", "deberta-v2", "electra", "xlm-roberta", "mpnet",
                 "albert", "modernbert"}
SIDECAR = "reward.json"


class RewardModelSection(Section):
    head: Literal["auto", "scalar", "generative"] = Field(
        "auto", description="scalar: a sequence-classification head read at the last token; generative: the "
        "causal LM's own verdict log-odds log P(yes) - log P(no) after a verdict question (causal backbones "
        "only); auto: scalar (the head a reward-model folder was saved with when training one further)")
    verdict: VerdictSection = Field(VerdictSection(), description="generative head: the question and answers")
    lm_loss_weight: float = Field(0.0, ge=0, description="generative head: weight of an auxiliary next-token "
                                  "loss on the response tokens (mean per token, per micro-batch)")
    likelihood_weight: float = Field(0.0, ge=0, description="generative head: β of the response's mean token "
                                     "log-probability under the model added to the verdict log-odds (SimPO's "
                                     "implicit reward; reads what the LM knows token by token); 0: off")
    path: str = Field(description="backbone: a causal-LM or encoder folder, a .gguf file, a hub id, or a "
                                  "reward-model folder to train further")
    kind: Literal["auto", "causal", "encoder"] = Field("auto", description="auto: by the config's model_type")
    lora: PeftSection = Field(PeftSection(), description="LoRA/DoRA adapters (the SFT peft section; "
                              "enabled: true is read as method: lora)")
    top_layers: int | None = Field(None, ge=1, description="train only the last N blocks (full weights or "
                                   "LoRA) plus the head; null: all blocks")
    freeze_embeddings: FreezeEmbeddings = Field(
        "none", description="full fine-tuning: freeze the input embedding (except_special: all but the special "
        "tokens' rows, which a pre-trained-only model never learned) to keep facts the backbone read in prose")
    dropout: float | None = Field(0.0, ge=0, lt=1, description="set every dropout of the backbone; null: keep "
                                  "the checkpoint's (reward models usually train without dropout)")
    max_length: int = Field(512, ge=16, description="tokens per (prompt, response); the prompt is cut from "
                            "the left, then the response from the right")
    dtype: Literal["float32", "bfloat16"] = "float32"
    input_format: Literal["auto", "chat", "transcript", "pair"] = Field(
        "auto", description="how (prompt, response) becomes text: chat (the tokenizer's chat template), "
        "transcript (User:/Assistant: lines + EOS), pair (encoders: [CLS] prompt [SEP] response [SEP]); auto: "
        "pair for encoders, else chat when the tokenizer has a template")
    chunk_tokens: int | None = chunk_tokens_field(1024, ge=16)  # 1024 measured fastest on CPU (1.3x over
    # 4096, BENCHMARKS.md); not measured on a GPU
    @model_validator(mode="after")
    def _no_qlora(self) -> RewardModelSection:
        if self.lora.method == "qlora":
            raise ValueError("model.lora.method=qlora is not available for reward models (the backbone is not "
                             "quantised); use lora or dora")
        return self

    renamed_keys = {"forward_tokens": "chunk_tokens"}  # the name until the stages shared one chunked forward

    share_prompt: bool = Field(True, description="causal backbones: forward each prompt once, packed with all "
                               "of its responses behind a block mask (the same scores and gradients; checked on "
                               "a few training groups at start, else the padded path); ignored for encoders")


@dataclass
class RewardMeta:
    """What is saved beside the weights so the model can be used (and RL can normalise)."""
    backbone: str
    kind: str  # causal | encoder
    input_format: str  # chat (the tokenizer's template) | transcript (User:/Assistant: lines) | pair (encoder)
    max_length: int
    criteria: list[str] = field(default_factory=list)
    reward_mean: float = 0.0
    reward_std: float = 1.0
    stats: dict[str, Any] = field(default_factory=dict)
    head: str = "scalar"  # scalar | generative
    verdict: dict[str, Any] | None = None  # generative: lmforge.models.verdict.Verdict.as_dict()

    @property
    def suffix_ids(self) -> list[int] | None:
        """The verdict question's ids appended after each response (None: scalar head)."""
        return list(self.verdict["suffix_ids"]) if self.verdict else None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------------------- backbones

def backbone_kind(path: str, kind: str = "auto") -> str:
    if kind != "auto":
        return kind
    where, extra = resolve(path)
    if extra.get("gguf_file"):
        return "causal"
    cfg_file = Path(where) / "config.json"
    if not cfg_file.exists():
        from transformers import AutoConfig

        model_type = AutoConfig.from_pretrained(where).model_type
    else:
        model_type = json.loads(cfg_file.read_text()).get("model_type", "")
    return "encoder" if model_type in ENCODER_TYPES else "causal"


def head_kind(cfg: RewardModelSection, kind: str) -> str:
    """``scalar`` or ``generative``; a generative head needs a causal backbone (an encoder has no verdict
    token) and a fresh LM or an lmforge generative reward model."""
    head = cfg.head
    if head == "auto":  # a reward-model folder trained further keeps its head
        side = Path(cfg.path) / SIDECAR
        head = json.loads(side.read_text()).get("head", "scalar") if side.is_file() else "scalar"
    if head == "generative" and kind == "encoder":
        raise InputError("model.head=generative needs a causal LM backbone (an encoder has no next-token "
                         "verdict); use model.head=scalar", field="model.head")
    return head


def _labels(criteria: list[str]) -> tuple[dict[int, str], dict[str, int]]:
    names = ["reward", *criteria]
    return dict(enumerate(names)), {n: i for i, n in enumerate(names)}


def _set_dropout(config, p: float) -> None:
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout", "hidden_dropout",
                "resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout", "classifier_dropout", "summary_first_dropout"):
        if hasattr(config, key) and isinstance(getattr(config, key), (int, float)):
            setattr(config, key, p)


def ensure_pad(tokenizer, config) -> None:
    """Right padding with a pad token; EOS doubles as pad when the tokenizer has none (the score is read at the
    rightmost non-pad token, so a trailing EOS is then skipped — consistently in training and scoring)."""
    config.pad_token_id = ensure_pad_token(tokenizer)
    tokenizer.padding_side = "right"


def create_generative_model(cfg: RewardModelSection, verdict: Verdict):
    """(causal LM, tokenizer, "causal") whose ``config.reward`` names the verdict, so every forward reads it."""
    tokenizer = load_tokenizer(cfg.path)
    model = load_causal_lm(cfg.path, dtype=cfg.dtype)
    if cfg.dropout is not None:  # the modules were built with the checkpoint's rates: set them too
        import torch

        _set_dropout(model.config, cfg.dropout)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = cfg.dropout
            elif isinstance(getattr(m, "attention_dropout", None), float):
                m.attention_dropout = cfg.dropout
    model.config.reward = {"head": "generative", "verdict": verdict.as_dict()}
    ensure_pad(tokenizer, model.config)
    return model, tokenizer, "causal"


def create_reward_model(cfg: RewardModelSection, criteria: list[str], verdict: Verdict | None = None):
    """(model, tokenizer, kind) with ``1 + len(criteria)`` heads on the backbone ``cfg.path``, or with
    ``verdict`` the causal LM of a generative reward model."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if verdict is not None:
        return create_generative_model(cfg, verdict)
    kind = backbone_kind(cfg.path, cfg.kind)
    tokenizer = load_tokenizer(cfg.path)
    id2label, label2id = _labels(criteria)
    where, extra = resolve(cfg.path)
    config = AutoConfig.from_pretrained(where, **extra)
    is_reward_model = "ForSequenceClassification" in str(getattr(config, "architectures", None))
    if kind == "encoder" or is_reward_model:  # heads are re-initialised when their number differs
        if cfg.dropout is not None:
            _set_dropout(config, cfg.dropout)
        config.num_labels, config.id2label, config.label2id = len(id2label), id2label, label2id
        config.problem_type = "regression"
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                where, config=config, dtype=DTYPES[cfg.dtype], ignore_mismatched_sizes=True, **extra)
        except OSError as e:
            raise InputError(f"cannot load model ({e})", file=cfg.path) from None
    else:
        lm = load_causal_lm(cfg.path, dtype=cfg.dtype)
        config = lm.config
        if cfg.dropout is not None:
            _set_dropout(config, cfg.dropout)
        config.num_labels, config.id2label, config.label2id = len(id2label), id2label, label2id
        config.problem_type = "regression"
        config.architectures = None
        model = AutoModelForSequenceClassification.from_config(config, dtype=DTYPES[cfg.dtype])
        base = getattr(model, model.base_model_prefix)
        missing, _ = base.load_state_dict(getattr(lm, lm.base_model_prefix).state_dict(), strict=False)
        if missing:
            raise InputError(f"backbone weights missing for {missing[:3]}", file=cfg.path)
        del lm
    ensure_pad(tokenizer, model.config)
    return model, tokenizer, kind


def head_module_names(model) -> list[str]:
    return [n for n in ("score", "classifier") if hasattr(model, n)]


def prepare_trainable(model, cfg: RewardModelSection, tokenizer=None):
    """Full fine-tuning (optionally of the last ``top_layers`` blocks) or LoRA adapters; the head always trains."""
    from .freeze import apply_freeze, train_top_blocks
    from .peft import apply_peft

    if cfg.top_layers is not None and not transformer_blocks(model):
        raise InputError("model.top_layers: cannot find the backbone's blocks", field="model.top_layers")
    base = getattr(model, model.base_model_prefix)
    heads = head_module_names(model)
    generative = (getattr(model.config, "reward", None) or {}).get("head") == "generative"
    if cfg.lora.adapter:
        if generative:  # the output layer (tied to the embedding in small LMs) stays as pre-trained
            return apply_peft(model, cfg.lora, tokenizer.all_special_ids if tokenizer is not None else None,
                              train_special_default=False, task="CAUSAL_LM", top_layers=cfg.top_layers)
        return apply_peft(model, cfg.lora, tokenizer.all_special_ids if tokenizer is not None else None,
                          train_special_default=False, task="SEQ_CLS", top_layers=cfg.top_layers,
                          modules_to_save=heads + (["pooler"] if hasattr(base, "pooler") else []))
    apply_freeze(model, cfg.freeze_embeddings, tokenizer.all_special_ids if tokenizer is not None else None)
    if cfg.top_layers is not None:
        finals = [getattr(base, n) for n in ("norm", "final_layernorm", "ln_f", "pooler")
                  if getattr(base, n, None) is not None]
        train_top_blocks(model, cfg.top_layers, finals + [getattr(model, n) for n in heads])
    return model


def plain_model(model):
    """The trained model as a plain ``transformers`` model (LoRA adapters merged in)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


# ----------------------------------------------------------------------------------------- scoring

def prompt_rows(model, cfg: RewardModelSection, fmt: str, groups, pad_id: int) -> tuple[int | None, str]:
    """(row length for prefix-shared packing, or None for padded rows; why): on when asked, the input format is
    causal and the packed scores of a few training groups equal the padded ones."""
    from .reward_scores import check_sharing

    if not cfg.share_prompt:
        return None, "off (model.share_prompt=false)"
    if fmt == "pair":
        return None, "off (encoder: prompt and response read as a sentence pair)"
    ok, why = check_sharing(model, groups, pad_id, cfg.max_length, cfg.chunk_tokens)
    return (cfg.max_length, why) if ok else (None, why)


# ----------------------------------------------------------------------------------------- save / load

def save_reward_model(run, model, tokenizer, meta: RewardMeta) -> Path | None:
    """``run/final``: a plain HF sequence-classification folder, ``reward`` in config.json and reward.json."""
    from .load import save_hf

    if not run.main:
        return None
    model = plain_model(model)
    model.config.reward = meta.as_dict()
    tmp = run.staging_dir("final")
    save_hf(model, tokenizer, tmp)
    (tmp / SIDECAR).write_text(json.dumps(meta.as_dict(), indent=2) + "\n")
    return run.commit_dir(tmp, "final")


def load_reward_model(path: str | Path, dtype: str = "float32"):
    """(model, tokenizer, meta) from a folder written by :func:`save_reward_model`: a sequence-classification
    model, or for ``meta.head == "generative"`` a causal LM whose ``config.reward`` carries the verdict."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = Path(path)
    side = path / SIDECAR
    if not side.exists():
        raise InputError(f"not an lmforge reward model folder (no {SIDECAR})", file=path)
    try:
        meta = RewardMeta(**json.loads(side.read_text()))
    except (TypeError, ValueError) as e:
        raise InputError(f"unreadable reward meta ({e})", file=side) from None
    auto = AutoModelForCausalLM if meta.head == "generative" else AutoModelForSequenceClassification
    try:
        model = auto.from_pretrained(str(path), dtype=DTYPES[dtype])
    except OSError as e:
        raise InputError(f"cannot load reward model ({e})", file=path) from None
    model.config.reward = meta.as_dict()  # the sidecar is the source of truth (verdict, mean / std)
    tokenizer = load_tokenizer(str(path))
    ensure_pad(tokenizer, model.config)
    model.eval()
    return model, tokenizer, meta
