"""The feedback store: every read and write of labeling data goes through :class:`Store`.

Humans (web app), AI judges and the simulated labeler are all just users of some ``kind`` who get assignments
and submit labels with :meth:`Store.submit_label`. A judge, for example::

    store = Store.open("runs/feedback")
    judge = store.ensure_user("judge-qwen", kind="ai")
    store.assign("batch-1", per_item=1, users=[judge.name])
    for aid in store.pending(judge.id):
        view = store.assignment_view(judge.id, aid)
        store.submit_label(judge.id, aid, LabelIn(ranking=[...], scores=[...], comment="why"))

A submission is one transaction (all of the label or none of it), checked before anything is written, and
idempotent: the same label again changes nothing; a different one for the same assignment replaces it
(``revision`` goes up). Two submissions for one assignment at once are serialised by a row lock
(PostgreSQL) or the write lock taken at ``BEGIN IMMEDIATE`` (SQLite).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..data.preference import CRITERIA
from ..errors import InputError
from .accounts import NAME_RE, Accounts, UserInfo
from .batchfile import BatchItem
from .db import (
    Assignment,
    Batch,
    Item,
    Label,
    Rating,
    Response,
    User,
    make_engine,
    resolve_url,
    utcnow,
)
from .labels import DEFAULT_MODE, LabelIn, LabelRecord, NotFound, check_mode, from_ranks
from .migrate import current_revision, head_revision, upgrade
from .redteam_attempts import RedteamAttempts
from .views import AssignmentView, BatchInfo, Progress, SubmitResult

__all__ = ["Store", "UserInfo", "BatchInfo", "AssignmentView", "Progress", "SubmitResult", "LabelIn",
           "LabelRecord", "NotFound"]


class Store(Accounts, RedteamAttempts):
    def __init__(self, engine: Engine, *, hasher: PasswordHasher | None = None):
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(write=True), expire_on_commit=False)
        self.hasher = hasher or PasswordHasher()

    @classmethod
    def open(cls, db: str | None = None, *, migrate: bool = True, hasher: PasswordHasher | None = None,
             **engine_kwargs: Any) -> Store:
        """Open ``db`` (path, folder or URL; see :func:`~lmforge.feedback.db.resolve_url`), migrating it."""
        engine = make_engine(resolve_url(db), **engine_kwargs)
        if migrate:
            upgrade(engine)
        elif current_revision(engine) != head_revision():
            raise InputError("the feedback database is not initialised or is out of date; run "
                             "'lmforge label init'", file=str(engine.url))
        return cls(engine, hasher=hasher)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as s, s.begin():
            yield s

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back on any exception."""
        with self._write() as s, s.begin():
            yield s

    # ------------------------------------------------------------------ batches

    def add_batch(self, name: str, items: Iterable[BatchItem], *, source: str | None = None,
                  meta: dict[str, Any] | None = None, mode: str = DEFAULT_MODE) -> BatchInfo:
        """Load prompts and their K responses as a new labeling batch (all of it or nothing).

        ``mode`` (one of :data:`~lmforge.feedback.labels.MODES`) is what its labelers give per prompt."""
        items = list(items)
        check_mode(mode)
        if not NAME_RE.match(name or ""):
            raise InputError(f"batch names are 1-64 letters, digits or _ . @ : -, got {name!r}", field="name")
        if not items:
            raise InputError("the batch has no items", field="items")
        first = items[0]
        try:
            with self.writing() as s:
                if s.scalar(select(Batch.id).where(Batch.name == name)) is not None:
                    raise InputError(f"batch {name!r} already exists", field="name")
                batch = Batch(name=name, model=first.model, sampling=first.sampling, source=source,
                              meta=meta or {}, mode=mode)
                s.add(batch)
                s.flush()
                rows = []
                for pos, it in enumerate(items):
                    item_meta = dict(it.meta)
                    if it.model != first.model or it.sampling != first.sampling:
                        item_meta.update(model=it.model, sampling=it.sampling)
                    item = Item(batch_id=batch.id, key=it.id, position=pos,
                                prompt=[m.model_dump() for m in it.prompt], meta=item_meta)
                    item.responses = [Response(position=j, text=r.text,
                                               meta={k: v for k, v in r.model_dump().items() if k != "text"})
                                      for j, r in enumerate(it.responses)]
                    rows.append(item)
                s.add_all(rows)
                s.flush()  # one flush: the inserts go out in a few multi-row statements
                batch_id = batch.id
        except IntegrityError:
            raise InputError(f"batch {name!r} already exists", field="name") from None
        return self.get_batch(batch_id)

    def batches(self) -> list[BatchInfo]:
        with self.reading() as s:
            return [self._batch_info(s, b) for b in s.scalars(select(Batch).order_by(Batch.id))]

    def get_batch(self, ref: str | int) -> BatchInfo:
        with self.reading() as s:
            return self._batch_info(s, self._find_batch(s, ref))

    @staticmethod
    def _find_batch(s: Session, ref: str | int) -> Batch:
        cond = Batch.id == ref if isinstance(ref, int) else Batch.name == ref
        batch = s.scalar(select(Batch).where(cond))
        if batch is None:
            names = s.scalars(select(Batch.name).order_by(Batch.id)).all()
            raise InputError(f"no batch {ref!r} (batches: {', '.join(names) or 'none yet'})", field="batch")
        return batch

    @staticmethod
    def _batch_info(s: Session, b: Batch) -> BatchInfo:
        n_items = s.scalar(select(func.count(Item.id)).where(Item.batch_id == b.id))
        n_resp = s.scalar(select(func.count(Response.id)).join(Item).where(Item.batch_id == b.id))
        n_asg = s.scalar(select(func.count(Assignment.id)).join(Item).where(Item.batch_id == b.id))
        n_lab = s.scalar(select(func.count(Label.id)).join(Assignment).join(Item).where(Item.batch_id == b.id))
        return BatchInfo(b.id, b.name, b.model, b.sampling, b.source, b.created_at, n_items, n_resp, n_asg, n_lab,
                         b.mode)

    # ------------------------------------------------------------------ assignments

    def assign(self, batch: str | int, per_item: int, users: list[str] | None = None) -> int:
        """Give every prompt of ``batch`` to ``per_item`` of the candidate ``users``.

        ``users`` defaults to every active human labeler. Existing assignments to candidates count towards
        ``per_item`` (assignments to others, e.g. an importer or a judge, do not); new work goes to the least
        loaded candidates. Returns the number of new assignments; running it again adds none.
        """
        if per_item < 1:
            raise InputError(f"per-item must be at least 1, got {per_item}", field="per_item")
        with self.writing() as s:
            b = self._find_batch(s, batch)
            if users is None:
                cands = s.scalars(select(User).where(User.active, User.kind == "human", User.role == "labeler")
                                  .order_by(User.id)).all()
            else:
                found = {u.name: u for u in s.scalars(select(User).where(User.name.in_(users)))}
                missing = [n for n in users if n not in found]
                if missing:
                    raise InputError(f"no such user(s): {', '.join(missing)}", field="users")
                cands = [found[n] for n in dict.fromkeys(users)]
            if per_item > len(cands):
                raise InputError(f"cannot give each prompt to {per_item} labelers: only {len(cands)} "
                                 f"candidate(s) ({', '.join(u.name for u in cands) or 'none'})", field="per_item")
            have: dict[int, set[int]] = defaultdict(set)
            load: dict[int, int] = defaultdict(int)
            rows = s.execute(select(Assignment.item_id, Assignment.user_id).join(Item)
                             .where(Item.batch_id == b.id)).all()
            for item_id, user_id in rows:
                have[item_id].add(user_id)
                load[user_id] += 1
            created = 0
            cand_ids = {u.id for u in cands}
            for item_id in s.scalars(select(Item.id).where(Item.batch_id == b.id).order_by(Item.position)):
                need = per_item - len(have[item_id] & cand_ids)
                free = sorted((u for u in cands if u.id not in have[item_id]), key=lambda u: (load[u.id], u.id))
                for u in free[:max(need, 0)]:
                    s.add(Assignment(item_id=item_id, user_id=u.id))
                    load[u.id] += 1
                    created += 1
            return created

    def pending(self, user_id: int, batch: str | int | None = None, limit: int | None = None) -> list[int]:
        """Ids of this user's unlabeled assignments, in batch and prompt order."""
        with self.reading() as s:
            q = (select(Assignment.id).join(Item).outerjoin(Label)
                 .where(Assignment.user_id == user_id, Label.id.is_(None))
                 .order_by(Item.batch_id, Item.position).limit(limit))
            if batch is not None:
                q = q.where(Item.batch_id == self._find_batch(s, batch).id)
            return list(s.scalars(q))

    def items(self, batch: str | int) -> list[tuple[str, list[dict[str, str]], dict[str, Any]]]:
        """(key, prompt messages, meta) of every prompt in ``batch``, in order."""
        with self.reading() as s:
            b = self._find_batch(s, batch)
            return [tuple(row) for row in s.execute(select(Item.key, Item.prompt, Item.meta)
                                                    .where(Item.batch_id == b.id).order_by(Item.position))]

    def assignments(self, user_id: int, batch: str | int) -> list[tuple[int, str, bool]]:
        """(assignment id, prompt key, labeled?) for all of this user's prompts in ``batch``, in order."""
        with self.reading() as s:
            b = self._find_batch(s, batch)
            return [(aid, key, lid is not None) for aid, key, lid in s.execute(
                select(Assignment.id, Item.key, Label.id).join(Item).outerjoin(Label)
                .where(Assignment.user_id == user_id, Item.batch_id == b.id).order_by(Item.position))]

    def assignment_view(self, user_id: int, assignment_id: int, *, mark_opened: bool = False) -> AssignmentView:
        """The prompt, responses and current label of one of this user's assignments (:class:`NotFound` else)."""
        with self.reading() as s:
            a = s.get(Assignment, assignment_id)
            if a is None or a.user_id != user_id:
                raise NotFound(f"assignment {assignment_id} does not exist or is not assigned to you",
                               field="assignment")
            item = a.item
            view = AssignmentView(a.id, item.batch.name, item.key, item.prompt, [r.text for r in item.responses],
                                  item.meta, _label_in(a.label, item) if a.label else None,
                                  a.label.revision if a.label else 0, item.batch.mode,
                                  [dict(r.meta or {}) for r in item.responses])
            opened = a.opened_at is not None
        if mark_opened and not opened:
            with self.writing() as s:
                s.query(Assignment).filter(Assignment.id == assignment_id, Assignment.opened_at.is_(None)) \
                    .update({Assignment.opened_at: utcnow()})
        return view

    def submit_label(self, user_id: int, assignment_id: int, label: LabelIn) -> SubmitResult:
        """Store ``label`` for one of this user's assignments, in one transaction (see the module doc)."""
        return self.submit_labels(user_id, [(assignment_id, label)])[0]

    def submit_labels(self, user_id: int, labels: Iterable[tuple[int, LabelIn]]) -> list[SubmitResult]:
        """Several labels of one user in one transaction: all are stored, or (on any error) none."""
        with self.writing() as s:
            results = []
            for aid, label in labels:
                results.append(self._submit(s, user_id, aid, label.normalized()))
                s.expunge_all()  # flushed already; keeps big imports linear
            return results

    @staticmethod
    def _submit(s: Session, user_id: int, assignment_id: int, label: LabelIn) -> SubmitResult:
        a = s.scalar(select(Assignment).where(Assignment.id == assignment_id).with_for_update())
        if a is None or a.user_id != user_id:
            raise NotFound(f"assignment {assignment_id} does not exist or is not assigned to you",
                           field="assignment")
        responses = a.item.responses
        label.check(len(responses), a.item.batch.mode)
        now = utcnow()
        row = a.label
        if row is not None:
            if _label_in(row, a.item) == label:
                return SubmitResult(row.id, "unchanged")
            status = "revised"
            row.ratings.clear()
            s.flush()  # the old ratings go before the new ones (same primary keys)
            row.revision += 1
            row.updated_at = now
        else:
            status = "created"
            row = Label(assignment_id=a.id, revision=1, created_at=now, updated_at=now)
            s.add(row)
        row.comment, row.rewrite = label.comment, label.rewrite
        ranks = label.ranks()
        row.ratings = [Rating(response_id=resp.id, rank=ranks[i], unsafe=bool(label.unsafe and label.unsafe[i]),
                              overall=label.overall[i] if label.overall else None,
                              good=label.good[i] if label.good else None,
                              **{c: label.scores[i][c] if label.scores else None for c in CRITERIA})
                       for i, resp in enumerate(responses)]
        s.flush()
        return SubmitResult(row.id, status)

    # ------------------------------------------------------------------ reading results

    def progress(self, *, user_id: int | None = None, batch: str | int | None = None) -> list[Progress]:
        """Assigned and done counts per (batch, labeler)."""
        with self.reading() as s:
            q = (select(Batch.name, User.name, User.kind, func.count(Assignment.id), func.count(Label.id))
                 .select_from(Assignment).join(Item).join(Batch).join(User).outerjoin(Label)
                 .group_by(Batch.id, Batch.name, User.name, User.kind).order_by(Batch.id, User.name))
            if user_id is not None:
                q = q.where(Assignment.user_id == user_id)
            if batch is not None:
                q = q.where(Batch.id == self._find_batch(s, batch).id)
            return [Progress(*row) for row in s.execute(q)]

    def labels(self, batches: Iterable[str | int] | None = None,
               kinds: Iterable[str] | None = None) -> list[LabelRecord]:
        """Every stored label (of these batches and labeler kinds), in batch, prompt and labeler order."""
        with self.reading() as s:
            where, in_batches = [], []
            if batches is not None:
                in_batches.append(Batch.id.in_([self._find_batch(s, b).id for b in batches]))
                where += in_batches
            if kinds is not None:
                where.append(User.kind.in_(list(kinds)))
            rows = s.execute(select(Label, Assignment, Item, Batch, User).select_from(Label).join(Assignment)
                             .join(Item).join(Batch).join(User).where(*where)
                             .order_by(Batch.id, Item.position, User.name)).all()
            ratings: dict[int, dict[int, Rating]] = defaultdict(dict)
            for r, pos in s.execute(select(Rating, Response.position).join(Response).join(Label).join(Assignment)
                                    .join(Item).join(Batch).join(User).where(*where)):
                ratings[r.label_id][pos] = r
            texts: dict[int, list[str]] = defaultdict(list)
            for item_id, text in s.execute(select(Response.item_id, Response.text).join(Item).join(Batch)
                                           .where(*in_batches).order_by(Response.item_id, Response.position)):
                texts[item_id].append(text)
            out = []
            for lab, a, item, b, u in rows:
                by_pos = ratings[lab.id]
                label = _decode(lab, [by_pos[i] for i in range(len(texts[item.id]))])
                out.append(LabelRecord(
                    label_id=lab.id, assignment_id=a.id, batch=b.name, item_id=item.id, item_key=item.key,
                    prompt=item.prompt, item_meta=item.meta, responses=texts[item.id], labeler=u.name,
                    labeler_kind=u.kind, ranking=label.ranking, ties=label.ties, scores=label.scores,
                    unsafe=label.unsafe, comment=lab.comment, rewrite=lab.rewrite, revision=lab.revision,
                    created_at=lab.created_at, updated_at=lab.updated_at, opened_at=a.opened_at, mode=b.mode,
                    overall=label.overall, good=label.good))
            return out


def _decode(row: Label, rated: list[Rating]) -> LabelIn:
    """A stored label (its ratings in response order) as the :class:`LabelIn` that stores it."""
    ranking, ties = from_ranks([r.rank for r in rated])
    scored = all(getattr(r, c) is not None for r in rated for c in CRITERIA)
    overall = [r.overall for r in rated] if all(r.overall is not None for r in rated) else None
    good = [r.good for r in rated] if all(r.good is not None for r in rated) else None
    return LabelIn(ranking=ranking, ties=ties, comment=row.comment, rewrite=row.rewrite,
                   scores=[{c: getattr(r, c) for c in CRITERIA} for r in rated] if scored else None,
                   unsafe=[r.unsafe for r in rated], overall=overall, good=good)


def _label_in(row: Label, item: Item) -> LabelIn:
    """A stored label, normalised (to compare with a new submission)."""
    by_resp = {r.response_id: r for r in row.ratings}
    return _decode(row, [by_resp[resp.id] for resp in item.responses]).normalized()
