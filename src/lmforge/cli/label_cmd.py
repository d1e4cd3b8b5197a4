"""``lmforge label ...``: the feedback database, the labeling web app, import and export."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from ..feedback.modes import DEFAULT_MODE, MODE_HELP
from .common import print_summary

PASSWORD_RULE = "at least 8 characters"

DB = typer.Option(None, "--db", envvar="LMFORGE_DB", show_default=False,
                  help="SQLite file, a folder (FOLDER/feedback.db) or a URL such as "
                       "postgresql+psycopg://user:pw@host/db  \\[default: runs/feedback]")

EXPORT_HELP = "\n\n".join([
    "Export labels as preference data (lmforge.data.preference): lmforge rm reads it as it is.",
    "Rules:",
    "- ranking: one record per label, as the labeler ordered the K responses; source is <kind>:<labeler> "
    "(human:ana, ai:judge, simulated:sim-1).",
    "- pair: the consensus of a prompt's labelers by mean rank (Borda). Every two responses whose mean ranks "
    "differ make a pair, the better one chosen; margin = difference in mean rank; meta.agreement = share of "
    "labelers who put chosen above rejected. Tied mean ranks are skipped and counted, as are pairs below "
    "--min-agreement and pairs of identical texts.",
    "- likert: per response, the median score per criterion over its labelers (scale 1-7), and the median "
    "overall score in rank+overall batches.",
    "- binary: per response, bad if any labeler flagged it unsafe, else (good-bad batches) the majority verdict, "
    "else good when its median overall score, or the mean of its five criterion medians, is at least "
    "--good-threshold; responses nobody scored, judged or flagged are left out. Good-bad batches make "
    "binary records only.",
    "- rewrite: a labeler's better answer becomes a pair, chosen over that labeler's best-ranked original.",
])


def _store(db: str | None):
    from ..feedback.store import Store

    return Store.open(db)


def _loop_views(folders: list[Path], store) -> list:
    """A :class:`~lmforge.loop.status.LoopView` per ``--loop`` folder, each checked to use the served database
    (its rounds' batches and people's progress are read from it)."""
    from sqlalchemy.engine import make_url

    from ..errors import InputError
    from ..loop.status import LoopView

    views = [LoopView(folder) for folder in folders]
    for view in views:
        url = make_url(view.database_url())
        if url != store.engine.url:
            raise InputError(f"the loop in {view.out} uses the database {url.render_as_string(hide_password=True)}"
                             f", not the one served ({_where(store)}): serve that one with --db", field="--loop")
    return views


def _where(store) -> str:
    return store.engine.url.render_as_string(hide_password=True)


def _new_password(name: str, given: str | None) -> str:
    """``given``, or asked for twice without echo; checked against the rule either way."""
    from ..feedback.accounts import check_password

    pw = given if given is not None else typer.prompt(f"password for {name}", hide_input=True,
                                                      confirmation_prompt=True)
    check_password(pw)
    return pw


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def register(app: typer.Typer) -> None:
    label = typer.Typer(no_args_is_help=True, help="Human feedback: labeling database, web app, import/export.")
    app.add_typer(label, name="label")

    @label.command("init")
    def init_cmd(db: str | None = DB,
                 admin: str | None = typer.Option(None, "--admin", help="also create this admin user"),
                 password: str | None = typer.Option(None, "--password", envvar="LMFORGE_PASSWORD",
                                                        help=f"the admin's password ({PASSWORD_RULE}; asked for "
                                                             "when not given)")
                 ) -> None:
        """Create or upgrade the feedback database (Alembic migrations), optionally with an admin user."""
        from ..feedback.accounts import check_new_user
        from ..feedback.migrate import head_revision

        pw = None
        if admin:  # the user is checked before the database is created: a refused one leaves no file
            check_new_user(admin, role="admin")
            pw = _new_password(admin, password)
        store = _store(db)
        if admin:
            store.create_user(admin, password=pw, role="admin")
        typer.echo(f"feedback database ready at {_where(store)} (schema {head_revision()})")

    @label.command("passwd")
    def passwd_cmd(name: str = typer.Argument(..., help="user name"), db: str | None = DB,
                   password: str | None = typer.Option(None, "--password", envvar="LMFORGE_PASSWORD",
                                                          help=f"the new password ({PASSWORD_RULE}; asked for "
                                                               "when not given)")) -> None:
        """Set a user's password; the user's open web sessions end (they log in again)."""
        pw = _new_password(name, password)
        _store(db).set_password(name, pw)
        typer.echo(f"password of {name} changed; their sessions are closed")

    @label.command("add-user")
    def add_user_cmd(name: str = typer.Argument(..., help="user name"), db: str | None = DB,
                     role: str = typer.Option("labeler", help="labeler or admin"),
                     kind: str = typer.Option("human", help="human, ai, simulated or imported"),
                     password: str | None = typer.Option(None, "--password", envvar="LMFORGE_PASSWORD",
                                                            help=f"{PASSWORD_RULE}; asked for when not given "
                                                                 "(humans only)")) -> None:
        """Create a labeler or admin (humans log in with a password; ai/simulated users do not)."""
        pw = password
        if kind == "human" and pw is None:
            pw = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
        user = _store(db).create_user(name, password=pw, role=role, kind=kind)
        typer.echo(f"created {user.kind} {user.role} {user.name}")

    @label.command("add-batch")
    def add_batch_cmd(source: str = typer.Argument(..., help="batch.jsonl, or a 'lmforge generate' run folder"),
                      db: str | None = DB,
                      name: str | None = typer.Option(None, help="batch name \\[default: the run folder's name]"),
                      mode: str = typer.Option(DEFAULT_MODE, "--mode", help=MODE_HELP)) -> None:
        """Load a labeling batch (prompts with K responses each) into the database.

        --mode chooses what the labeling page asks for and requires, e.g. --mode rank to only rank the responses.
        """
        from pathlib import Path

        from ..feedback.batchfile import batch_path, read_batch

        path = batch_path(source)
        items = list(read_batch(path))
        batch = name or (path.parent.name if path.name == "batch.jsonl" else path.stem)
        info = _store(db).add_batch(batch, items, source=str(Path(source)), mode=mode)
        typer.echo(f"batch {info.name}: {info.items} prompts, {info.responses} responses (mode {info.mode})")

    @label.command("assign")
    def assign_cmd(batch: str = typer.Argument(..., help="batch name"), db: str | None = DB,
                   per_item: int = typer.Option(1, "--per-item", "-n", help="labelers per prompt"),
                   labelers: str | None = typer.Option(None, help="comma-separated user names "
                                                          "\\[default: every active human labeler]")) -> None:
        """Give each prompt of a batch to N labelers (least loaded first; re-running adds only what is missing)."""
        created = _store(db).assign(batch, per_item, _csv(labelers))
        typer.echo(f"{created} new assignment(s)")

    @label.command("serve")
    def serve_cmd(db: str | None = DB, host: str = typer.Option("127.0.0.1", help="address to listen on"),
                  port: int = typer.Option(8000, help="port"),
                  secure_cookies: bool = typer.Option(False, "--secure-cookies",
                                                      help="mark cookies Secure (serve behind HTTPS)"),
                  session_hours: float = typer.Option(12.0, help="how long a login lasts"),
                  redteam_endpoint: str | None = typer.Option(
                      None, "--redteam-endpoint", help="an OpenAI-compatible server (e.g. lmforge serve MODEL) "
                      "that the red-team page attacks \\[default: the page says it is not configured]"),
                  redteam_model: str | None = typer.Option(None, "--redteam-model",
                                                           help="the model to ask there \\[default: the only "
                                                                "one it serves]"),
                  redteam_api_key: str | None = typer.Option(None, "--redteam-api-key",
                                                             envvar="LMFORGE_REDTEAM_API_KEY",
                                                             help="bearer token for that server"),
                  redteam_max_tokens: int = typer.Option(256, "--redteam-max-tokens",
                                                         help="the longest answer asked for"),
                  loop: list[Path] = typer.Option([], "--loop", help="a feedback loop's folder (lmforge loop's "
                                                  "out) using this database: the admin page shows its rounds, "
                                                  "what each waits for and its report (repeatable)")) -> None:
        """Run the labeling web app (labelers rank and score, and red-team a model with --redteam-endpoint;
        admins manage users, batches, assignments)."""
        import uvicorn

        from ..feedback.webapp import create_app

        target = None
        if redteam_endpoint:
            from ..feedback.judge.endpoint import EndpointBackend
            from ..feedback.webapp.redteam import RedteamTarget

            target = RedteamTarget(EndpointBackend(redteam_endpoint, model=redteam_model, api_key=redteam_api_key,
                                                   timeout=120.0, retries=1, role="model",
                                                   flags=("--redteam-model", "--redteam-api-key")),
                                   max_tokens=redteam_max_tokens)
        store = _store(db)
        loops = _loop_views(loop, store)
        if not any(u.is_admin for u in store.users()):
            typer.echo("note: no admin yet; create one with: lmforge label add-user NAME --role admin", err=True)
        typer.echo(f"labeling app for {_where(store)} on http://{host}:{port}/")
        if target:
            typer.echo(f"red-team page attacks {target.backend.name}")
        for view in loops:
            typer.echo(f"admin page shows the loop in {view.out}")
        uvicorn.run(create_app(store, secure_cookies=secure_cookies, session_hours=session_hours,
                               redteam_target=target, loops=loops), host=host, port=port, log_level="info")

    @label.command("simulate")
    def simulate_cmd(batch: str = typer.Argument(..., help="a batch of built-in-world prompts"),
                     db: str | None = DB, labelers: int = typer.Option(3, help="simulated labelers"),
                     per_item: int | None = typer.Option(None, "--per-item", help="\\[default: all of them]"),
                     noise: float = typer.Option(0.0, help="the simulated labelers' noise"),
                     seed: int = typer.Option(0, help="labeler i uses seed + i"),
                     world_seed: int = typer.Option(0, help="the world's seed (as in generate)")) -> None:
        """Label a batch with the built-in world's simulated labeler (users sim-1..sim-N, kind simulated)."""
        from ..feedback.simulate import simulate

        counts = simulate(_store(db), batch, labelers=labelers, per_item=per_item, noise=noise, seed=seed,
                          world_seed=world_seed)
        print_summary(f"simulate {batch}", counts)

    @label.command("export", help=EXPORT_HELP)
    def export_cmd(batches: list[str] | None = typer.Argument(None, help="batch names \\[default: all]"),
                   db: str | None = DB,
                   out: str = typer.Option(..., "--out", "-o", help="output .jsonl file (or folder for --format hf)"),
                   fmt: str = typer.Option("jsonl", "--format", help="jsonl, or hf (a saved dataset per type)"),
                   kinds: str = typer.Option("ranking,pair,likert,binary,rewrite", help="record kinds"),
                   sources: str | None = typer.Option(None, help="labeler kinds to use, e.g. human,ai "
                                                         "\\[default: all]"),
                   good_threshold: float = typer.Option(5.0, help="binary: good at or above this mean score"),
                   min_agreement: float = typer.Option(0.0, help="pair: drop pairs fewer labelers agree with")
                   ) -> None:
        from ..feedback.export import ExportRules, build_records, write_records

        store = _store(db)
        rules = ExportRules(kinds=tuple(_csv(kinds) or ()), good_threshold=good_threshold,
                            min_agreement=min_agreement)
        records, report = build_records(store.labels(batches or None, _csv(sources)), rules)
        written = write_records(records, out, fmt)
        print_summary("export", report.as_dict())
        typer.echo("wrote " + ", ".join(map(str, written)))

    @label.command("export-redteam")
    def export_redteam_cmd(db: str | None = DB,
                           out: str = typer.Option(..., "--out", "-o", help="output folder"),
                           refusal: str | None = typer.Option(None, "--refusal",
                                                              help="the answer for breaks with no \"should "
                                                                   "have said\" \\[default: lmforge redteam's]")
                           ) -> None:
        """Export the red-team attempts people marked "broke it" as lmforge redteam does its findings:
        prompts.jsonl (next round's prompts), sft.jsonl (with the person's "should have said", else the
        refusal) and pairs.jsonl (that answer chosen over the model's, source redteam:human:NAME)."""
        from pathlib import Path

        from ..feedback.redteam_attempts import export_records
        from ..redteam.run import DEFAULT_REFUSAL, export

        records = export_records(_store(db).attempts())
        counts = export(records, Path(out), default_refusal=refusal or DEFAULT_REFUSAL)
        print_summary("export-redteam", {"marked attempts": len(records),
                                         "broke it": sum(r["success"] for r in records), **counts})
        typer.echo(f"wrote {out}")

    @label.command("import")
    def import_cmd(source: str = typer.Argument(..., help=".jsonl, .jsonl.gz, .json, .parquet or a saved "
                                                "HF dataset"),
                   fmt: str = typer.Option("auto", "--format", help="auto, hh-rlhf, ultrafeedback or pairs"),
                   out: str | None = typer.Option(None, "--out", "-o", help="write preference JSONL here"),
                   batch: str | None = typer.Option(None, help="also load into the database as this batch"),
                   db: str | None = DB,
                   labeler: str | None = typer.Option(None, help="who the imported preferences are "
                                                         "attributed to \\[default: import-<format>]"),
                   limit: int | None = typer.Option(None, help="only the first N rows"),
                   seed: int = typer.Option(0, help="seed for the order responses are shown in")) -> None:
        """Import existing preference data (HH-RLHF, UltraFeedback, plain chosen/rejected).

        --out writes it as lmforge preference JSONL; --batch loads pairs and rankings into the database as a
        batch whose labels come from the user --labeler (kind imported), ready to be relabeled and compared.
        """
        from ..errors import InputError
        from ..feedback.export import write_records
        from ..feedback.importers import import_records, load_into_store

        if not out and not batch:
            raise InputError("nothing to do: give --out FILE and/or --batch NAME")
        records, counts = import_records(source, fmt, limit)
        used = next(k.split(": ", 1)[1] for k in counts if k.startswith("format: "))
        summary = {k: v for k, v in counts.items() if not k.startswith("format: ")}
        summary["records"] = len(records)
        if out:
            write_records(records, out, "jsonl")
        if batch:
            summary.update(load_into_store(_store(db), records, batch, labeler=labeler or f"import-{used}",
                                           source=source, seed=seed))
        print_summary(f"import ({used})", summary)

    @label.command("stats")
    def stats_cmd(batch: str | None = typer.Argument(None, help="batch name \\[default: all batches]"),
                  db: str | None = DB,
                  sources: str | None = typer.Option(None, help="labeler kinds to include, e.g. human,ai "
                                                        "\\[default: all]"),
                  as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Progress, throughput and agreement (Kendall's tau, Krippendorff's alpha per criterion)."""
        from ..feedback.stats import agreement, throughput

        store = _store(db)
        labels = store.labels([batch] if batch else None, _csv(sources))
        result = {"progress": [asdict(p) for p in store.progress(batch=batch)],
                  "throughput": throughput(labels), "agreement": agreement(labels)}
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        for p in result["progress"]:
            typer.echo(f"{p['batch']:<20} {p['labeler']:<16} {p['kind']:<10} {p['done']:>5} / {p['assigned']}")
        ag = result["agreement"]
        typer.echo(f"prompts with 2+ labels: {ag['prompts']}; Kendall's tau: {ag['kendall_tau']} "
                   f"({ag['tau_pairs']} pairs)")
        if ag["tau_note"]:
            typer.echo(f"  {ag['tau_note']}")
        for name, alphas in ag["alpha"].items():
            typer.echo(f"  alpha {name:<13} " + "  ".join(f"{m}={v}" for m, v in alphas.items()))
