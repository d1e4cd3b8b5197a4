"""PPO: peak memory and seconds per phase of lmforge's layout against the naive four-model layout.

    python bench/ppo_memory.py --rounds 2          # alternates the layouts below in fresh processes, prints the table
    python bench/ppo_memory.py --layout naive      # one run, one JSON line

Layouts, all on the shared tiny Llama (bench/setup_trl.sh) with the same rollouts (16 prompts x 1 response,
64 new tokens at T 1, 2 rollouts, 2 PPO epochs over minibatches of 8, k1 KL β 0.05 in the reward, GAE, whitened
advantages, clipped policy and value losses, AdamW lr 1e-5):

- ``naive``: four full models, as PPO implementations before TRL 1.16 held them: the policy, a frozen reference
  copy, the reward model and a separate critic (a trainable copy of the reward model, read per token), with a
  plain loop (HF ``generate``; lmforge's pure algorithm functions for GAE and the losses, so only the layout
  differs).
- ``ours``: ``lmforge ppo`` with the value head on the policy (``rl.critic: shared``), full fine-tuning
  (the reference is a frozen copy).
- ``ours_lora``: the same with a LoRA adapter (r 8): the reference is the policy with the adapter off.

Reward model: the tiny Llama's random ``reward_model/`` wrapped as an lmforge reward-model folder (reward.json:
mean 0, std 1); what is measured is memory and time, not learning. Phases per run (seconds, summed): rollout
(generation), reward (the reward model), reference (the reference's log-prob forwards), old (the no-grad
policy log-prob / value forwards), update (PPO epochs: forward, backward, optimizer). ``peak_rss_mb`` is
ru_maxrss; ``rss_base_mb`` the RSS after imports, before any model (their difference is what the layout costs).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
HERE = Path(__file__).resolve().parent
S = {"prompts": 16, "new": 64, "rollouts": 2, "epochs": 2, "mb": 8, "beta": 0.05, "lr": 1e-5}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reward_folder(work: Path) -> Path:
    """The tiny reward model as an lmforge reward-model folder (reward.json beside the HF files)."""
    out = work / "tiny_rm_lmforge"
    if not (out / "reward.json").exists():
        shutil.copytree(work / "tiny_llama" / "reward_model", out, dirs_exist_ok=True)
        (out / "reward.json").write_text(json.dumps({"backbone": "tiny_llama", "kind": "causal",
                                                     "input_format": "chat", "max_length": 1024,
                                                     "reward_mean": 0.0, "reward_std": 1.0}))
    return out


def prompts(work: Path) -> list:
    rows = [json.loads(x) for x in open(work / "rl_prompts.jsonl")]
    return rows[:S["prompts"] * S["rollouts"]]


def ours(args, work: Path, lora: bool) -> dict:
    import lmforge.rl.rollout as rollout
    import lmforge.rl.source as source
    from lmforge.config import load_config
    from lmforge.stages.rl import RLConfig, rl_train

    acc = {"rollout": 0.0, "scoring": 0.0, "reward": 0.0, "reference": 0.0, "forwards": 0.0}
    collect, fwd, ref_lp = source.collect, rollout.forward_rows, rollout.token_logprobs_of

    def add(key, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[key] += time.perf_counter() - t
        return wrapper

    def timed_collect(model, reference, tokenizer, reward, *a, **k):
        res = collect(model, reference, tokenizer, add("reward", reward), *a, **k)
        acc["rollout"] += res.metrics["seconds_generation"]
        acc["scoring"] += res.metrics["seconds_scoring"]
        return res

    source.collect, rollout.forward_rows = timed_collect, add("forwards", fwd)
    rollout.token_logprobs_of = add("reference", ref_lp)  # only the reference's log-probs go through it
    pfile = Path(tempfile.mkdtemp()) / "prompts.jsonl"
    pfile.write_text("".join(json.dumps(r) + "\n" for r in prompts(work)))
    base = rss_mb()
    cfg = load_config(RLConfig, None, [
        f"run.root={tempfile.mkdtemp()}", "run.name=ppo", f"model.path={work / 'tiny_llama'}",
        f"prompts.source={pfile}", f"reward.terms=[{{kind: model, path: {reward_folder(work)}}}]",
        f"sampling.max_new_tokens={S['new']}", "sampling.temperature=1.0", "rl.algorithm=ppo",
        f"rl.rollouts={S['rollouts']}", f"rl.prompts_per_rollout={S['prompts']}", "rl.group_size=1",
        f"rl.ppo_epochs={S['epochs']}", f"rl.forward_batch={S['prompts']}", f"rl.kl_coef={S['beta']}",
        "rl.missing_eos_penalty=null", "rl.critic=shared", "rl.samples_every=0", f"train.batch_size={S['mb']}",
        f"train.micro_batch_size={S['mb']}", f"train.lr={S['lr']}", "train.log_every=100",
        *(["peft.method=lora", "peft.r=8"] if lora else [])])
    summary = rl_train(cfg)
    old = acc["forwards"] - acc["reference"]
    return {"seconds": summary["train_seconds"], "rollout_s": acc["rollout"], "reward_s": acc["reward"],
            "reference_s": acc["reference"], "old_s": old,
            "update_s": summary["train_seconds"] - acc["rollout"] - acc["scoring"], "rss_base_mb": base,
            "weight_bytes": summary["weight_bytes"], "steps": summary["steps"]}


def naive(args, work: Path) -> dict:
    """Four full models and a plain PPO loop (the algorithm functions are lmforge's: only the layout differs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from lmforge.algos.advantages import gae, masked_whiten
    from lmforge.algos.kl import k1, kl_penalised_rewards
    from lmforge.algos.policy_losses import aggregate, clipped_value_loss, ppo_clip
    from lmforge.rl.buffer import pack_rows
    from lmforge.rl.policy import critic_values
    from lmforge.rl.rollout import masked_logprobs

    base = rss_mb()
    m, rmp = str(work / "tiny_llama"), str(work / "tiny_llama" / "reward_model")
    tok = AutoTokenizer.from_pretrained(m)
    policy = AutoModelForCausalLM.from_pretrained(m, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(m, dtype=torch.float32).eval().requires_grad_(False)
    reward = AutoModelForSequenceClassification.from_pretrained(rmp, num_labels=1).eval().requires_grad_(False)
    critic = AutoModelForSequenceClassification.from_pretrained(rmp, num_labels=1)
    models = {"policy": policy, "reference": reference, "reward_models": reward, "critic": critic}
    opt = torch.optim.AdamW([*policy.parameters(), *critic.parameters()], lr=S["lr"], betas=(0.9, 0.95))
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.pad_token_id
    acc = dict.fromkeys(("rollout_s", "reward_s", "reference_s", "old_s", "update_s"), 0.0)
    rows_all, steps = prompts(work), 0
    torch.manual_seed(0)
    t_all = time.perf_counter()
    for r in range(S["rollouts"]):
        batch = rows_all[r * S["prompts"]:(r + 1) * S["prompts"]]
        p_ids = [tok.apply_chat_template(x["prompt"], add_generation_prompt=True, tokenize=True,
                                         return_dict=True)["input_ids"] for x in batch]
        t = time.perf_counter()
        width = max(map(len, p_ids))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in p_ids])
        att = (torch.arange(width) >= torch.tensor([width - len(p) for p in p_ids])[:, None]).long()
        with torch.no_grad():
            out = policy.generate(input_ids=ids, attention_mask=att, do_sample=True, temperature=1.0, top_k=0,
                                  top_p=1.0, max_new_tokens=S["new"], eos_token_id=eos, pad_token_id=pad)
        resp = []
        for row in out[:, width:].tolist():
            resp.append(row[:row.index(eos) + 1] if eos in row else row)
        rows = pack_rows(p_ids, resp, pad)
        acc["rollout_s"] += time.perf_counter() - t
        ids, att, tgt, mask = rows["input_ids"], rows["attention_mask"], rows["targets"], rows["mask"]
        with torch.no_grad():
            t = time.perf_counter()
            score = reward(input_ids=ids, attention_mask=att).logits[torch.arange(len(ids)), 0].double()
            acc["reward_s"] += time.perf_counter() - t
            t = time.perf_counter()
            ref_logp, _ = masked_logprobs(reference(input_ids=ids, attention_mask=att).logits, tgt, mask, 1.0)
            acc["reference_s"] += time.perf_counter() - t
            t = time.perf_counter()
            old_logp, _ = masked_logprobs(policy(input_ids=ids, attention_mask=att).logits, tgt, mask, 1.0)
            old_v = critic_values(critic, ids, att) * mask
            acc["old_s"] += time.perf_counter() - t
        kl = k1(old_logp, ref_logp) * mask
        adv, ret = gae(kl_penalised_rewards(score, kl.double(), mask.double(), S["beta"]), old_v.double(),
                       mask.double())
        adv = masked_whiten(adv, mask.double()).float()
        t = time.perf_counter()
        for _epoch in range(S["epochs"]):
            perm = torch.randperm(len(ids))
            for lo in range(0, len(ids), S["mb"]):
                i = perm[lo:lo + S["mb"]]
                logp, _ = masked_logprobs(policy(input_ids=ids[i], attention_mask=att[i]).logits, tgt[i], mask[i],
                                          1.0)
                pg, _ = ppo_clip(logp, old_logp[i], adv[i])
                vl, _ = clipped_value_loss(critic_values(critic, ids[i], att[i]), old_v[i], ret[i].float(), 0.2)
                loss = (aggregate(pg, mask[i])[0] + 0.1 * aggregate(vl, mask[i])[0]) / mask[i].sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([*policy.parameters(), *critic.parameters()], 1.0)
                opt.step()
                steps += 1
        acc["update_s"] += time.perf_counter() - t
    secs = time.perf_counter() - t_all
    nbytes = {k: sum(p.numel() * p.element_size() for p in v.parameters()) for k, v in models.items()}
    nbytes["total"] = sum(nbytes.values())
    return {"seconds": secs, **acc, "rss_base_mb": base, "weight_bytes": nbytes, "steps": steps}


def one(args) -> None:
    sys.path.insert(0, args.shared)
    real, sys.stdout = sys.stdout, sys.stderr
    import torch
    from trl_bench import calib_gflops

    calib = calib_gflops()
    work = Path(args.work)
    row = naive(args, work) if args.layout == "naive" else ours(args, work, args.layout == "ours_lora")
    row = {"layout": args.layout, **{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()},
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "calib_gflops": round((calib + calib_gflops()) / 2, 1), "torch_threads": torch.get_num_threads(),
           "settings": S}
    sys.stdout = real
    print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", choices=("naive", "ours", "ours_lora"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "bench"))
    ap.add_argument("--work", default=str(HERE / "_work"), help="bench/setup_trl.sh's folder (tiny_llama, "
                    "rl_prompts.jsonl from bench/compare.py grpo)")
    args = ap.parse_args()
    if args.layout:
        return one(args)
    out = HERE / "results" / "ppo_memory.jsonl"
    res: dict[str, list[dict]] = {k: [] for k in ("naive", "ours", "ours_lora")}
    for r in range(args.rounds):
        for layout in res:
            cmd = [sys.executable, __file__, "--layout", layout, "--shared", args.shared, "--work", args.work]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
            row = {**json.loads(proc.stdout.strip().splitlines()[-1]), "round": r}
            res[layout].append(row)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"| ppo layout | weights MB | peak RSS MB (max of {args.rounds}) | RSS over imports MB | loop s | rollout "
          "| reward | reference | old log-probs + values | PPO update | calib GFLOP/s |")
    print("|---" * 11 + "|")
    for k, v in res.items():
        med = {f: statistics.median(x[f] for x in v) for f in ("seconds", "rollout_s", "reward_s", "reference_s",
                                                              "old_s", "update_s")}
        over = max(x["peak_rss_mb"] - x["rss_base_mb"] for x in v)
        print(f"| {k} | {v[0]['weight_bytes']['total'] / 2**20:.1f} | {max(x['peak_rss_mb'] for x in v):,.0f} | "
              f"{over:,.0f} | {med['seconds']:.1f} | {med['rollout_s']:.1f} | {med['reward_s']:.2f} | "
              f"{med['reference_s']:.2f} | {med['old_s']:.2f} | {med['update_s']:.1f} | "
              + ", ".join(f"{x['calib_gflops']:.0f}" for x in v) + " |")


if __name__ == "__main__":
    main()
