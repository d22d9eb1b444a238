"""What happens after intake commits an inbound message: a knowledge-base self-service
answer when it is confident, otherwise (or when the resident asks for a person) a work
item in the right queue for routing.

A message in a conversation that already waits for a person or is with one (its ticket
has an active work item) needs neither: the agent sees it live, and routing already has
the work item. Only the pre-hooks still run for it, and intake queues no follow-up for
it at all when no pre-hook wants such a message (``pre_hooks_may_want``)."""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from app.models import OPEN_STATUSES, Interaction, Queue, Ticket, WorkItem, utcnow
from app.services import message_write, metrics_service, tickets
from app.services.hotpath import Runner

log = logging.getLogger(__name__)

GENERAL_QUEUE = "general"
# Hooks filled by the channel, knowledge-base, survey and routing features.
# PRE_HOOKS run first for every inbound message: one that returns True has fully handled
# it (e.g. a survey score "4" sent in reply to a satisfaction survey). Hooks read
# ``interaction.with_person``: the message's ticket waits for a person or is with one. A
# hook may carry ``wants(channel, text)``: False when it cannot handle such a message in a
# conversation with a person, whatever its ticket (``pre_hooks_may_want``).
PRE_HOOKS: list = []
SELF_SERVICE_HOOKS: dict[str, object] = {}
ROUTE_HOOKS: list = []
ACTIVE_WORK = ("waiting", "offered", "assigned")
# A ticket's active work item (at most one: ``ensure_work_item``).
_ACTIVE_ITEM_OF_TICKET = sa.select(WorkItem).where(
    WorkItem.ticket_id == sa.bindparam("ticket_id"), WorkItem.status.in_(ACTIVE_WORK))
# Whether the ticket waits for a person or is with one (an active work item), as a column
# of a query that reads the ticket.
WITH_PERSON = sa.exists().where(
    WorkItem.__table__.c.ticket_id == Ticket.__table__.c.id,
    WorkItem.__table__.c.status.in_(ACTIVE_WORK))
# A follow-up's message and its ticket, with the ticket's citizen and address, and
# ``WITH_PERSON``: one query.
_MESSAGE_AND_TICKET = (
    sa.select(Interaction, Ticket, WITH_PERSON)
    .join(Ticket, Ticket.id == Interaction.ticket_id)
    .where(Interaction.id == sa.bindparam("interaction_id"))
    .options(*tickets.WITH_CITIZEN)
)


_QUEUE_BY_CODE = sa.select(Queue).where(Queue.code == sa.bindparam("code"))
_HELD_QUEUES = "civicline_queues_by_code"


def queue_by_code(code: str) -> Queue | None:
    """The queue with this code, read once per session: a follow-up asks for its ticket's
    queue twice (the acknowledgement's expected wait, then the work item). The session
    holds what it read only weakly, so it is held here, in the session's ``info``, which
    ends with the session (each request's or job's own)."""
    held = db.session.info.setdefault(_HELD_QUEUES, {})
    queue = held.get(code)
    if queue is None or queue not in db.session:
        queue = held[code] = db.session.scalar(_QUEUE_BY_CODE, {"code": code})
    return queue


def choose_queue(ticket: Ticket) -> Queue | None:
    if ticket.queue_id:
        return db.session.get(Queue, ticket.queue_id)
    if ticket.topic:
        queue = queue_by_code(ticket.topic)
        if queue:
            return queue
    return queue_by_code(GENERAL_QUEUE)


def take_topic(ticket: Ticket, answer) -> None:
    """A ticket with no topic takes the topic of the knowledge-base article that answered
    it with confidence, when a queue has that code: a request for a person that follows
    then goes to the queue whose agents know the subject (a passport question to
    passports), not to general. A topic already chosen (the phone menu, the chat form, an
    agent) and a ticket already in a queue are left alone; so is an answer below the
    channel's confidence bar, which may have read the question wrong."""
    if (ticket.topic or ticket.queue_id or answer is None or not answer.self_service
            or not answer.topic):
        return
    if queue_by_code(answer.topic) is not None:
        ticket.topic = answer.topic


def _new_item_values(ticket: Ticket, idle: bool = False) -> tuple[WorkItem | None,
                                                                   dict | None]:
    """For an open, unassigned ticket: its active work item, or a new one's values in
    its queue (``(None, None)``: the ticket does not wait for anyone). ``idle``: the
    caller read in this transaction that the ticket has no active work item
    (``WITH_PERSON``), so it is not read again."""
    if ticket.status not in OPEN_STATUSES or ticket.assigned_agent_id:
        return None, None
    if not idle:
        existing = db.session.scalar(_ACTIVE_ITEM_OF_TICKET, {"ticket_id": ticket.id})
        if existing is not None:
            return existing, None
    queue = choose_queue(ticket)
    if queue is None:
        return None, None
    return None, {"ticket_id": ticket.id, "queue_id": queue.id, "channel": ticket.channel,
                  "language": ticket.language, "topic": ticket.topic or queue.code,
                  "priority": ticket.priority, "arrived_at": utcnow()}


def ensure_work_item(ticket: Ticket) -> WorkItem | None:
    """Put an open, unassigned ticket in its queue once (no duplicate work items)."""
    existing, values = _new_item_values(ticket)
    return existing if values is None else _added(ticket, values)


def _added(ticket: Ticket, values: dict) -> WorkItem:
    ticket.queue_id = values["queue_id"]
    item = WorkItem(**values)
    db.session.add(item)
    return item


_WORK_ITEMS = WorkItem.__table__
_ITEM_COLUMNS = tuple(c.name for c in _WORK_ITEMS.columns if not c.primary_key)
# A new work item, its ticket's queue and its counters (``metrics_service``: ``offered``,
# and ``escalated`` when it is the ticket's first work item: the EXISTS reads the rows as
# they were before this statement), in one statement.
_ADD_ITEM = sa.text(
    f"WITH w AS (INSERT INTO {_WORK_ITEMS.name} ({', '.join(_ITEM_COLUMNS)}) VALUES ("
    + ", ".join(f":{name}" for name in _ITEM_COLUMNS) + ") RETURNING id), "
    f"t AS (UPDATE {Ticket.__tablename__} SET queue_id = :queue_id, updated_at = :arrived_at "
    "WHERE id = :ticket_id), "
    "m AS (" + metrics_service.upsert_sql(("offered", "escalated"), "(" + ", ".join(
        f":m_{name}" for name in metrics_service.KEY_COLUMNS)
        + f", 1, CASE WHEN EXISTS (SELECT 1 FROM {_WORK_ITEMS.name} WHERE ticket_id = "
        ":ticket_id) THEN 0 ELSE 1 END)") + ") "
    "SELECT id FROM w"
).bindparams(*(sa.bindparam(c.name, type_=c.type) for c in _WORK_ITEMS.columns
               if not c.primary_key), sa.bindparam("m_hour", type_=sa.DateTime()))


def add_work_item(ticket: Ticket, idle: bool = False) -> int | None:
    """``ensure_work_item`` for a follow-up job, which needs only the id of the work item
    it created (``None``: none was created; ``idle``: see ``_new_item_values``). On
    PostgreSQL the item, its ticket's queue and its counters are one statement in the
    job's transaction, not an ORM flush of three and a count; elsewhere the ORM writes
    it."""
    _existing, values = _new_item_values(ticket, idle)
    if values is None:
        return None
    if db.session.get_bind().dialect.name != "postgresql":
        item = _added(ticket, values)
        db.session.flush()
        return item.id
    row = message_write.fill("w", values)
    key = metrics_service.ticket_key(db.session, row["arrived_at"], ticket, row["channel"],
                                     row["queue_id"], row["language"])
    params = {**row, **{f"m_{name}": value for name, value in zip(
        metrics_service.KEY_COLUMNS, (*key, metrics_service.shard()), strict=True)}}
    for name in _ITEM_COLUMNS:
        params.setdefault(name, None)
    item_id = Runner(db.session.connection()).scalar(_ADD_ITEM, params)
    set_committed_value(ticket, "queue_id", row["queue_id"])
    set_committed_value(ticket, "updated_at", row["arrived_at"])
    return item_id


def pre_hooks_may_want(channel: str, text: str | None) -> bool:
    """Whether a pre-hook might handle an inbound message with this text in a
    conversation with a person: when none might, its follow-up does nothing, and intake
    does not queue it."""
    return any(getattr(hook, "wants", None) is None or hook.wants(channel, text)
               for hook in PRE_HOOKS)


def message_and_ticket(interaction_id: int) -> sa.Row | None:
    """``(interaction, ticket, busy)`` for a job about one inbound message, with the
    ticket's citizen and address loaded; ``busy``: the ticket has an active work item
    (it waits for a person or is with one). ``None``: no such message. One query."""
    return db.session.execute(_MESSAGE_AND_TICKET, {"interaction_id": interaction_id}).first()


def process_inbound(interaction_id: int, opened: bool = False) -> None:
    """The follow-up of one inbound message; ``opened``: it opened its ticket (intake
    knows), so no earlier message or acknowledgement on the ticket needs looking for."""
    row = message_and_ticket(interaction_id)
    if row is None:
        return
    interaction, ticket, busy = row
    interaction.opened_ticket = opened
    interaction.with_person = busy
    for pre in PRE_HOOKS:
        if pre(interaction, ticket):
            db.session.commit()
            return
    if busy:
        return  # a person has the conversation: no self-service answer, no new routing
    hook = SELF_SERVICE_HOOKS.get(interaction.channel)
    if hook is not None and hook(interaction, ticket):  # answered by self-service
        db.session.commit()
        return
    item_id = add_work_item(ticket, idle=True)  # not busy: read with the message
    db.session.commit()
    # Only a work item that just entered its queue needs a routing decision now; one that
    # already waits (a resident adding lines to a chat or a text thread) keeps its place
    # and is routed by the periodic tick and by agents freeing up. The decision is its own
    # job on the ``default`` queue, behind the inbound queue: during a burst, one routing
    # step takes in every item that arrived meanwhile (``queue_routing``).
    if item_id is not None:
        queue_routing(item_id)


# Set while a routing job is queued and has not started (with Redis): see ``queue_routing``.
ROUTING_PENDING_KEY = "civicline:routing-pending"
# A flag whose job was lost stops no one for longer than this; the periodic routing tick
# (every 5 s) routes what arrived meanwhile.
ROUTING_PENDING_TTL = 60
# When the last routing job started (epoch seconds, with Redis): see ``queue_routing``.
ROUTING_STEP_AT_KEY = "civicline:routing-step-at"


def queue_routing(item_id: int) -> None:
    """Have a routing job decide about a work item that just entered its queue (from a
    job; a webhook where someone waits on the line routes at once).

    A routing step takes in every item committed before it starts, so an item that
    arrives while a routing job is queued and not yet started needs no job of its own:
    with Redis, the first arrival sets ``ROUTING_PENDING_KEY`` (SET NX) and queues the
    job, and the job takes the flag away as it starts (``take_routing_flag``), before
    its step reads the database. An item committed before it found the flag set is
    therefore read by that step. A burst of a hundred arrivals queues one or two jobs
    instead of a hundred (each cost a worker RQ's own bookkeeping, about a no-op job).
    Without Redis (the embedded mode) every item queues its job.

    Routing jobs start at least ``ROUTING_STEP_SPACING_SECONDS`` apart: the job of an
    item that arrives sooner after the last one started is queued to start then, and
    later arrivals ride on it. A step reads every open work item, so its cost grows with
    the backlog (about 100 ms of CPU with 3,000 items waiting); in a storm, with new
    work arriving all the time, back-to-back steps would take a worker's whole time from
    the texts it also has to answer. Spaced a second apart they take a tenth of it, and
    new work still reaches an agent within a second or two. In a quiet moment an
    arrival finds the last step long past and is routed at once."""
    if not ROUTE_HOOKS:
        return
    from flask import current_app
    from redis.exceptions import RedisError

    from app import tasks
    from app.extensions import redis_store
    from app.jobs import enqueue

    client = redis_store.client
    flagged, step_at = True, None  # without Redis every item queues its job
    if client is not None:
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.set(ROUTING_PENDING_KEY, item_id, nx=True, ex=ROUTING_PENDING_TTL)
                pipe.get(ROUTING_STEP_AT_KEY)
                flagged, step_at = pipe.execute()
        except RedisError:  # Redis is away: the job below is parked as any job is
            flagged, step_at = True, None
    if not flagged:  # a queued job's step takes this item in
        return
    delay = None
    if step_at is not None:
        spacing = current_app.config.get("ROUTING_STEP_SPACING_SECONDS", 1.0)
        # Never more than the spacing: the clocks of two machines may differ.
        wait = min(spacing, float(step_at) + spacing - time.time())
        delay = wait if wait > 0.05 else None  # a few milliseconds: start at once
    enqueue(tasks.route_work, item_id, job_id=f"route-{item_id}", delay=delay)


def take_routing_flag() -> bool:
    """Called as a routing job starts: True when it took the flag of a queued routing job
    (its step must run: items that found the flag set count on it). Records when this
    job started, for the spacing of the next (``queue_routing``)."""
    from redis.exceptions import RedisError

    from app.extensions import redis_store

    client = redis_store.client
    if client is None:
        return False
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.getdel(ROUTING_PENDING_KEY)
            pipe.set(ROUTING_STEP_AT_KEY, repr(time.time()), ex=ROUTING_PENDING_TTL)
            flag, _ = pipe.execute()
        return flag is not None
    except RedisError:  # the flag expires; the tick routes meanwhile
        return False


def routing_tick() -> None:
    for route in ROUTE_HOOKS:
        route(None)
