"""A round's prompt file: the round's slice of new prompts, plus the previous round's red-team findings.

Round n takes prompts ``[(n-1)·per_round, n·per_round)`` of a fixed order (the world's train prompts shuffled by
``sample_seed``, or the prompt file's lines), so no prompt comes back while the source lasts (the last slice may
be short). When it runs out the loop goes on (``prompts.repeat``): the next round starts another pass over the
source in a fresh order (pass p shuffled by ``sample_seed`` and p), sliced the same way, so a round never holds a
prompt twice; ``repeat: false`` stops with an error instead. A red-team finding on a
world seed keeps the seed's world fields (kind ``harmful``, its category and reference refusal) with the attack
prompt as the user turn, so the simulated labeler grades the answer to the attack as it grades the seed's.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runs import atomic_write_text

PROMPTS_FILE = "prompts.jsonl"
WORLD_FIELDS = ("kind", "category", "split", "reference", "meta")


def round_slice(round_no: int, per_round: int, total: int, repeat: bool) -> tuple[int, int, int]:
    """``(pass, start, stop)``: round n's prompts are ``[start, stop)`` of pass ``pass``'s order (pass 0: the
    source's own). A pass is ``ceil(total / per_round)`` rounds; without ``repeat`` there is only pass 0."""
    per_pass = max(-(-total // per_round), 1)
    pass_no, slot = divmod(round_no - 1, per_pass) if repeat else (0, round_no - 1)
    start = slot * per_round
    return pass_no, start, min(start + per_round, total)


def pass_order(rows: list[dict[str, Any]], pass_no: int, sample_seed: int) -> list[dict[str, Any]]:
    """The source's order for pass 0; a fresh shuffle (seeded by the sample seed and the pass) after it."""
    if pass_no == 0:
        return rows
    out = list(rows)
    random.Random(f"loop-prompts:{sample_seed}:{pass_no}").shuffle(out)
    return out


def new_prompts(cfg, round_no: int) -> list[dict[str, Any]]:
    """The round's slice of new prompts as ``{"id", "messages", "meta"}``."""
    p = cfg.prompts
    if p.source == "world":
        from ..world import World

        items = World(p.world_seed).eval_prompts(split="train", kinds=p.kinds, n=None, seed=p.sample_seed)
        pool = [{"id": str(it["id"]), "messages": it["messages"], "meta": {k: it.get(k) for k in WORLD_FIELDS}}
                for it in items]
    else:  # the one prompt reader (data.prompt_files): any shape, bad records and repeated ids named by line
        from ..data.prompt_files import read_prompt_file

        pool = [it.as_prompt() for it in read_prompt_file(p.source)]
    pass_no, start, stop = round_slice(round_no, p.per_round, len(pool), p.repeat)
    rows = pass_order(pool, pass_no, p.sample_seed)[start:stop]
    if not rows:
        raise InputError(f"round {round_no} needs prompts {start + 1}-{start + p.per_round}, but the source has "
                         f"{len(pool)} (prompts.repeat is off)" if pool else "the prompt source has no prompts",
                         file=p.source if p.source != "world" else None, field="prompts.per_round")
    return rows


def findings_prompts(cfg, findings: Path) -> list[dict[str, Any]]:
    """The successful attacks in a red-team ``findings/prompts.jsonl``, as prompts; world seeds keep their world
    fields (so the simulated labeler can grade them), other seeds have none."""
    if not findings.is_file():
        return []
    by_id: dict[str, dict[str, Any]] = {}
    if cfg.redteam.seeds == "world":
        from ..world import World

        world = World(cfg.prompts.world_seed)
        for split in ("train", "heldout"):
            for it in world.eval_prompts(split, ["harmful"], n=None, seed=0):
                by_id[str(it["id"])] = it
    rows = []
    for i, line in enumerate(findings.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        rec = json.loads(line)
        seed = by_id.get(str(rec["meta"]["seed"]))
        meta = {k: seed.get(k) for k in WORLD_FIELDS} if seed else {}
        meta["redteam"] = rec["meta"]
        rows.append({"id": f"redteam-{rec['meta']['seed']}-{rec['meta']['attack']}-{i}",
                     "messages": [{"role": "user", "content": rec["prompt"]}], "meta": meta})
    return rows[:cfg.prompts.max_findings] if cfg.prompts.max_findings else rows


def write_round_prompts(cfg, round_dir: Path, round_no: int, previous: Path | None) -> dict[str, Any]:
    """Write ``round_dir/prompts.jsonl`` (once: an existing file is the round's record and is kept) and return
    what it holds."""
    path = round_dir / PROMPTS_FILE
    if not path.exists():
        rows = new_prompts(cfg, round_no)
        found = []
        if cfg.prompts.redteam_findings and previous is not None:
            found = findings_prompts(cfg, previous / "redteam" / "findings" / "prompts.jsonl")
        round_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows + found))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    red = sum(1 for r in rows if "redteam" in (r.get("meta") or {}))
    return {"file": str(path), "prompts": len(rows), "new": len(rows) - red, "redteam_findings": red}
