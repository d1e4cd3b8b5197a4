"""The ``reward`` section of an RL config: one or more weighted terms (reward model, Python function, AI judge).

Example (a weighted sum; see docs/rewards.md)::

    reward:
      batch_size: 32
      terms:
        - kind: model
          path: runs/rm/final          # an `lmforge rm` output folder
          weight: 1.0
          clip: 5.0
        - kind: function
          function: lmforge.rewards.builtin:length_penalty
          kwargs: {target: 60, per_token: 0.02}
        - kind: judge
          weight: 0.5
          judge: {endpoint: "http://127.0.0.1:8000", criteria: [accuracy, honesty]}
"""
from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..config import Section
from ..data.preference import CRITERIA

KINDS = ("model", "function", "judge")
NO_TERMS = ("no reward: add at least one term under reward.terms (kind: model, function or judge; see "
            "docs/rewards.md)")
# which optional fields belong to which kind (a field of another kind set by mistake is an error, not ignored)
_OWN = {"model": {"path", "dtype", "head"}, "function": {"function", "kwargs"}, "judge": {"judge"}}


class JudgeSection(Section):
    """The judge of ``lmforge judge`` as a reward: the same backends and options, in config form."""
    model: str | None = Field(None, description="local judge: a causal-LM folder, .gguf file or hub id")
    endpoint: str | None = Field(None, description="remote judge: an OpenAI-compatible server URL "
                                 "(http://HOST:PORT or .../v1)")
    api_model: str | None = Field(None, description="model name at the endpoint (default: the only one served)")
    api_key_env: str = Field("LMFORGE_JUDGE_API_KEY", description="environment variable holding the endpoint's "
                             "API key ($OPENAI_API_KEY when it is unset); keys are never written in configs")
    rubric: str | None = Field(None, description="YAML rubric or text file of principles (default: the five "
                               "criteria)")
    criteria: list[str] = Field(list(CRITERIA), min_length=1, description="criteria scored 1-7 per response; "
                                "the reward is their mean (one judge query per criterion and response)")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    concurrency: int = Field(4, ge=1, description="endpoint: requests in flight")
    timeout: float = Field(60.0, gt=0, description="endpoint: seconds per request")
    retries: int = Field(3, ge=0, description="endpoint: retries after a connection error, 429 or 5xx")

    @model_validator(mode="after")
    def _one_judge(self) -> JudgeSection:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("give exactly one judge: model (a local model) or endpoint (a URL)")
        bad = [c for c in self.criteria if c not in CRITERIA]
        if bad:
            raise ValueError(f"unknown criteria {', '.join(bad)} (the judge scores {', '.join(CRITERIA)})")
        return self


class RewardTerm(Section):
    kind: Literal["model", "function", "judge"] = Field(description="model: an `lmforge rm` folder; function: "
                                                        "a Python function module:function; judge: the AI judge")
    name: str | None = Field(None, description="name in logs (default: from the path or function)")
    path: str | None = Field(None, description="kind=model: the reward-model folder (`lmforge rm` run/final)")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="kind=model: weights dtype")
    head: str | None = Field(None, description="kind=model: the head to read, by name: a criterion of a "
                             "model with a head per criterion (e.g. harmless), normalised with that head's "
                             "saved statistics; null: the overall reward (column 0)")
    function: str | None = Field(None, description="kind=function: 'package.module:function' or "
                                 "'path/to/file.py:function'")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="kind=function: extra keyword arguments "
                                   "passed on every call (e.g. length_penalty's target)")
    judge: JudgeSection | None = Field(None, description="kind=judge: the judge (a local model or a URL)")
    weight: float = Field(1.0, description="the term's weight in the sum")
    normalize: bool | None = Field(None, description="model: (r - mean) / std with the statistics the reward "
                                   "model saved; judge: (s - 4) / 3, the 1-7 scale mapped to [-1, 1]; null: on "
                                   "for both; function: must stay null or false (a function returns its own "
                                   "scale)")
    clip: float | None = Field(None, gt=0, description="clip the (normalised) score to [-clip, clip]")
    when: dict[str, list[str]] | None = Field(None, description="score only the prompts with these tags in "
                                              "their meta (key: value or list of values, e.g. {kind: harmful}); "
                                              "the others get 0 from this term (docs/rewards.md, routing)")

    @field_validator("when", mode="before")
    @classmethod
    def _when_lists(cls, when: Any) -> Any:
        # {kind: harmful} and {kind: [harmful, violence]} both mean "one of these values"
        if isinstance(when, dict):
            if not when:
                raise ValueError("'when' needs at least one tag (key: value), or leave it out")
            return {k: [str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)] for k, v in when.items()}
        return when

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # list items are not reached by the loader's key check: suggest the closest key here
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), list(cls.model_fields), n=1, cutoff=0.5)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    raise ValueError(f"unknown key '{key}'{hint}; valid keys: {', '.join(cls.model_fields)}")
        return data

    @model_validator(mode="after")
    def _fields_of_kind(self) -> RewardTerm:
        need = {"model": "path", "function": "function", "judge": "judge"}[self.kind]
        if getattr(self, need) is None:
            raise ValueError(f"a reward term of kind={self.kind} needs '{need}'")
        # a field of another kind counts when it differs from its default (a dumped config lists every field)
        fields = type(self).model_fields
        stray = sorted(f for f in set().union(*_OWN.values()) - _OWN[self.kind]
                       if getattr(self, f) != fields[f].get_default(call_default_factory=True))
        if stray:
            owner = next(k for k, own in _OWN.items() if stray[0] in own)
            raise ValueError(f"'{stray[0]}' is for kind={owner}, not kind={self.kind}")
        if self.kind == "function" and self.normalize:
            raise ValueError("normalize is for kind=model and kind=judge; a function returns its own scale "
                             "(scale it with weight, bound it with clip)")
        return self

    @property
    def normalized(self) -> bool:
        """Whether the score is normalised (``normalize`` null: yes for model and judge, no for functions)."""
        return self.kind != "function" if self.normalize is None else self.normalize

    def label(self) -> str:
        """The term's name in logs: ``name``, else the function's name or the model folder."""
        if self.name:
            return self.name
        if self.kind == "function":
            return self.function.rsplit(":", 1)[-1]
        if self.kind == "model":
            parts = [p for p in self.path.replace("\\", "/").rstrip("/").split("/") if p]
            return "rm:" + "/".join(parts[-2:]) if parts else "rm"
        return "judge"


class RewardSection(Section):
    # empty by default so a stage's config can hold RewardSection() as its default; a config that is loaded or
    # built with an empty list (and build_reward) refuses it: RL without a reward has nothing to climb
    terms: list[RewardTerm] = Field(default_factory=list, description="the reward is sum_i weight_i * term_i "
                                    "(at least one term)")
    batch_size: int = Field(32, ge=1, description="responses per reward-model forward / judge queries per "
                            "local forward")

    @field_validator("terms")
    @classmethod
    def _some_terms(cls, terms: list[RewardTerm]) -> list[RewardTerm]:
        if not terms:  # runs on a given list only, not on the default of RewardSection()
            raise ValueError(NO_TERMS)
        return terms

    @model_validator(mode="after")
    def _unique_names(self) -> RewardSection:
        names = [t.label() for t in self.terms]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"two reward terms are named {dup!r}; give each a distinct 'name'")
        return self
