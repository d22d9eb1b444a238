"""Routing decisions: who gets what, offers, aging, overflow, SLA, transfers, errors."""

from __future__ import annotations

import pytest

from routing import errors
from routing.engine import Router
from routing.events import (
    AgentPresenceChanged,
    Assigned,
    ItemAbandoned,
    ItemOverflowed,
    ItemTransferred,
    OfferDeclined,
    OfferExpired,
    OfferMade,
    OfferWithdrawn,
    SlaBreached,
)
from routing.model import AVAILABLE, AWAY, BUSY, OFFLINE, WRAP_UP, WorkItem
from tests.unit.routing.conftest import make_agent, make_router


def offers(events):
    return [e for e in events if isinstance(e, OfferMade)]


def assigned(events):
    return [e for e in events if isinstance(e, Assigned)]


def item(item_id, channel="voice", queue="licenses", language="en", **kw):
    return WorkItem(item_id, channel, queue, language, **kw)


# ---------------------------------------------------------------- agent choice


def test_item_goes_to_most_proficient_agent(router):
    router.add_agent(make_agent("low", topics={"licenses": 3}), now=0)
    router.add_agent(make_agent("high", topics={"licenses": 5}), now=1)
    [offer] = offers(router.arrive(item("i1"), now=2))
    assert offer.agent_id == "high"


def test_language_proficiency_breaks_topic_ties(router):
    router.add_agent(make_agent("a", languages={"en": 3}), now=0)
    router.add_agent(make_agent("b", languages={"en": 5}), now=1)
    [offer] = offers(router.arrive(item("i1"), now=2))
    assert offer.agent_id == "b"


def test_longest_idle_agent_wins_when_skills_equal(router):
    router.add_agent(make_agent("later"), now=5)
    router.add_agent(make_agent("earlier"), now=1)
    [offer] = offers(router.arrive(item("i1"), now=10))
    assert offer.agent_id == "earlier"


def test_agent_below_min_proficiency_or_without_language_is_skipped(router):
    router.add_agent(make_agent("novice", topics={"licenses": 2}), now=0)
    router.add_agent(make_agent("spanish", languages={"es": 5}), now=0)
    assert offers(router.arrive(item("i1"), now=1)) == []
    assert router.items["i1"].state == "waiting"


def test_interpreter_item_needs_no_shared_language(router):
    router.add_agent(make_agent("a", languages={"en": 5}), now=0)
    router.add_agent(make_agent("vi-speaker", topics={"plates": 1}, languages={"vi": 5}), now=0)
    events = router.arrive(item("i1", language="vi", interpreter_required=True), now=1)
    assert offers(events)[0].agent_id == "a"


# ---------------------------------------------------------------- capacity


def test_call_is_exclusive_and_chats_stack_to_capacity(router):
    router.add_agent(make_agent("a", capacity={"voice": 1, "chat": 2}), now=0)
    first = offers(router.arrive(item("c1", "chat"), now=1))
    second = offers(router.arrive(item("c2", "chat"), now=2))
    third = offers(router.arrive(item("c3", "chat"), now=3))
    call = offers(router.arrive(item("v1", "voice"), now=4))
    assert [len(first), len(second), len(third), len(call)] == [1, 1, 0, 0]
    assert router.agents["a"].presence == BUSY


def test_agent_on_a_call_takes_nothing_else(router):
    router.add_agent(make_agent("a"), now=0)
    [offer] = offers(router.arrive(item("v1", "voice"), now=1))
    router.accept(offer.offer_id, now=2)
    assert offers(router.arrive(item("c1", "chat"), now=3)) == []
    assert router.agents["a"].presence == BUSY


def test_max_total_caps_across_channels(router):
    router.add_agent(make_agent("a", capacity={"chat": 3, "email": 3}, max_total=2), now=0)
    got = [offers(router.arrive(item(f"i{n}", ch), now=n)) for n, ch in
           enumerate(["chat", "email", "email"])]
    assert [len(g) for g in got] == [1, 1, 0]


# ---------------------------------------------------------------- agent frees up


def test_free_agent_takes_most_urgent_then_longest_waiting(router):
    router.add_agent(make_agent("a", capacity={"voice": 1}), now=0)
    [busy] = offers(router.arrive(item("first"), now=0))
    router.accept(busy.offer_id, now=1)
    router.arrive(item("old-low", urgency=3), now=2)
    router.arrive(item("new-high", urgency=1), now=3)
    router.arrive(item("newer-high", urgency=1), now=4)
    [next_offer] = offers(router.complete("first", now=10))
    assert next_offer.item_id == "new-high"


def test_aging_lets_low_priority_overtake_after_waiting(router):
    aging = router.aging_seconds
    router.add_agent(make_agent("a", capacity={"voice": 1}), now=0)
    [busy] = offers(router.arrive(item("first"), now=0))
    router.accept(busy.offer_id, now=1)
    router.arrive(item("low", urgency=3), now=1)
    router.arrive(item("high", urgency=1), now=1 + 2 * aging + 1)
    [next_offer] = offers(router.complete("first", now=3 * aging))
    assert next_offer.item_id == "low"


def test_commitment_moves_item_up_one_class(router):
    router.add_agent(make_agent("a", capacity={"voice": 1}), now=0)
    [busy] = offers(router.arrive(item("first"), now=0))
    router.accept(busy.offer_id, now=1)
    router.arrive(item("plain", urgency=2), now=2)
    router.arrive(item("deaf-resident", urgency=2, accessibility=("deaf",)), now=3)
    [next_offer] = offers(router.complete("first", now=10))
    assert next_offer.item_id == "deaf-resident"


def test_fifo_within_a_class(router):
    router.add_agent(make_agent("a", capacity={"voice": 1}), now=0)
    [busy] = offers(router.arrive(item("first"), now=0))
    router.accept(busy.offer_id, now=1)
    for n in range(5):
        router.arrive(item(f"w{n}"), now=2 + n)
    order = []
    current = "first"
    for n in range(5):
        [offer] = offers(router.complete(current, now=100 + n))
        router.accept(offer.offer_id, now=100 + n)
        order.append(offer.item_id)
        current = offer.item_id
    assert order == [f"w{n}" for n in range(5)]


def test_wrap_up_blocks_offers_until_it_ends():
    router = make_router(wrap_up_seconds={"voice": 30})
    router.add_agent(make_agent("a"), now=0)
    [offer] = offers(router.arrive(item("v1"), now=1))
    router.accept(offer.offer_id, now=2)
    events = router.complete("v1", now=10)
    assert router.agents["a"].presence == WRAP_UP
    assert any(isinstance(e, AgentPresenceChanged) and e.new == WRAP_UP for e in events)
    assert offers(router.arrive(item("v2"), now=11)) == []
    assert offers(router.tick(now=39)) == []
    [again] = offers(router.tick(now=40))
    assert again.item_id == "v2"


# ---------------------------------------------------------------- offers


def test_decline_reoffers_elsewhere_and_skips_the_decliner(router):
    router.add_agent(make_agent("a", topics={"licenses": 5}), now=0)
    router.add_agent(make_agent("b", topics={"licenses": 4}), now=0)
    [offer] = offers(router.arrive(item("i1"), now=1))
    assert offer.agent_id == "a"
    events = router.decline(offer.offer_id, now=2)
    assert isinstance(events[0], OfferDeclined)
    [again] = offers(events)
    assert again.agent_id == "b"


def test_timeout_reoffers_and_second_miss_sets_away():
    router = make_router(offer_timeout_seconds=10, max_missed_offers=2)
    router.add_agent(make_agent("a", topics={"licenses": 5}), now=0)
    router.add_agent(make_agent("b", topics={"licenses": 4}), now=0)
    [o1] = offers(router.arrive(item("i1"), now=0))
    events = router.expire_offers(now=10)
    assert isinstance(events[0], OfferExpired)
    assert offers(events)[0].agent_id == "b"
    assert router.agents["a"].missed_offers == 1
    [o2] = offers(router.arrive(item("i2"), now=11))
    assert o2.agent_id == "a"
    events = router.expire_offers(now=21)
    changed = [e for e in events if isinstance(e, AgentPresenceChanged) and e.agent_id == "a"]
    assert changed[-1].new == AWAY
    assert router.agents["a"].presence == AWAY


def test_accept_resets_misses(router):
    router.add_agent(make_agent("a"), now=0)
    [o1] = offers(router.arrive(item("i1"), now=0))
    router.expire_offers(now=100)
    assert router.agents["a"].missed_offers == 1
    [o2] = offers(router.arrive(item("i2", "chat"), now=101))
    router.accept(o2.offer_id, now=102)
    assert router.agents["a"].missed_offers == 0


def test_declined_item_returns_to_decliner_after_reoffer_delay():
    router = make_router(reoffer_after_seconds=50)
    router.add_agent(make_agent("a"), now=0)
    [offer] = offers(router.arrive(item("i1"), now=0))
    assert offers(router.decline(offer.offer_id, now=1)) == []
    [again] = offers(router.tick(now=51))
    assert again.agent_id == "a" and again.item_id == "i1"


def test_double_accept_and_late_accept_raise_and_change_nothing(router):
    router.add_agent(make_agent("a"), now=0)
    [offer] = offers(router.arrive(item("i1"), now=0))
    before = router.snapshot()
    with pytest.raises(errors.OfferTimedOut) as late:
        router.accept(offer.offer_id, now=offer.expires_at)
    assert late.value.code == "offer_timed_out"
    assert router.snapshot() == before
    router.accept(offer.offer_id, now=1)
    with pytest.raises(errors.OfferAlreadyAccepted):
        router.accept(offer.offer_id, now=2)
    with pytest.raises(errors.UnknownOffer):
        router.accept("offer-999", now=2)


def test_going_offline_withdraws_pending_offers(router):
    router.add_agent(make_agent("a", topics={"licenses": 5}), now=0)
    router.add_agent(make_agent("b"), now=0)
    [offer] = offers(router.arrive(item("i1"), now=0))
    events = router.set_presence("a", OFFLINE, now=1)
    assert any(isinstance(e, OfferWithdrawn) for e in events)
    assert offers(events)[0].agent_id == "b"


def test_presence_rules(router):
    router.add_agent(make_agent("a", presence=OFFLINE), now=0)
    with pytest.raises(errors.InvalidPresence):
        router.set_presence("a", BUSY, now=1)
    events = router.set_presence("a", AVAILABLE, now=5)
    assert events[0].old == OFFLINE and router.agents["a"].presence_since == 5


# ---------------------------------------------------------------- SLA and overflow


def test_sla_breach_event_once_and_not_after_answer(router):
    router.arrive(item("late"), now=0)
    router.add_agent(make_agent("b", topics={"benefits": 3}), now=0)
    [offer] = offers(router.arrive(item("served", queue="benefits"), now=0))
    router.accept(offer.offer_id, now=1)
    breaches = [e for e in router.tick(now=31) if isinstance(e, SlaBreached)]
    assert [b.item_id for b in breaches] == ["late"]
    assert breaches[0].due_at == 30
    assert [e for e in router.tick(now=100) if isinstance(e, SlaBreached)] == []


def test_overflow_steps_widen_the_pool():
    router = make_router(auto_accept_channels=("chat",))
    router.add_agent(make_agent("novice", topics={"licenses": 1}, capacity={"chat": 1}), now=0)
    router.add_agent(make_agent("plates", topics={"plates": 5}, capacity={"chat": 1}), now=0)
    router.add_agent(make_agent("benefits", topics={"benefits": 5}, capacity={"chat": 1}), now=0)
    router.arrive(item("i1", "chat"), now=0)
    router.arrive(item("i2", "chat"), now=0)
    router.arrive(item("i3", "chat"), now=0)
    events = router.tick(now=60)
    assert [e.action for e in events if isinstance(e, ItemOverflowed)] == [
        "relax_proficiency"] * 3
    assert [(a.item_id, a.agent_id) for a in assigned(events)] == [("i1", "novice")]
    events = router.tick(now=120)
    assert [(a.item_id, a.agent_id) for a in assigned(events)] == [("i2", "plates")]
    events = router.tick(now=300)
    assert [(a.item_id, a.agent_id) for a in assigned(events)] == [("i3", "benefits")]


def test_scheduled_callback_waits_until_due(router):
    router.add_agent(make_agent("a"), now=0)
    events = router.arrive(item("cb", callback_at=100.0), now=0)
    assert offers(events) == []
    [offer] = offers(router.tick(now=100))
    assert offer.item_id == "cb"


# ---------------------------------------------------------------- transfers, endings


def test_transfer_to_queue_keeps_history_and_rank(router):
    router.add_agent(make_agent("a"), now=0)
    [offer] = offers(router.arrive(item("i1"), now=0))
    router.accept(offer.offer_id, now=1)
    rank = router.items["i1"].rank
    events = router.transfer("i1", to_queue="benefits", now=5)
    assert isinstance(events[0], ItemTransferred)
    moved = router.items["i1"]
    assert moved.queue_id == "benefits" and moved.rank == rank and moved.state == "waiting"
    assert moved.history[-1]["from_queue"] == "licenses"
    assert router.items_of("a") == []
    router.add_agent(make_agent("b", topics={"benefits": 3}), now=6)
    assert router.items["i1"].agent_id == "b"


def test_transfer_to_agent_offers_to_them(router):
    router.add_agent(make_agent("a", topics={"licenses": 5}), now=0)
    router.add_agent(make_agent("b", topics={"benefits": 2}), now=0)
    [offer] = offers(router.arrive(item("i1"), now=0))
    router.accept(offer.offer_id, now=1)
    events = router.transfer("i1", to_agent="b", now=2)
    [again] = offers(events)
    assert again.agent_id == "b"
    router.accept(again.offer_id, now=3)
    assert router.items_of("b") == ["i1"] and router.items_of("a") == []


def test_transfer_errors(router):
    router.add_agent(make_agent("a"), now=0)
    router.add_agent(make_agent("off", presence=OFFLINE), now=0)
    [offer] = offers(router.arrive(item("i1"), now=0))
    router.accept(offer.offer_id, now=1)
    before = router.snapshot()
    with pytest.raises(errors.AgentOffline):
        router.transfer("i1", to_agent="off", now=2)
    with pytest.raises(errors.UnknownQueue):
        router.transfer("i1", to_queue="nowhere", now=2)
    with pytest.raises(errors.InvalidTransfer):
        router.transfer("i1", now=2)
    assert router.snapshot() == before


def test_abandon_frees_the_agent_and_gives_next_item(router):
    router.add_agent(make_agent("a", capacity={"voice": 1}), now=0)
    router.arrive(item("i1"), now=0)
    router.arrive(item("i2"), now=1)
    events = router.abandon("i1", now=5)
    assert any(isinstance(e, ItemAbandoned) for e in events)
    assert offers(events)[0].item_id == "i2"
    assert "i1" not in router.items


def test_complete_requires_assignment(router):
    router.arrive(item("i1"), now=0)
    with pytest.raises(errors.InvalidState):
        router.complete("i1", now=1)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("agent_kwargs", "error"),
    [
        ({"capacity": {"chat": -1}}, errors.InvalidCapacity),
        ({"topics": {"licenses": 9}}, errors.InvalidSkill),
        ({"capacity": {"pigeon": 1}}, errors.UnknownChannel),
    ],
)
def test_bad_agents_are_rejected(router, agent_kwargs, error):
    with pytest.raises(error) as caught:
        router.add_agent(make_agent("bad", **agent_kwargs), now=0)
    assert caught.value.code == error.code
    assert "bad" not in router.agents


def test_bad_items_are_rejected_without_side_effects(router):
    before = router.snapshot()
    with pytest.raises(errors.UnknownQueue):
        router.arrive(item("i1", queue="nowhere"), now=0)
    with pytest.raises(errors.UnknownSkill):
        router.arrive(item("i1", language="tlh"), now=0)
    with pytest.raises(errors.UnknownSkill):
        router.arrive(item("i1", topic="astrology"), now=0)
    with pytest.raises(errors.UnknownChannel):
        router.arrive(item("i1", channel="fax"), now=0)
    assert router.snapshot() == before
    router.arrive(item("i1"), now=0)
    with pytest.raises(errors.DuplicateItem):
        router.arrive(item("i1"), now=0)
    with pytest.raises(errors.UnknownAgent):
        router.set_presence("ghost", AVAILABLE, now=0)
    with pytest.raises(errors.UnknownItem):
        router.complete("ghost", now=0)


def test_errors_are_routing_errors_with_codes():
    assert issubclass(errors.UnknownAgent, errors.RoutingError)
    assert errors.UnknownAgent("x").code == "unknown_agent"


# ---------------------------------------------------------------- state rebuild


def test_rebuild_from_state_continues_identically(router):
    router.add_agent(make_agent("a", capacity={"voice": 1, "chat": 2}), now=0)
    router.add_agent(make_agent("b", topics={"benefits": 4}), now=0)
    [o1] = offers(router.arrive(item("i1"), now=1))
    router.accept(o1.offer_id, now=2)
    router.arrive(item("i2", "chat"), now=3)
    router.arrive(item("i3", queue="benefits"), now=4)
    router.arrive(item("i4"), now=5)
    state = router.snapshot()
    copy = Router.from_state(
        state["agents"], state["queues"], state["items"], state["offers"],
        next_offer_number=state["next_offer_number"], wrap_up_seconds={},
    )
    assert copy.snapshot() == state
    assert router.complete("i1", now=10) == copy.complete("i1", now=10)
    assert router.tick(now=200) == copy.tick(now=200)
    assert router.snapshot() == copy.snapshot()


def test_assigned_event_reports_wait(router):
    router.arrive(item("i1"), now=0)
    events = router.add_agent(make_agent("a"), now=0)
    events = router.set_presence("a", AVAILABLE, now=7)
    assert events == []  # already available: the item was offered on add_agent
    [offer_id] = [o.offer_id for o in router.offers.values()]
    [assigned] = router.accept(offer_id, now=9)
    assert isinstance(assigned, Assigned) and assigned.waited_seconds == 9
