"""The write of one message: everything an inbound message (intake) or an outbound one
(``outbound.queue_message``) adds, in as few round trips as the database allows.

The caller decides *what* to write (``Write``); this module writes it. On PostgreSQL the
whole write (a new citizen with contact point and profile, a new ticket or the touch of an
existing one, the interaction, its thread keys, an outbound message's outbox row and
audit entry, and the counter increments) is one statement of data-modifying CTEs, so a
webhook costs a look-up, this statement and the commit: three round trips instead of
eight, and an agent's reply one statement instead of an ORM flush of five. On SQLite,
which runs in-process and has no round trips to save, the same rows are written one
statement at a time.

Every column the models give a Python default gets it here too (``fill``), so rows
written by this module read back exactly like rows the ORM would have written.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import make_transient_to_detached

from app.extensions import db
from app.models import (
    AuditLog,
    ChannelProfile,
    Citizen,
    ContactPoint,
    Interaction,
    Outbox,
    ThreadKey,
    Ticket,
    WorkItem,
)
from app.services import metrics_service
from app.services.hotpath import Runner

_TABLES = {
    "c": Citizen.__table__,
    "p": ContactPoint.__table__,
    "pr": ChannelProfile.__table__,
    "t": Ticket.__table__,
    "i": Interaction.__table__,
    "o": Outbox.__table__,
    "a": AuditLog.__table__,
    "w": WorkItem.__table__,  # for ``fill`` (``followup.add_work_item`` writes it)
}
# Inserted without reading their ids back.
_SILENT = ("pr", "a")
_KEYS = ThreadKey.__table__
_TICKET = Ticket.__table__
# Columns filled from another CTE of the same statement: (table alias, column) -> source.
_REFERENCES = {
    ("p", "citizen_id"): "c", ("pr", "citizen_id"): "c",
    ("t", "citizen_id"): "c", ("t", "contact_point_id"): "p",
    ("i", "citizen_id"): "c", ("i", "contact_point_id"): "p", ("i", "ticket_id"): "t",
    ("o", "interaction_id"): "i",
}


@dataclass
class Write:
    """What one message adds. ``None`` ids are created by this write."""

    now: Any
    citizen: dict[str, Any] | None = None  # a new citizen's values
    point: dict[str, Any] | None = None  # a new contact point's values (with ``profile``)
    profile: dict[str, Any] | None = None
    ticket: dict[str, Any] | None = None  # a new ticket's values
    ticket_id: int | None = None  # or the existing ticket it continues
    reopen: bool = False  # the existing ticket is open again (status, resolved_at)
    answered: bool = False  # an agent's message: the ticket's first response, if none yet
    opens: bool = False  # a "new" ticket becomes "open"
    interaction: dict[str, Any] = field(default_factory=dict)
    outbox: dict[str, Any] | None = None  # an outbound message's delivery row
    audit: dict[str, Any] | None = None  # an audit entry written with it
    keys: list[tuple[str, str]] = field(default_factory=list)  # thread keys to record
    metrics: dict[tuple, dict[str, int]] = field(default_factory=dict)
    citizen_id: int | None = None
    point_id: int | None = None


@dataclass(frozen=True)
class Written:
    citizen_id: int
    point_id: int | None
    ticket_id: int
    interaction_id: int
    outbox_id: int | None = None


def _default_makers(table: sa.Table) -> dict[str, Any]:
    makers = {}
    for column in table.columns:
        default = column.default
        if column.primary_key or default is None:
            continue
        if default.is_callable:
            makers[column.name] = default.arg
        elif default.is_scalar:
            makers[column.name] = (lambda value: lambda _ctx: value)(default.arg)
    return makers


_DEFAULTS = {alias: _default_makers(table) for alias, table in _TABLES.items()}


def fill(alias: str, values: dict[str, Any]) -> dict[str, Any]:
    """The row's values with the model's Python defaults for what was not given (by
    column name; ``alias`` names the table as ``Write`` does: "i" an interaction, "o" an
    outbox row, "a" an audit entry...)."""
    row = dict(values)
    for name, make in _DEFAULTS[alias].items():
        if name not in row:
            row[name] = make(None)
    return row


@functools.cache
def _attributes(model: type) -> tuple[tuple[str, str], ...]:
    mapper = sa.inspect(model)
    return tuple((column.name, mapper.get_property_by_column(column).key)
                 for column in mapper.local_table.columns)


def loaded(model: type, values: dict[str, Any]):
    """The ORM object of a row just written with ``values`` (by column name, ``id``
    included), held by the session as if it had been read: no query, no pending change.
    Columns not given are NULL, as they were written."""
    obj = model()
    state = obj.__dict__
    for name, key in _attributes(model):
        state[key] = values.get(name)
    make_transient_to_detached(obj)
    db.session.add(obj)
    return obj


# --- PostgreSQL: one statement ------------------------------------------------------------

_PG = postgresql.dialect()
_STATEMENTS: dict[tuple, sa.TextClause] = {}


def _pg_type(column: sa.Column) -> str:
    """The column's type for a cast, without a length (a cast would silently truncate)."""
    return re.sub(r"\(\d+\)", "", column.type.compile(dialect=_PG))


_WRITTEN: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}


def _written_columns(alias: str, row: dict[str, Any]) -> tuple[str, ...]:
    """The columns a row sets (its values, the model's defaults, references); the rest
    are left to the database (NULL), as an ORM insert leaves them. Keeping statements
    short matters: the driver caches and prepares statements only up to 4 KiB.

    Remembered per set of given names: intake gives the same few shapes every time, and
    walking the table's columns for each message cost more than the rest of the write's
    Python."""
    key = (alias, tuple(row))
    names = _WRITTEN.get(key)
    if names is None:
        table = _TABLES[alias]
        names = _WRITTEN[key] = tuple(
            c.name for c in table.columns if not c.primary_key and (
                c.name in row or (alias, c.name) in _REFERENCES))
    return names


def _insert_cte(alias: str, names: tuple[str, ...], present: set[str],
                binds: list[sa.BindParameter], returning: bool = True) -> str:
    table = _TABLES[alias]
    parts = []
    for name in names:
        column = table.c[name]
        source = _REFERENCES.get((alias, name))
        if source in present:
            parts.append(f"(SELECT id FROM {source})")
            continue
        kind = column.type
        if isinstance(kind, sa.JSON):
            kind = sa.JSON(none_as_null=True)  # None is SQL NULL, as the ORM leaves it
        binds.append(sa.bindparam(f"{alias}_{name}", type_=kind))
        parts.append(f"CAST(:{alias}_{name} AS {_pg_type(column)})")
    tail = " RETURNING id" if returning else ""
    return (f"{alias} AS (INSERT INTO {table.name} ({', '.join(names)}) "
            f"SELECT {', '.join(parts)}{tail})")


def _touch_sets(touch: tuple[bool, bool, bool], now: str) -> str:
    """What continuing an existing ticket sets, besides its activity times (``now``: the
    SQL of the current time's parameter)."""
    reopen, answered, opens = touch
    sets = ""
    if reopen:
        sets += ", status = 'open', resolved_at = NULL"
    elif opens:
        sets += ", status = CASE WHEN status = 'new' THEN 'open' ELSE status END"
    if answered:
        sets += f", first_response_at = COALESCE(first_response_at, {now})"
    return sets


def _pg_statement(shape: tuple) -> sa.TextClause:
    """The statement for one shape of write, built once per shape and process."""
    if shape in _STATEMENTS:
        return _STATEMENTS[shape]
    inserts, touch, n_keys, n_metrics, counters = shape
    binds: list[sa.BindParameter] = []
    present: set[str] = set()
    ctes = []
    for alias, names in inserts:
        if alias == "i" and "t" not in present:
            binds.append(sa.bindparam("now", type_=_TICKET.c.updated_at.type))
            now = "CAST(:now AS TIMESTAMP)"
            ctes.append(f"u AS (UPDATE {_TICKET.name} SET last_activity_at = {now}, "
                        f"updated_at = {now}{_touch_sets(touch, now)} WHERE id = :t_id)")
        ctes.append(_insert_cte(alias, names, present, binds, returning=alias not in _SILENT))
        present.add(alias)
    ticket_ref = "(SELECT id FROM t)" if "t" in present else ":t_id"
    if n_keys:
        rows = ", ".join(f"(:k{n}_kind, :k{n}_key, {ticket_ref})" for n in range(n_keys))
        ctes.append(f"k AS (INSERT INTO {_KEYS.name} (kind, key, ticket_id) VALUES {rows} "
                    "ON CONFLICT (kind, key) DO UPDATE SET ticket_id = EXCLUDED.ticket_id "
                    "WHERE thread_keys.kind <> 'email')")
    if n_metrics:
        names = metrics_service.KEY_COLUMNS + counters
        rows = ", ".join(
            "(" + ", ".join(f"CAST(:m{n}_hour AS TIMESTAMP)" if c == "hour" else f":m{n}_{c}"
                            for c in names) + ")"
            for n in range(n_metrics))
        ctes.append(f"m AS ({metrics_service.upsert_sql(counters, rows)})")
        for n in range(n_metrics):
            binds.append(sa.bindparam(f"m{n}_hour", type_=sa.DateTime()))
    result = ", ".join(
        f"(SELECT id FROM {alias})" if alias in present else "NULL"
        for alias in ("c", "p", "t", "i", "o"))
    sql = "WITH " + ",\n".join(ctes) + f"\nSELECT {result}"
    statement = sa.text(sql).bindparams(*binds)
    _STATEMENTS[shape] = statement
    return statement


@functools.cache
def _params_of(alias: str, names: tuple[str, ...]) -> tuple[tuple[str, str, str | None], ...]:
    """Each written column's parameter name and the CTE its value comes from, if any."""
    return tuple((name, f"{alias}_{name}", _REFERENCES.get((alias, name))) for name in names)


def _pg_write(run: Runner, w: Write) -> Written:
    params: dict[str, Any] = {"now": w.now, "t_id": w.ticket_id}
    existing = {"c": w.citizen_id, "p": w.point_id, "t": w.ticket_id}
    inserts = []
    for alias, values in (("c", w.citizen), ("p", w.point), ("pr", w.profile),
                          ("t", w.ticket), ("i", w.interaction), ("o", w.outbox),
                          ("a", w.audit)):
        if values is None:
            continue
        row = fill(alias, values)
        names = _written_columns(alias, row)
        inserts.append((alias, names))
        for name, param, source in _params_of(alias, names):
            params[param] = existing.get(source) if source else row[name]
    for n, (kind, key) in enumerate(w.keys):
        params[f"k{n}_kind"] = kind
        params[f"k{n}_key"] = key
    counters = tuple(c for c in metrics_service.COUNTERS
                     if any(counts.get(c) for counts in w.metrics.values()))
    part = metrics_service.shard()
    for n, (key, counts) in enumerate(sorted(w.metrics.items())):
        for name, value in zip(metrics_service.KEY_COLUMNS, (*key, part), strict=True):
            params[f"m{n}_{name}"] = value
        for name in counters:
            params[f"m{n}_{name}"] = counts.get(name, 0)
    shape = (tuple(inserts), (w.reopen, w.answered, w.opens), len(w.keys),
             len(w.metrics) if counters else 0, counters)
    citizen_id, point_id, ticket_id, interaction_id, outbox_id = run.one(
        _pg_statement(shape), params)
    return Written(citizen_id or w.citizen_id, point_id or w.point_id,
                   ticket_id or w.ticket_id, interaction_id, outbox_id)


# --- SQLite (and any other database): one statement per row ------------------------------

_KEY_UPSERT = sa.text(
    f"INSERT INTO {_KEYS.name} (kind, key, ticket_id) VALUES (:kind, :key, :ticket_id) "
    "ON CONFLICT (kind, key) DO UPDATE SET ticket_id = excluded.ticket_id "
    "WHERE thread_keys.kind <> 'email'")


_INSERTS = {alias: sa.insert(table).returning(table.c.id) for alias, table in _TABLES.items()}
_TOUCHES: dict[tuple[bool, bool, bool], sa.TextClause] = {}


def _touch(touch: tuple[bool, bool, bool]) -> sa.TextClause:
    if touch not in _TOUCHES:
        _TOUCHES[touch] = sa.text(
            f"UPDATE {_TICKET.name} SET last_activity_at = :now, updated_at = :now"
            f"{_touch_sets(touch, ':now')} "
            "WHERE id = :ticket_id").bindparams(sa.bindparam("now", type_=sa.DateTime()))
    return _TOUCHES[touch]


def _insert(conn: sa.Connection, alias: str, values: dict[str, Any]) -> int:
    return conn.execute(_INSERTS[alias], values).scalar_one()


def _stepwise_write(conn: sa.Connection, w: Write) -> Written:
    citizen_id, point_id, ticket_id = w.citizen_id, w.point_id, w.ticket_id
    if w.citizen is not None:
        citizen_id = _insert(conn, "c", w.citizen)
    if w.point is not None:
        point_id = _insert(conn, "p", {**w.point, "citizen_id": citizen_id})
        _insert(conn, "pr", {**(w.profile or {}), "citizen_id": citizen_id})
    if w.ticket is not None:
        ticket_id = _insert(conn, "t", {**w.ticket, "citizen_id": citizen_id,
                                        "contact_point_id": point_id})
    else:
        conn.execute(_touch((w.reopen, w.answered, w.opens)),
                     {"ticket_id": ticket_id, "now": w.now})
    interaction_id = _insert(conn, "i", {**w.interaction, "ticket_id": ticket_id,
                                         "citizen_id": citizen_id,
                                         "contact_point_id": point_id})
    outbox_id = None
    if w.outbox is not None:
        outbox_id = _insert(conn, "o", {**w.outbox, "interaction_id": interaction_id})
    if w.audit is not None:
        _insert(conn, "a", w.audit)
    for kind, key in w.keys:
        conn.execute(_KEY_UPSERT, {"kind": kind, "key": key, "ticket_id": ticket_id})
    if w.metrics:
        metrics_service.apply(conn, w.metrics)
    return Written(citizen_id, point_id, ticket_id, interaction_id, outbox_id)


def write(run: Runner, w: Write) -> Written:
    """Write everything in ``w`` on ``run``'s connection, inside the caller's transaction
    (which commits) or autocommitted as one statement."""
    if run.dialect.name == "postgresql":
        return _pg_write(run, w)
    return _stepwise_write(run.conn, w)
