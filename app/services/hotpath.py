"""Statements of the intake hot path, run on the database driver directly.

Every webhook of every channel runs the same two or three statements (look up the sender,
maybe the thread, then write). Through ``Connection.execute`` each costs about 120 µs of
SQLAlchemy bookkeeping (cache look-up, parameter processing, result metadata, events) on
top of the driver's own work and the round trip; on a 2 ms webhook that was a quarter.

``Runner`` compiles each Core statement once per process, with SQLAlchemy, for psycopg
(parameter names, expanded ``IN`` lists, bind casts, the types' bind processors) and then
hands it to a psycopg cursor of the same connection, inside the same transaction (or
autocommit) that SQLAlchemy manages. Rows come back as named tuples, which read like
SQLAlchemy rows (``row.id``, ``row._asdict()``). Driver errors are raised as the
SQLAlchemy exceptions the callers expect (``IntegrityError``, ``OperationalError``).

A statement's SQL must not depend on the parameters given (name each one with
``bindparam``; a bare ``insert(table)`` would take its columns from the parameters).
Constants written in a statement (``col == "phone"``, ``.values(status="sent")``) are
kept from its compilation and handed to the driver as they are.

Other databases (SQLite, which runs in-process) go through ``Connection.execute`` as
usual: there is no round trip to save, and results read the same.
"""

from __future__ import annotations

import collections
import functools
import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa


@dataclass
class _Compiled:
    sql: str
    static: dict[str, Any]  # values compiled into the statement (expanded IN lists)
    processors: dict[str, Any]  # the column types' bind processors (JSON and the like)
    names: frozenset[str]  # the parameters the statement takes from the caller
    make_row: Any = None  # the statement's row class's ``_make``, once a result named it

    def row_factory(self, cursor):
        """psycopg row factory: named tuples, with the names read from the statement's
        first result (a statement's columns never change), so later executions skip
        decoding them."""
        if self.make_row is None:
            result = cursor.pgresult
            if result is None or not result.nfields:
                return tuple
            self.make_row = _row_class(
                tuple(result.fname(i).decode() for i in range(result.nfields)))._make
        return self.make_row


_COMPILED: dict[tuple[int, str], tuple[Any, _Compiled]] = {}


def _compile(statement: sa.Executable, dialect: sa.Dialect) -> _Compiled:
    key = (id(statement), dialect.name)
    cached = _COMPILED.get(key)
    if cached is not None and cached[0] is statement:
        return cached[1]
    compiled = statement.compile(dialect=dialect)
    # The caller's parameters (``bindparam`` without a value), given as placeholders
    # here: the expanded state then holds the final SQL and the values of what is fixed
    # (constants written in the statement, the items of constant IN lists).
    given = {compiled.bind_names[bind]: None for bind in compiled.binds.values()
             if bind.required and not bind.expanding}
    state = compiled.construct_expanded_state(given, escape_names=False)
    static = {k: v for k, v in state.parameters.items() if k not in given}
    processors = dict(compiled._bind_processors)  # noqa: SLF001 - the types' own converters
    result = _Compiled(state.statement, static, processors, frozenset(given))
    _COMPILED[key] = (statement, result)  # the statement is kept: its id stays unique
    return result


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]):
    # ``rename``: columns without a usable name of their own (``(SELECT id FROM c)``,
    # four times ``id``) become ``_1``, ``_2``...; they are read by position.
    return collections.namedtuple("Row", names, rename=True)


class Runner:
    """Runs hot-path statements on ``conn`` (see the module docstring)."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self._cursor = None
        self._current: _Compiled | None = None
        if conn.dialect.driver == "psycopg":
            self._cursor = conn.connection.dbapi_connection.cursor(row_factory=self._rows)

    def _rows(self, cursor):
        # The row factory of the statement being run (set just before it runs).
        return self._current.row_factory(cursor)

    def _run(self, statement: sa.Executable, params: dict[str, Any]):
        import psycopg

        compiled = _compile(statement, self.conn.dialect)
        values = dict(compiled.static)
        for name, value in params.items():
            if name not in compiled.names:
                continue  # unused here; the driver caches its parse only up to 50 values
            process = compiled.processors.get(name)
            values[name] = process(value) if process is not None else value
        self._current = compiled
        try:
            self._cursor.execute(compiled.sql, values)
        except psycopg.Error as exc:
            raise sa.exc.DBAPIError.instance(compiled.sql, values, exc, psycopg.Error) from exc
        return self._cursor

    def first(self, statement: sa.Executable, params: dict[str, Any]):
        """The first row, or ``None``."""
        if self._cursor is None:
            return self.conn.execute(statement, params).first()
        return self._run(statement, params).fetchone()

    def one(self, statement: sa.Executable, params: dict[str, Any]):
        """The one row (``NoResultFound`` when there is none)."""
        if self._cursor is None:
            return self.conn.execute(statement, params).one()
        row = self._run(statement, params).fetchone()
        if row is None:
            raise sa.exc.NoResultFound("no row was found when one was required")
        return row

    def scalar(self, statement: sa.Executable, params: dict[str, Any]):
        """The first column of the first row, or ``None``."""
        row = self.first(statement, params)
        return None if row is None else row[0]

    def execute(self, statement: sa.Executable, params: dict[str, Any]) -> None:
        """Run a statement whose result is not needed."""
        if self._cursor is None:
            self.conn.execute(statement, params)
        else:
            self._run(statement, params)


_AUTOCOMMIT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def autocommit_engine() -> sa.Engine | None:
    """The app's engine in autocommit mode (same pool), for a write that is one statement,
    atomic on its own, and needs no BEGIN and COMMIT around it (two round trips of three):
    PostgreSQL only; ``None`` elsewhere (the caller then writes in the session)."""
    from app.extensions import db

    engine = db.engine
    if engine.dialect.name != "postgresql":
        return None
    autocommit = _AUTOCOMMIT.get(engine)
    if autocommit is None:
        autocommit = _AUTOCOMMIT[engine] = engine.execution_options(
            isolation_level="AUTOCOMMIT")
    return autocommit
