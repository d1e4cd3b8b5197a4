"""``lmforge judge``: AI feedback on a labeling batch from a local model or an OpenAI-compatible endpoint."""
from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from .common import print_summary
from .label_cmd import DB

JUDGE_HELP = "\n\n".join([
    "AI feedback (RLAIF): a judge model ranks, and by default scores, every prompt of BATCH as the labeler "
    "ai:NAME; its labels export, count in 'lmforge label stats' and train like anyone else's.",
    "Judge with --model (a local Hugging Face model folder, .gguf file or hub id: verdicts scored by the "
    "log-probability of 'A' vs 'B' and of the digits 1-7 after the prompt in the model's chat template) or "
    "--endpoint (any OpenAI-compatible server, e.g. 'lmforge serve': top_logprobs when the server gives them, "
    "else the written verdict).",
    "A reward model folder of 'lmforge rm' as --model judges with what it was trained on (either head; a "
    "generative verifier asks its own saved verdict question, as 'lmforge rm score' and RL do): a pointwise "
    "model's p(i beats j) = sigmoid(r_i - r_j), a pairwise verifier's sigmoid of its both-orders log-odds; "
    "criterion scores 1 + 6 P(yes) only from per-criterion verdicts. --rubric does not apply.",
    "Combination rule: every pair of responses is judged twice, once in each order (A/B, then B/A). With p1 and "
    "p2 the probabilities that the first of the pair wins when shown as A and when shown as B, "
    "p = sigmoid((logit p1 + logit p2) / 2); a preference for either position cancels (a judge that always "
    "says A gives p = 0.5). |p - 0.5| <= --tie-margin is a tie. The ranking is Copeland over the pairs (1 per "
    "win, 0.5 per tie), broken by expected wins; undecided neighbours are stored as ties.",
    "Criterion scores (--criteria): each response alone, per criterion (accuracy, relevance, coherence, "
    "harmlessness, honesty), the expected digit sum d * P(d) over 1-7, rounded.",
    "Only prompts the judge has not labeled yet are judged. When other labelers (human, simulated, imported) "
    "labeled the same prompts, the agreement between them and the judge is reported (Kendall's tau, "
    "Krippendorff's alpha on ranks and per criterion).",
])


def register(app: typer.Typer) -> None:
    @app.command("judge", help=JUDGE_HELP)
    def judge_cmd(batch: str = typer.Argument(..., help="batch name in the feedback database"),
                  model: str | None = typer.Option(None, "--model", help="local judge: model folder, .gguf "
                                                      "file or hub id"),
                  endpoint: str | None = typer.Option(None, "--endpoint", help="remote judge: URL of an "
                                                         "OpenAI-compatible server: http://HOST:PORT or "
                                                         "http://HOST:PORT/v1"),
                  api_model: str | None = typer.Option(None, "--api-model", help="model name at the "
                                                          "endpoint \\[default: the only one it serves]"),
                  api_key: str | None = typer.Option(None, "--api-key", envvar="LMFORGE_JUDGE_API_KEY",
                                                        show_default=False,
                                                        help="endpoint API key \\[default: $OPENAI_API_KEY]"),
                  rubric: str | None = typer.Option(None, "--rubric", help="YAML rubric or a text file of "
                                                       "principles, one per line \\[default: the five criteria]"),
                  name: str = typer.Option("judge", "--name", help="the judge's labeler name (source ai:NAME)"),
                  criteria: bool = typer.Option(True, "--criteria/--no-criteria",
                                                help="also score each response 1-7 on the five criteria"),
                  db: str | None = DB,
                  limit: int | None = typer.Option(None, "--limit", min=1, help="judge at most N prompts"),
                  tie_margin: float = typer.Option(0.05, "--tie-margin", min=0.0, max=0.5,
                                                   help="a pair with |p - 0.5| <= this is a tie"),
                  batch_size: int = typer.Option(8, "--batch-size", min=1,
                                                 help="local: judge queries per forward pass"),
                  dtype: str = typer.Option("float32", help="local: float32, bfloat16 or float16"),
                  device: str = typer.Option("auto", help="local: auto, cpu, cuda, ..."),
                  concurrency: int = typer.Option(4, min=1, help="endpoint: requests in flight"),
                  timeout: float = typer.Option(60.0, min=0.1, help="endpoint: seconds per request"),
                  retries: int = typer.Option(3, min=0, help="endpoint: retries after a connection error, "
                                              "timeout, 429 or 5xx (exponential backoff)"),
                  as_json: bool = typer.Option(False, "--json", help="print the summary and agreement as JSON"),
                  ) -> None:
        from ..errors import InputError
        from ..feedback.accounts import NAME_RE
        from ..feedback.judge import judge_batch, load_rubric
        from ..feedback.store import Store
        from ..models.load import DTYPES
        from ..models.reward import SIDECAR

        if (model is None) == (endpoint is None):
            raise InputError("give exactly one judge: --model PATH|HUB_ID|FILE.gguf or --endpoint URL")
        if not NAME_RE.match(name):
            raise InputError(f"judge names are 1-64 letters, digits or _ . @ : -, got {name!r}", field="name")
        if dtype not in DTYPES:
            raise InputError(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16)", field="dtype")
        reward_model = model is not None and (Path(model) / SIDECAR).is_file()
        if reward_model and rubric is not None:
            raise InputError("a reward model judges by the verdict it was trained with; --rubric is for a chat "
                             "model or endpoint judge", field="rubric")
        the_rubric = load_rubric(rubric)
        store = Store.open(db)
        info = store.get_batch(batch)  # unknown batch: fail before loading a model
        existing = store.get_user(name)
        if existing is not None and existing.kind != "ai":
            raise InputError(f"user {name!r} exists and is of kind {existing.kind!r}, not 'ai'; pick another "
                             "--name", field="name")
        finished = (existing is not None and len(store.assignments(existing.id, batch)) == info.items
                    and not store.pending(existing.id, batch, limit=1))
        if finished:  # nothing left to judge: only report
            summary = {"judge": f"ai:{name}", "prompts judged": 0, "already labeled": info.items}
            _report(store, batch, name, summary, f"judge {batch}", as_json)
            return
        if endpoint:
            from ..feedback.judge.endpoint import EndpointBackend

            key = api_key or os.environ.get("OPENAI_API_KEY")
            backend = EndpointBackend(endpoint, model=api_model, api_key=key, timeout=timeout, retries=retries,
                                      concurrency=concurrency)
            backend.check()  # unreachable or wrong model: fail before anything is stored
        elif reward_model:
            from ..feedback.judge.reward_judge import RewardModelJudge

            backend = RewardModelJudge.load(model, dtype=dtype, device=device, batch_size=batch_size)
        else:
            from ..feedback.judge.local import LocalBackend

            backend = LocalBackend.load(model, dtype=dtype, device=device, batch_size=batch_size)

        def progress(done: int, total: int) -> None:
            if not as_json:
                typer.echo(f"judged {done}/{total} prompts", err=True)

        summary = judge_batch(store, batch, backend, rubric=the_rubric, name=name, criteria=criteria,
                              limit=limit, margin=tie_margin, progress=progress)
        _report(store, batch, name, summary, f"judge {batch} ({backend.name})", as_json)


def _report(store, batch: str, name: str, summary: dict, title: str, as_json: bool) -> None:
    from ..feedback.judge import judge_agreement
    from ..feedback.judge.compare import format_rows

    rows = judge_agreement(store.labels([batch]), name)
    if as_json:
        typer.echo(json.dumps({"summary": summary, "agreement": rows}, indent=2))
        return
    print_summary(title, summary)
    if rows:
        typer.echo(f"agreement of ai:{name} with the other labelers of {batch}:")
        for line in format_rows(rows):
            typer.echo(line)
