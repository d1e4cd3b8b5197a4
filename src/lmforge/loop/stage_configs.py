"""Each round's stage configs: the user's partial ``update.rm`` / ``update.rl`` / ``update.dpo`` settings with the
loop's paths laid over them, validated by the stages' own schemas (:class:`~lmforge.stages.rm.RMConfig`,
:class:`~lmforge.stages.rl.RLConfig`, :class:`~lmforge.stages.dpo.DPOConfig`)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

# the keys the loop sets itself; a user value there would be silently replaced, so it is refused instead
OWNED = {"rm": ("run", "model.path", "data.train", "data.eval"),
         "rl": ("run", "model.path", "prompts", "reward"),
         "dpo": ("run", "model.path", "data.train", "data.eval")}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, nested dicts merged key by key (neither input is changed)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_owned(section: str, user: dict[str, Any]) -> None:
    for dotted in OWNED[section]:
        node: Any = user
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            raise ValueError(f"update.{section}.{dotted} is set by the loop (each round's paths); remove it")


def _validate(schema, section: str, user: dict[str, Any], loop_keys: dict[str, Any], seed: int):
    """The stage config: its own ``train`` defaults (as ``lmforge <stage>`` keeps them when a YAML sets one
    ``train`` key) with the loop's seed, then the user's settings, then the loop's paths."""
    from ..config import schema_defaults

    _check_owned(section, user)
    train = deep_merge(schema_defaults(schema)["train"], {"seed": seed})
    try:
        return schema.model_validate(deep_merge(deep_merge({"train": train}, user), loop_keys))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"update.{section}.{where}: {err['msg']}") from None


def rm_config(cfg, round_dir: Path, start: str, train: str, heldout: str):
    from ..stages.rm import RMConfig

    loop_keys = {"run": {"name": "rm", "root": str(round_dir)}, "model": {"path": start},
                 "data": {"train": [train], "eval": [heldout]}}
    return _validate(RMConfig, "rm", cfg.update.rm, loop_keys, cfg.seed)


def rl_config(cfg, round_dir: Path, policy: str, prompts: str, reward_model: str):
    from ..stages.rl import RLConfig

    method = cfg.update.method
    user = deep_merge(cfg.update.rl, {"rl": {"algorithm": method}})
    if cfg.update.rl.get("peft", {}).get("method", "none") != "none":
        raise ValueError("update.rl.peft: the loop trains the full policy (each round's policy is the next "
                         "round's generator and RL start, read as a plain model folder)")
    loop_keys = {"run": {"name": method, "root": str(round_dir)}, "model": {"path": policy},
                 "prompts": {"source": prompts},
                 "reward": {"terms": [deep_merge(cfg.update.reward_term, {"kind": "model", "path": reward_model})]}}
    return _validate(RLConfig, "rl", user, loop_keys, cfg.seed)


def dpo_config(cfg, round_dir: Path, policy: str, train: str, heldout: str):
    from ..stages.dpo import DPOConfig

    if cfg.update.dpo.get("peft", {}).get("method", "none") != "none":
        raise ValueError("update.dpo.peft: the loop trains the full policy (read as a plain model folder)")
    loop_keys = {"run": {"name": "dpo", "root": str(round_dir)}, "model": {"path": policy},
                 "data": {"train": [train], "eval": [heldout]}}
    return _validate(DPOConfig, "dpo", cfg.update.dpo, loop_keys, cfg.seed)
