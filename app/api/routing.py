"""Routing: presence, offers, transfers, wrap-up, referrals, queue contents, reach."""

from apiflask import abort

from app.api import bp
from app.api.routing_schemas import (
    CompleteIn,
    OfferList,
    OfferOut,
    PresenceIn,
    PresenceOut,
    QueueItemsOut,
    ReachOut,
    ReferralIn,
    ReferralQuery,
    ReferralReportOut,
    RoutedTicketOut,
    TransferIn,
)
from app.api.tickets import _ticket
from app.auth import current_user, token_auth
from app.services import reach, routing_service


def _naive_utc(moment):
    if moment is not None and moment.tzinfo is not None:
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


@bp.put("/agents/me/presence")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(PresenceIn, arg_name="body")
@bp.output(PresenceOut)
def set_my_presence(body):
    """Called by the console when the agent goes available, away or offline."""
    user = current_user()
    return routing_service.set_presence(user.id, body["presence"], user, body.get("capacity"))


@bp.put("/agents/<int:agent_id>/presence")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(PresenceIn, arg_name="body")
@bp.output(PresenceOut)
def put_agent_presence(agent_id, body):
    """Called by a supervisor to set an agent's presence or channel capacity."""
    return routing_service.set_presence(agent_id, body["presence"], current_user(),
                                        body.get("capacity"))


@bp.get("/agents/me/offers")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(OfferList)
def my_offers():
    """Called by the console (on load and reconnect) to show the agent's open offers."""
    return {"items": routing_service.pending_offers(current_user())}


@bp.post("/offers/<int:offer_id>/accept")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(OfferOut)
def accept_offer(offer_id):
    """Called by the agent accepting an offer; the ticket becomes theirs."""
    return routing_service.accept(offer_id, current_user())


@bp.post("/offers/<int:offer_id>/decline")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(OfferOut)
def decline_offer(offer_id):
    """Called by the agent declining an offer; it goes to someone else."""
    return routing_service.decline(offer_id, current_user())


@bp.post("/tickets/<ref>/transfer")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(TransferIn, arg_name="body")
@bp.output(RoutedTicketOut)
def transfer_ticket(ref, body):
    """Called by an agent or supervisor moving a ticket to another agent or queue."""
    return routing_service.transfer(_ticket(ref), current_user(), agent_id=body.get("agent_id"),
                                    queue=body.get("queue"), reason=body["reason"])


@bp.post("/tickets/<ref>/complete")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(CompleteIn, arg_name="body")
@bp.output(RoutedTicketOut)
def complete_ticket(ref, body):
    """Called by the agent finishing a ticket (wrap-up) with a disposition code."""
    return routing_service.complete(_ticket(ref), current_user(), body["disposition"],
                                    body["note"])


@bp.post("/tickets/<ref>/referral")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(ReferralIn, arg_name="body")
@bp.output(RoutedTicketOut)
def refer_ticket(ref, body):
    """Called by an agent referring a misdirected contact to the right agency."""
    return routing_service.refer(_ticket(ref), current_user(), body)


@bp.get("/queues/<code>/items")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(QueueItemsOut)
def queue_contents(code):
    """Called by the console and supervisors to see a queue's waiting and served work."""
    return routing_service.queue_items(code)


@bp.get("/reports/referrals")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(ReferralQuery, location="query", arg_name="query")
@bp.output(ReferralReportOut)
def referral_report(query):
    """Called by supervisors to count referrals per agency and reason."""
    since, until = _naive_utc(query.get("since")), _naive_utc(query.get("until"))
    if since and until and until <= since:
        abort(400, "until must be after since", extra_data={"code": "invalid_period"})
    return routing_service.referral_report(since, until)


@bp.get("/citizens/<int:citizen_id>/reach")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(ReachOut)
def citizen_reach(citizen_id):
    """Called by the console to show which channel a reply will use, and why."""
    decision = reach.decide(citizen_id)
    return {
        "citizen_id": citizen_id, "channel": decision.channel, "address": decision.address,
        "reason": decision.reason, "language": decision.language,
        "fallbacks": [{"channel": c, "address": a} for c, a in decision.fallbacks],
    }
