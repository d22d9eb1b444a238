"""Contact-center metrics, kept up to date one event at a time.

Every flush of the ORM session is observed: a new inbound interaction, a work item that
enters a queue, is answered, abandoned, turned into a callback or finished, a ticket that
is resolved, a survey score, a knowledge-base question. Each event adds to one row of
``metrics_hourly`` (hour x queue x channel x language x segment) in the same transaction
as the change it counts, so counters can never disagree with what was committed.

The supervisor's live snapshot reads only the current state (waiting work items, agent
presence) plus today's counter rows; reports read counter rows for their period. Nothing
rescans interactions or tickets on refresh. Definitions: ``docs/metrics.md``.

Changes made with bulk ``UPDATE`` statements bypass the ORM and are not counted; services
change work items and tickets through the ORM. The writes made with Core, a message's
(``message_write``: intake's inbound messages, ``outbound.queue_message``'s outbound
ones) and a follow-up's new work item (``followup.add_work_item``), add their own
increments in the same statement.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import (
    OPEN_STATUSES,
    Citizen,
    Interaction,
    KBQuery,
    MetricsHourly,
    Queue,
    SurveyResponse,
    Ticket,
    User,
    WorkItem,
    ticket_reference,
    utcnow,
)

log = logging.getLogger(__name__)

DIMENSIONS = ("queue", "channel", "language", "segment")
COUNTERS = (
    "contacts", "outbound", "tickets", "escalated", "offered", "answered", "answered_in_sla",
    "wait_sum", "abandoned", "abandoned_in_sla", "callbacks", "handled", "handle_sum",
    "resolved", "resolved_first_contact", "resolution_sum", "surveys", "survey_points",
    "kb_queries", "kb_self_served",
)
WAITING_STATUSES = ("waiting", "offered")
ABANDONED = ("abandoned",)
CALLBACK = ("callback", "callback_requested", "scheduled")
SYNC_CHANNELS = ("voice", "chat", "walkin")
# Inbound lines within this long after the first answer belong to the same live contact.
SAME_CONTACT_WINDOW = timedelta(minutes=30)

Key = tuple[datetime, str, str, str, str]


def hour_of(moment: datetime | None) -> datetime:
    moment = moment or utcnow()
    return moment.replace(minute=0, second=0, microsecond=0)


def survey_points(score: int) -> int:
    """A 1-5 score on the 0-100 satisfaction index: 1 -> 0, 3 -> 50, 5 -> 100."""
    return (max(1, min(5, int(score))) - 1) * 25


class _Deltas:
    """Counter increments collected during one flush."""

    def __init__(self) -> None:
        self.rows: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, key: Key, **counts: int) -> None:
        row = self.rows[key]
        for name, value in counts.items():
            row[name] += int(value)


class _Dims:
    """Looks up a ticket's queue code, language and citizen segment once per flush."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._queues: dict[int, Queue | None] = {}
        self._segments: dict[int, str] = {}

    def queue(self, queue_id: int | None) -> Queue | None:
        if not queue_id:
            return None
        if queue_id not in self._queues:
            self._queues[queue_id] = self.session.get(Queue, queue_id)
        return self._queues[queue_id]

    def queue_code(self, queue_id: int | None) -> str:
        # Codes never change (``realtime.queue_code`` keeps them per process): most
        # flushes then need no queue row at all.
        from app import realtime

        return (realtime.queue_code(queue_id, self.session) or "") if queue_id else ""

    def segment(self, citizen_id: int | None) -> str:
        if not citizen_id:
            return ""
        if citizen_id not in self._segments:
            citizen = self.session.get(Citizen, citizen_id)
            self._segments[citizen_id] = (citizen.segment or "") if citizen else ""
        return self._segments[citizen_id]

    def ticket(self, ticket_id: int | None) -> Ticket | None:
        return self.session.get(Ticket, ticket_id) if ticket_id else None

    def for_ticket(self, hour: datetime, ticket: Ticket | None, channel: str,
                   queue_id: int | None = None, language: str | None = None) -> Key:
        if ticket is None:
            return (hour, self.queue_code(queue_id), channel, language or "", "")
        return (hour, self.queue_code(queue_id or ticket.queue_id), channel,
                language or ticket.language or "", self.segment(ticket.citizen_id))


def ticket_key(session: Session, moment: datetime, ticket: Ticket, channel: str,
               queue_id: int | None = None, language: str | None = None) -> Key:
    """The counter row of a message (or work item) on ``channel`` about ``ticket`` at
    ``moment``: for services that write with Core and count what they wrote themselves."""
    return _Dims(session).for_ticket(hour_of(moment), ticket, channel, queue_id, language)


def _seconds(later: datetime | None, earlier: datetime | None) -> int:
    if later is None or earlier is None:
        return 0
    return max(0, int((later - earlier).total_seconds()))


def _changed_to(obj: Any, attr: str) -> tuple[bool, Any]:
    """Whether ``attr`` got a new value in this flush (and what it was before)."""
    history = inspect(obj).attrs[attr].history
    if not history.added:
        return False, None
    before = history.deleted[0] if history.deleted else None
    return history.added[0] != before, before


# --- events -----------------------------------------------------------------------------


def _on_interaction(d: _Deltas, dims: _Dims, item: Interaction) -> None:
    if item.channel == "note":
        return
    ticket = dims.ticket(item.ticket_id)
    key = dims.for_ticket(hour_of(item.created_at), ticket, item.channel)
    if item.direction == "inbound":
        d.add(key, contacts=1)
    elif item.direction == "outbound":
        d.add(key, outbound=1)


def _answered(d: _Deltas, dims: _Dims, item: WorkItem, key: Key) -> None:
    wait = _seconds(item.assigned_at, item.arrived_at)
    queue = dims.queue(item.queue_id)
    target = queue.sla_target_seconds if queue else 60
    d.add(key, answered=1, wait_sum=wait, answered_in_sla=int(wait <= target))


_WORK_ITEMS_OF_TICKET = (
    sa.select(sa.func.count()).select_from(WorkItem.__table__)
    .where(WorkItem.__table__.c.ticket_id == sa.bindparam("ticket_id")))


def _new_work_item(d: _Deltas, dims: _Dims, session: Session, item: WorkItem) -> None:
    ticket = dims.ticket(item.ticket_id)
    key = dims.for_ticket(hour_of(item.arrived_at), ticket, item.channel, item.queue_id,
                          item.language)
    d.add(key, offered=1)
    earlier = session.connection().scalar(_WORK_ITEMS_OF_TICKET, {"ticket_id": item.ticket_id})
    if (earlier or 0) <= 1:
        d.add(key, escalated=1)
    if item.assigned_at is not None:
        _answered(d, dims, item, dims.for_ticket(hour_of(item.assigned_at), ticket,
                                                 item.channel, item.queue_id, item.language))


def _changed_work_item(d: _Deltas, dims: _Dims, item: WorkItem) -> None:
    # The ticket is read only for a change that counts: a routing step changes every item
    # it takes in (queued, offered) and counts none of those.
    def key(moment):
        return dims.for_ticket(hour_of(moment), dims.ticket(item.ticket_id), item.channel,
                               item.queue_id, item.language)

    assigned, before = _changed_to(item, "assigned_at")
    if assigned and before is None and item.assigned_at is not None:
        _answered(d, dims, item, key(item.assigned_at))
    status_changed, _ = _changed_to(item, "status")
    outcome_changed, _ = _changed_to(item, "outcome")
    if status_changed or outcome_changed:
        state = {item.status, item.outcome}
        if state & set(ABANDONED) and item.assigned_at is None:
            queue = dims.queue(item.queue_id)
            wait = _seconds(item.ended_at or utcnow(), item.arrived_at)
            target = queue.sla_target_seconds if queue else 60
            d.add(key(item.ended_at), abandoned=1, abandoned_in_sla=int(wait <= target))
        elif state & set(CALLBACK) and item.assigned_at is None:
            d.add(key(item.ended_at), callbacks=1)
    ended, before = _changed_to(item, "ended_at")
    if ended and before is None and item.ended_at is not None and item.assigned_at is not None:
        d.add(key(item.ended_at), handled=1,
              handle_sum=_seconds(item.ended_at, item.assigned_at))


def _first_contact(session: Session, ticket: Ticket) -> bool:
    """Resolved without the resident having to come back (see docs/metrics.md)."""
    t = Interaction.__table__
    if ticket.first_response_at is None:
        return True
    after = ticket.first_response_at
    if ticket.channel in SYNC_CHANNELS:
        after = after + SAME_CONTACT_WINDOW
    later = session.connection().scalar(
        sa.select(sa.func.count()).select_from(t).where(
            t.c.ticket_id == ticket.id, t.c.direction == "inbound", t.c.created_at > after))
    return not later


def _on_ticket(d: _Deltas, dims: _Dims, session: Session, ticket: Ticket, new: bool) -> None:
    if new:
        d.add(dims.for_ticket(hour_of(ticket.created_at), ticket, ticket.channel), tickets=1)
    changed, before = _changed_to(ticket, "status")
    if getattr(ticket, "_metrics_skip_resolution", False):
        if changed and ticket.disposition == "survey_reply" and before == "new":
            # A survey score that intake first took for a new case: not a case, not a contact.
            d.add(dims.for_ticket(hour_of(ticket.created_at), ticket, ticket.channel),
                  tickets=-1, contacts=-1)
        return
    if (changed or new) and ticket.status in ("resolved", "closed") and (
            new or before in OPEN_STATUSES or before is None):
        at = ticket.resolved_at or utcnow()
        d.add(dims.for_ticket(hour_of(at), ticket, ticket.channel), resolved=1,
              resolution_sum=_seconds(at, ticket.created_at),
              resolved_first_contact=int(_first_contact(session, ticket)))


def _on_survey(d: _Deltas, dims: _Dims, survey: SurveyResponse) -> None:
    ticket = dims.ticket(survey.ticket_id)
    channel = ticket.channel if ticket else survey.channel
    d.add(dims.for_ticket(hour_of(survey.created_at), ticket, channel), surveys=1,
          survey_points=survey_points(survey.score))


def _on_kb_query(d: _Deltas, query: KBQuery) -> None:
    d.add((hour_of(query.created_at), "", query.channel, query.language or "", ""),
          kb_queries=1, kb_self_served=int(bool(query.self_served)))


def collect(session: Session) -> _Deltas:
    """The counter increments that the pending changes of ``session`` amount to."""
    d = _Deltas()
    dims = _Dims(session)
    for obj in list(session.new):
        if isinstance(obj, Interaction):
            _on_interaction(d, dims, obj)
        elif isinstance(obj, WorkItem):
            _new_work_item(d, dims, session, obj)
        elif isinstance(obj, Ticket):
            _on_ticket(d, dims, session, obj, new=True)
        elif isinstance(obj, SurveyResponse):
            _on_survey(d, dims, obj)
        elif isinstance(obj, KBQuery):
            _on_kb_query(d, obj)
    for obj in list(session.dirty):
        if isinstance(obj, WorkItem):
            _changed_work_item(d, dims, obj)
        elif isinstance(obj, Ticket):
            _on_ticket(d, dims, session, obj, new=False)
    return d


_UPSERT: Any = None
# Rows per counter key. Every contact of an hour and channel adds to the same key; with
# one row per key, concurrent transactions would queue on its row lock until each one
# commits. A transaction picks one shard at random; readers sum over shards.
SHARDS = 16


def shard() -> int:
    return random.randrange(SHARDS)


KEY_COLUMNS = ("hour", *DIMENSIONS, "shard")  # a counter row's key (its unique constraint)


def upsert_sql(counters: tuple[str, ...], rows: str) -> str:
    """SQL that adds ``counters`` to their rows: ``rows`` is the VALUES list, each row the
    ``KEY_COLUMNS`` then the counters. For this module's upsert and for the Core writes
    that count what they write in the same statement (``message_write``,
    ``followup.add_work_item``)."""
    table = MetricsHourly.__tablename__
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in counters)
    return (f"INSERT INTO {table} ({', '.join(KEY_COLUMNS + counters)}) VALUES {rows} "
            f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET {updates}")


def _upsert_statement():
    """One upsert that adds every counter (zeros add nothing).

    Written as SQL text that PostgreSQL and SQLite both accept: a dialect ``insert(...)
    .on_conflict_do_update`` is not cacheable in SQLAlchemy and was compiled again on
    every commit; a text statement compiles once per process.
    """
    global _UPSERT
    if _UPSERT is None:
        values = ", ".join(f":{name}" for name in KEY_COLUMNS + COUNTERS)
        _UPSERT = sa.text(upsert_sql(COUNTERS, f"({values})")).bindparams(
            sa.bindparam("hour", type_=MetricsHourly.__table__.c.hour.type))
    return _UPSERT


def apply(connection: sa.Connection, deltas: dict[Key, dict[str, int]]) -> None:
    """Add increments to their rows: one upsert per touched row, all in one shard picked
    for this transaction, in a stable order so two transactions never lock the same rows
    in opposite orders."""
    rows = []
    part = shard()
    for (hour, queue, channel, language, segment), counts in sorted(deltas.items()):
        if not any(counts.values()):
            continue
        rows.append({"hour": hour, "queue": queue[:50], "channel": channel[:10],
                     "language": language[:10], "segment": segment[:50], "shard": part,
                     **{name: counts.get(name, 0) for name in COUNTERS}})
    if rows:
        # One call for all rows: the driver sends them in one pipeline (one round trip).
        connection.execute(_upsert_statement(), rows)


_PENDING = "civicline_metric_deltas"


def _after_flush(session: Session, _flush_context) -> None:
    """Count what this flush changed; the increments are written once, at commit."""
    if not (session.new or session.dirty):
        return
    try:
        deltas = collect(session)
    except Exception:  # noqa: BLE001 - metrics must never block the work they count
        log.warning("metrics: could not count a change", exc_info=True)
        return
    if deltas.rows:
        pending = session.info.setdefault(_PENDING, defaultdict(lambda: defaultdict(int)))
        for key, counts in deltas.rows.items():
            row = pending[key]
            for name, value in counts.items():
                row[name] += value


def _before_commit(session: Session) -> None:
    """Write the transaction's increments last, just before it commits.

    Still one transaction with the changes they count, but the counter rows (shared by
    every contact of the same hour and channel) are locked only for the commit itself,
    not for the whole of each intake, so concurrent webhooks do not queue on them.
    """
    if session.new or session.dirty or session.deleted:
        session.flush()
    pending = session.info.pop(_PENDING, None)
    if pending:
        apply(session.connection(), pending)


def _discard(session: Session, *_args) -> None:
    session.info.pop(_PENDING, None)


_installed = False


def install() -> None:
    """Start counting: listen to every ORM flush and commit (once per process)."""
    global _installed
    if not _installed:
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_rollback", _discard)
        _installed = True


# --- reading ----------------------------------------------------------------------------


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return round(num * scale / den, 1) if den else None


def derive(row: dict[str, Any]) -> dict[str, Any]:
    """Add the derived metrics to a row of summed counters."""
    answered, abandoned = row.get("answered", 0), row.get("abandoned", 0)
    row["asa_seconds"] = _ratio(row.get("wait_sum", 0), answered)
    row["service_level_pct"] = _ratio(row.get("answered_in_sla", 0) * 100,
                                      answered + abandoned - row.get("abandoned_in_sla", 0))
    row["abandonment_pct"] = _ratio(abandoned * 100, answered + abandoned)
    row["aht_seconds"] = _ratio(row.get("handle_sum", 0), row.get("handled", 0))
    row["sla_breaches_closed"] = (answered - row.get("answered_in_sla", 0)
                                  + abandoned - row.get("abandoned_in_sla", 0))
    return row


_SUMS: dict[tuple, Any] = {}


def _sums_statement(by: tuple[str, ...], counters: tuple[str, ...], bounded: bool):
    """Built once per shape: building and caching a statement of twenty sums costs more
    than running it."""
    key = (by, counters, bounded)
    if key not in _SUMS:
        table = MetricsHourly.__table__
        cols = [table.c[name] for name in by]
        stmt = sa.select(*cols, *[sa.func.coalesce(sa.func.sum(table.c[c]), 0).label(c)
                                  for c in counters]).where(
            table.c.hour >= sa.bindparam("since", type_=table.c.hour.type))
        if bounded:
            stmt = stmt.where(table.c.hour < sa.bindparam("until", type_=table.c.hour.type))
        if cols:
            stmt = stmt.group_by(*cols)
        _SUMS[key] = stmt
    return _SUMS[key]


def sums(since: datetime, until: datetime | None = None, by: tuple[str, ...] = (),
         counters: tuple[str, ...] = COUNTERS) -> list[dict[str, Any]]:
    """Counters summed over ``[since, until)``, grouped by the given dimensions."""
    stmt = _sums_statement(tuple(by), tuple(counters), until is not None)
    params = {"since": since} if until is None else {"since": since, "until": until}
    return [{k: (int(v) if k in counters else v) for k, v in row._mapping.items()}
            for row in db.session.execute(stmt, params)]


def _presence_counts() -> dict[str, int]:
    rows = db.session.execute(sa.select(User.presence, sa.func.count())
                              .where(User.active.is_(True)).group_by(User.presence))
    return {presence: n for presence, n in rows}


def live_agents(now: datetime) -> list[dict[str, Any]]:
    """Who is on what, for how long (signed-in agents only)."""
    agents = db.session.execute(
        sa.select(User.id, User.name, User.email, User.role, User.presence,
                  User.presence_since)
        .where(User.active.is_(True), User.presence != "offline")
        .order_by(User.name).limit(500)).all()
    work = db.session.execute(
        sa.select(WorkItem.agent_id, WorkItem.ticket_id, WorkItem.channel, WorkItem.assigned_at,
                  Ticket.created_at)
        .join(Ticket, Ticket.id == WorkItem.ticket_id)
        .where(WorkItem.status == "assigned", WorkItem.agent_id.in_([a.id for a in agents]))
    ).all() if agents else []
    by_agent: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for agent_id, ticket_id, channel, assigned_at, created in work:
        by_agent[agent_id].append({"ticket_id": ticket_id,
                                   "reference": ticket_reference(ticket_id, created.year),
                                   "channel": channel,
                                   "seconds": _seconds(now, assigned_at)})
    return [{"id": a.id, "name": a.name or a.email, "role": a.role, "presence": a.presence,
             "presence_seconds": _seconds(now, a.presence_since),
             "work": by_agent.get(a.id, [])} for a in agents]


def _live_rows(waiting, today, sla_by_code, dim: str) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for item in today:
        name = item[dim] or "(none)"
        row = rows.setdefault(name, {dim: name, **{c: 0 for c in COUNTERS}})
        for c in COUNTERS:
            row[c] += item[c]
    for name in waiting:
        rows.setdefault(name, {dim: name, **{c: 0 for c in COUNTERS}})
    result = []
    for name, row in sorted(rows.items()):
        info = waiting.get(name, {"waiting": 0, "longest_wait_seconds": 0, "breaching": 0})
        derive(row)
        row.update(info)
        row["sla_breaches"] = row["sla_breaches_closed"] + info["breaching"]
        if dim == "queue":
            row["sla_target_seconds"] = sla_by_code.get(name)
        result.append({k: row[k] for k in LIVE_FIELDS if k in row} | {dim: name})
    return result


LIVE_FIELDS = ("waiting", "longest_wait_seconds", "offered", "answered", "asa_seconds",
               "service_level_pct", "abandoned", "abandonment_pct", "callbacks",
               "aht_seconds", "sla_breaches", "sla_target_seconds", "contacts")


def live_snapshot(now: datetime | None = None) -> dict[str, Any]:
    """What the supervisor dashboard shows, per queue and per channel, for today (UTC)."""
    now = now or utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    queues = db.session.execute(sa.select(Queue.id, Queue.code, Queue.sla_target_seconds)
                                .where(Queue.active.is_(True))).all()
    code_by_id = {q.id: q.code for q in queues}
    sla_by_code = {q.code: q.sla_target_seconds for q in queues}
    # Waiting work is summed by the database per queue and channel, so a refresh costs the
    # same with ten or ten thousand residents waiting. A wait breaches when its whole
    # seconds exceed the queue's target: arrived at or before now - (target + 1) s.
    default = now - timedelta(seconds=61)  # an inactive queue: the 60 s default target
    cutoffs = {q.id: now - timedelta(seconds=q.sla_target_seconds + 1) for q in queues}
    cutoff = (sa.case(cutoffs, value=WorkItem.queue_id, else_=default) if cutoffs
              else sa.literal(default))
    waiting_groups = db.session.execute(
        sa.select(WorkItem.queue_id, WorkItem.channel, sa.func.count(),
                  sa.func.min(WorkItem.arrived_at),
                  sa.func.sum(sa.case((WorkItem.arrived_at <= cutoff, 1), else_=0)))
        .where(WorkItem.status.in_(WAITING_STATUSES))
        .group_by(WorkItem.queue_id, WorkItem.channel)).all()
    waiting: dict[str, dict[str, dict[str, int]]] = {"queue": {}, "channel": {}}
    waiting_count, longest = 0, 0
    for queue_id, channel, count, first_arrived, late in waiting_groups:
        code = code_by_id.get(queue_id, "")
        wait = _seconds(now, first_arrived)
        waiting_count += count
        longest = max(longest, wait)
        for dim, name in (("queue", code or "(none)"), ("channel", channel)):
            info = waiting[dim].setdefault(name, {"waiting": 0, "longest_wait_seconds": 0,
                                                  "breaching": 0})
            info["waiting"] += count
            info["longest_wait_seconds"] = max(info["longest_wait_seconds"], wait)
            info["breaching"] += int(late or 0)
    today = sums(day, by=("queue", "channel"))
    presence = _presence_counts()
    agents = live_agents(now)
    staffed = [a for a in agents if a["presence"] in ("available", "busy", "wrap_up")]
    working = [a for a in staffed if a["work"] or a["presence"] in ("busy", "wrap_up")]
    overdue = db.session.scalar(
        sa.select(sa.func.count()).select_from(Ticket)
        .where(Ticket.status.in_(OPEN_STATUSES), Ticket.sla_due_at < now)) or 0
    totals = derive({c: sum(r[c] for r in today) for c in COUNTERS})
    return {
        "at": now.isoformat() + "Z",
        "since": day.isoformat() + "Z",
        "queues": [r for r in _live_rows(waiting["queue"], today, sla_by_code, "queue")
                   if r["queue"] != "(none)" or r["waiting"] or r["offered"]],
        "channels": [r for r in _live_rows(waiting["channel"], today, sla_by_code, "channel")
                     if r["channel"] not in ("(none)", "note")],
        "totals": {
            "waiting": waiting_count,
            "longest_wait_seconds": longest,
            "contacts": totals["contacts"], "answered": totals["answered"],
            "asa_seconds": totals["asa_seconds"],
            "service_level_pct": totals["service_level_pct"],
            "abandoned": totals["abandoned"], "abandonment_pct": totals["abandonment_pct"],
            "callbacks": totals["callbacks"], "aht_seconds": totals["aht_seconds"],
            "sla_breaches": totals["sla_breaches_closed"]
            + sum(i["breaching"] for i in waiting["queue"].values()),
            "tickets_past_due": overdue,
        },
        "presence": {p: presence.get(p, 0) for p in
                     ("available", "busy", "wrap_up", "away", "offline")},
        "occupancy_pct": _ratio(len(working) * 100, len(staffed)),
        "agents": agents,
    }


class _SharedSnapshot:
    """The last live snapshot of one app in this process, and the lock that makes
    concurrent refreshes wait for the computation in progress instead of repeating it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # cooperative under gevent (patched)
        self.taken = float("-inf")
        self.value: dict[str, Any] | None = None


def shared_snapshot() -> dict[str, Any]:
    """``live_snapshot``, computed at most once per ``SUPERVISOR_SNAPSHOT_MAX_AGE``
    seconds in this process: every supervisor and wallboard refreshing in that time gets
    the same one (its ``at`` says when it was taken). Its figures are for today and change
    by a contact at a time, so a second's age is not seen on a dashboard, while a room of
    screens polling at once cost one computation instead of one each. Read-only: the same
    dict goes to every caller."""
    from flask import current_app

    max_age = float(current_app.config.get("SUPERVISOR_SNAPSHOT_MAX_AGE", 1.0))
    if max_age <= 0:
        return live_snapshot()
    shared = current_app.extensions.get("civicline_snapshot")
    if shared is None:
        shared = current_app.extensions.setdefault("civicline_snapshot", _SharedSnapshot())
    if time.monotonic() - shared.taken < max_age:
        return shared.value
    with shared.lock:
        if time.monotonic() - shared.taken >= max_age:  # nobody refreshed it meanwhile
            shared.value = live_snapshot()
            shared.taken = time.monotonic()
        return shared.value


# --- reports ----------------------------------------------------------------------------

REPORTS = {
    "volume": "Contacts by channel, hour of day and day",
    "fcr": "First-contact resolution by queue and channel",
    "satisfaction": "Satisfaction index (0-100) by channel and queue",
    "deflection": "Self-service deflection rate by channel",
    "equity": "Equal service: wait and resolution by channel, language and segment",
}
# A group is flagged when it is this much worse than everyone (and has enough contacts).
GAP_THRESHOLD_PCT = 25.0
GAP_MIN_SAMPLE = 5


def _volume(since, until) -> dict[str, Any]:
    rows = sums(since, until, by=("hour", "channel"), counters=("contacts",))
    by_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_hour: dict[int, dict[str, int]] = {h: defaultdict(int) for h in range(24)}
    channels: dict[str, int] = defaultdict(int)
    for row in rows:
        if not row["channel"] or row["channel"] == "note" or not row["contacts"]:
            continue
        hour: datetime = row["hour"]
        by_day[hour.date().isoformat()][row["channel"]] += row["contacts"]
        by_hour[hour.hour][row["channel"]] += row["contacts"]
        channels[row["channel"]] += row["contacts"]
    names = sorted(channels)
    table = [{"day": day, "channel": ch, "contacts": n}
             for day, counts in sorted(by_day.items()) for ch, n in sorted(counts.items())]
    return {"columns": ["day", "channel", "contacts"], "rows": table, "channels": names,
            "by_channel": dict(sorted(channels.items())),
            "by_hour": [{"hour": h, **{c: by_hour[h].get(c, 0) for c in names}}
                        for h in range(24)],
            "by_day": [{"day": d, **{c: v.get(c, 0) for c in names}}
                       for d, v in sorted(by_day.items())]}


def _fcr(since, until) -> dict[str, Any]:
    rows = []
    for row in sums(since, until, by=("queue", "channel"),
                    counters=("resolved", "resolved_first_contact")):
        if row["resolved"]:
            rows.append({"queue": row["queue"] or "(none)", "channel": row["channel"],
                         "resolved": row["resolved"],
                         "resolved_first_contact": row["resolved_first_contact"],
                         "fcr_pct": _ratio(row["resolved_first_contact"] * 100,
                                           row["resolved"])})
    total = sum(r["resolved"] for r in rows)
    first = sum(r["resolved_first_contact"] for r in rows)
    return {"columns": ["queue", "channel", "resolved", "resolved_first_contact", "fcr_pct"],
            "rows": sorted(rows, key=lambda r: (r["queue"], r["channel"])),
            "total": {"resolved": total, "resolved_first_contact": first,
                      "fcr_pct": _ratio(first * 100, total)}}


def _by_each(rows: list[dict[str, Any]], dims: tuple[str, ...],
             counters: tuple[str, ...]) -> tuple[dict[str, dict[str, dict[str, int]]],
                                                 dict[str, int]]:
    """From rows grouped by several dimensions (one scan), the sums per single dimension
    and the grand total."""
    per: dict[str, dict[str, dict[str, int]]] = {d: {} for d in dims}
    total = {c: 0 for c in counters}
    for row in rows:
        for c in counters:
            total[c] += row[c]
        for d in dims:
            acc = per[d].setdefault(row[d], {c: 0 for c in counters})
            for c in counters:
                acc[c] += row[c]
    return per, total


def _satisfaction(since, until) -> dict[str, Any]:
    counters = ("surveys", "survey_points")
    per, total = _by_each(sums(since, until, by=("channel", "queue"), counters=counters),
                          ("channel", "queue"), counters)
    rows = [{"dimension": dim, "value": value or "(none)", "surveys": row["surveys"],
             "satisfaction_index": _ratio(row["survey_points"], row["surveys"])}
            for dim, groups in per.items() for value, row in groups.items() if row["surveys"]]
    return {"columns": ["dimension", "value", "surveys", "satisfaction_index"],
            "rows": sorted(rows, key=lambda r: (r["dimension"], r["value"])),
            "total": {"surveys": total["surveys"],
                      "satisfaction_index": _ratio(total["survey_points"], total["surveys"])}}


def _deflection(since, until) -> dict[str, Any]:
    rows = []
    counters = ("tickets", "escalated", "kb_queries", "kb_self_served")
    for row in sums(since, until, by=("channel",), counters=counters):
        if not row["channel"] or not (row["tickets"] or row["kb_queries"]):
            continue
        deflected = max(0, row["tickets"] - row["escalated"])
        rows.append({"channel": row["channel"], "tickets": row["tickets"],
                     "escalated": row["escalated"], "deflected": deflected,
                     "deflection_pct": _ratio(deflected * 100, row["tickets"]),
                     "kb_queries": row["kb_queries"],
                     "kb_self_served": row["kb_self_served"]})
    tickets = sum(r["tickets"] for r in rows)
    deflected = sum(r["deflected"] for r in rows)
    return {"columns": ["channel", "tickets", "escalated", "deflected", "deflection_pct",
                        "kb_queries", "kb_self_served"],
            "rows": sorted(rows, key=lambda r: r["channel"]),
            "total": {"tickets": tickets, "deflected": deflected,
                      "deflection_pct": _ratio(deflected * 100, tickets)}}


def _gap(value: float | None, overall: float | None) -> float | None:
    if value is None or not overall:
        return None
    return round((value - overall) * 100 / overall, 1)


def _equity(since, until) -> dict[str, Any]:
    counters = ("answered", "wait_sum", "resolved", "resolution_sum", "surveys",
                "survey_points")
    dims = ("channel", "language", "segment")
    per, total = _by_each(sums(since, until, by=dims, counters=counters), dims, counters)
    overall_wait = _ratio(total["wait_sum"], total["answered"])
    overall_res = _ratio(total["resolution_sum"], total["resolved"] * 3600)
    rows = []
    for dim, groups in per.items():
        for value, row in groups.items():
            if not (row["answered"] or row["resolved"]):
                continue
            wait = _ratio(row["wait_sum"], row["answered"])
            res = _ratio(row["resolution_sum"], row["resolved"] * 3600)
            wait_gap, res_gap = _gap(wait, overall_wait), _gap(res, overall_res)
            flagged = (
                (wait_gap is not None and wait_gap > GAP_THRESHOLD_PCT
                 and row["answered"] >= GAP_MIN_SAMPLE)
                or (res_gap is not None and res_gap > GAP_THRESHOLD_PCT
                    and row["resolved"] >= GAP_MIN_SAMPLE))
            rows.append({"dimension": dim, "value": value or "(unknown)",
                         "answered": row["answered"], "avg_wait_seconds": wait,
                         "wait_gap_pct": wait_gap, "resolved": row["resolved"],
                         "avg_resolution_hours": res, "resolution_gap_pct": res_gap,
                         "satisfaction_index": _ratio(row["survey_points"], row["surveys"]),
                         "flagged": flagged})
    return {"columns": ["dimension", "value", "answered", "avg_wait_seconds", "wait_gap_pct",
                        "resolved", "avg_resolution_hours", "resolution_gap_pct",
                        "satisfaction_index", "flagged"],
            "rows": sorted(rows, key=lambda r: (r["dimension"], r["value"])),
            "overall": {"avg_wait_seconds": overall_wait, "avg_resolution_hours": overall_res},
            "gap_threshold_pct": GAP_THRESHOLD_PCT, "gap_min_sample": GAP_MIN_SAMPLE}


_BUILDERS = {"volume": _volume, "fcr": _fcr, "satisfaction": _satisfaction,
             "deflection": _deflection, "equity": _equity}


def report(name: str, since: datetime, until: datetime) -> dict[str, Any]:
    """One report over ``[since, until)`` (hours, UTC): rows for CSV plus chart series."""
    body = _BUILDERS[name](since, until)
    return {"name": name, "title": REPORTS[name], "since": since.isoformat() + "Z",
            "until": until.isoformat() + "Z", **body}
