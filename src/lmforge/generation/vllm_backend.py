"""vLLM as an optional backend for GPUs (``pip install vllm``; not a dependency), behind the same
``run(rows, params)`` / ``load_weights(state_dict)`` interface as :class:`~.hf_backend.HFBackend`.

Each row becomes one vLLM request with ``n=1`` and the row's own seed, so seeding per (seed, step, rank,
prompt index, sample) means the same thing as on the HF backend (the streams differ: vLLM draws its own noise).
The engine is built with ``logprobs_mode="processed_logprobs"`` so the returned log-probabilities are those of
the distribution sampled from (after temperature, top-k, top-p), as on the HF backend; vLLM's default is the
raw logits. Stop strings are passed to vLLM so it stops early; the cut itself is :func:`~.outputs.finish`'s,
from the token ids, as for every backend.
"""
from __future__ import annotations

from typing import Any

from .outputs import CANCELLED, LENGTH, STOP, STOP_STRING, Row, RowResult
from .params import SamplingParams


def vllm_sampling(row: Row, params: SamplingParams, vllm_module) -> Any:
    """vLLM's ``SamplingParams`` for one row (``top_k`` 0 means off in both; vLLM wants -1 in old versions)."""
    return vllm_module.SamplingParams(
        n=1, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or -1,
        repetition_penalty=params.repetition_penalty, max_tokens=row.max_new_tokens, seed=row.seed,
        stop=list(row.stop) or None, stop_token_ids=sorted(row.stop_ids), logprobs=max(params.top_logprobs, 0),
        detokenize=bool(row.stop), skip_special_tokens=True)


def row_result(out: Any, top_k: int) -> RowResult:
    """A vLLM ``CompletionOutput`` as a :class:`RowResult` (the sampled token's logprob is always present in
    vLLM's per-position dict, next to the ``top_k`` most likely tokens)."""
    ids = list(out.token_ids)
    lps, top = [], []
    for pos, t in enumerate(ids):
        entry = (out.logprobs or [{}] * len(ids))[pos] or {}
        lps.append(float(entry[t].logprob) if t in entry else float("nan"))
        ranked = sorted(((int(k), float(v.logprob)) for k, v in entry.items()), key=lambda kv: -kv[1])
        top.append(ranked[:top_k] if top_k else [])
    if out.finish_reason == "length":
        reason = LENGTH
    elif out.finish_reason == "abort":
        reason = CANCELLED
    else:
        reason = STOP_STRING if isinstance(getattr(out, "stop_reason", None), str) else STOP
    return RowResult(ids, lps, top, reason)


class VLLMBackend:
    """``model``: a model folder or hub id (or an already built ``vllm.LLM``); ``engine_args`` go to ``LLM``."""

    name = "vllm"

    def __init__(self, model, tokenizer, stops: list[int], **engine_args: Any):
        try:
            import vllm
        except ImportError:
            raise ImportError("the vllm backend needs vLLM: pip install vllm (GPU only)") from None
        self.vllm, self.tokenizer, self.stops = vllm, tokenizer, stops
        if isinstance(model, str):
            engine_args.setdefault("logprobs_mode", "processed_logprobs")
            model = vllm.LLM(model=model, **engine_args)
        self.llm = model

    @property
    def context(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def run(self, rows: list[Row], params: SamplingParams) -> list[RowResult]:
        live = [i for i, r in enumerate(rows) if not (r.cancelled is not None and r.cancelled.is_set())]
        results = [RowResult(finish_reason=CANCELLED) for _ in rows]
        if not live:
            return results
        prompts = [{"prompt_token_ids": rows[i].prompt_ids} for i in live]
        sampling = [vllm_sampling(rows[i], params, self.vllm) for i in live]
        outs = self.llm.generate(prompts, sampling_params=sampling, use_tqdm=False)
        for i, out in zip(live, outs):
            res = row_result(out.outputs[0], params.top_logprobs)
            results[i] = res
            if rows[i].on_token is not None:  # vLLM's offline API is not streaming: deliver at the end
                for t, lp in zip(res.token_ids, res.logprobs):
                    if t not in rows[i].stop_ids:
                        rows[i].on_token(t, lp)
        return results

    def load_weights(self, state_dict) -> None:
        """Load updated policy weights into the running engine (no restart): the in-process model's
        ``load_weights``, as colocated RL trainers do; then drop the prefix cache, which the old weights filled."""
        try:
            model = self.llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
        except AttributeError:
            raise RuntimeError("this vLLM build does not expose its in-process model; start it with "
                               "VLLM_ENABLE_V1_MULTIPROCESSING=0 to update weights in place") from None
        model.load_weights(weights=list(state_dict.items()))
        self.llm.reset_prefix_cache()
