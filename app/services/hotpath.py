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
import contextlib
import functools
from collections.abc import Iterator
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

    def __init__(self, conn: sa.Connection | None, *, dialect: sa.Dialect | None = None,
                 driver_connection: Any = None):
        """On ``conn`` (an SQLAlchemy connection), or on a psycopg ``driver_connection``
        of ``dialect`` that the caller checked out itself (``autocommitted``)."""
        self.conn = conn
        self.dialect = dialect if conn is None else conn.dialect
        self._cursor = None
        self._current: _Compiled | None = None
        if driver_connection is None and self.dialect.driver == "psycopg":
            driver_connection = conn.connection.dbapi_connection
        if driver_connection is not None:
            self._cursor = driver_connection.cursor(row_factory=self._rows)

    def _rows(self, cursor):
        # The row factory of the statement being run (set just before it runs).
        return self._current.row_factory(cursor)

    def _run(self, statement: sa.Executable, params: dict[str, Any]):
        import psycopg

        compiled = _compile(statement, self.dialect)
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


def in_transaction() -> bool:
    """Whether this request's (or job's) session has a transaction open, without making
    a session just to ask: a webhook that writes only through ``autocommitted`` never
    needs one."""
    from app.extensions import db

    return db.session.registry.has() and db.session().in_transaction()


@contextlib.contextmanager
def autocommitted() -> Iterator[Runner | None]:
    """A ``Runner`` on one of the app's pooled connections in autocommit mode, for writes
    that are one statement, atomic on their own, and need no BEGIN and COMMIT around them
    (two round trips of three). ``None`` when the session has a transaction open (the
    caller's work then joins it, to commit together) or on other databases than
    PostgreSQL: the caller then works in the session.

    The connection is taken from the pool as the driver's own, and switched to
    autocommit and back here: an SQLAlchemy ``Connection`` of an autocommit engine did
    the same for about twice the CPU (its events set and reset the isolation level).
    A connection that broke, or was left with a statement under way (a timeout), is
    invalidated: the pool never hands it out again."""
    import psycopg

    from app.extensions import db

    engine = db.engine
    if engine.dialect.driver != "psycopg" or in_transaction():
        yield None
        return
    try:
        fairy = engine.raw_connection()
    except psycopg.Error as exc:  # the database is down: what ``Engine.connect`` raises
        raise sa.exc.DBAPIError.instance(None, None, exc, psycopg.Error) from exc
    driver = fairy.driver_connection
    try:
        driver.autocommit = True
        yield Runner(None, dialect=engine.dialect, driver_connection=driver)
    finally:
        idle = not (driver.closed or driver.broken) and (
            driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE)
        if idle:
            driver.autocommit = False  # as the pool's other users expect it
        else:  # broken, or interrupted with a statement under way
            fairy.invalidate()
        fairy.close()
