"""The venue's pages: which venue the desk works for, its offerings (with the
live card-cap hint), the ticket desk and the venue's feedback."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..client import Answer
from ..pages import (
    CSRF,
    HELSINKI,
    Language,
    SessionsDep,
    Staff,
    as_uuid,
    browser_address,
    call,
    form_of,
    genres,
    is_htmx,
    language,
    local_datetime,
    not_found,
    page,
    services_of,
    session_of,
    staff_session,
    to_int,
)

from .admin_network import name_in

router = APIRouter()

VENUE_PAGE = 200  # venues' GET /venues gives at most 200 a page
# Venues' refusals of a scanned mobile card, in the desk's own words.
MOBILE_CARD_REFUSALS = {"mobile-card-invalid": "register.qr_invalid",
                        "mobile-card-expired": "register.qr_expired"}


def looks_like_mobile_card(value: str) -> bool:
    """What a QR scanner types from an OmaKaiku mobile card: a JWT (three parts),
    never a card number."""
    return value.count(".") == 2 and len(value) > 40


def refusal_key(answer: Answer, scanned: bool) -> str | None:
    """The message key for a refusal (None: the generic one with the card number)."""
    if answer.ok or not scanned:
        return None
    return MOBILE_CARD_REFUSALS.get(answer.problem_kind or "", "register.refused_mobile")


# --- the card-cap hint: venues' minimum for the numbers typed so far -----------------------


async def card_cap_guideline(request: Request, capacity: int, kind: str) -> dict[str, Any]:
    """Venues' smallest card cap for an offering and which rule gave it, or an
    empty dict when venues cannot say (down, refused, or no one signed in): the
    page then shows no number."""
    token = session_of(request).get("token")
    if not token:
        return {}
    answer = await services_of(request).call(
        "venues", "GET", "/offerings/card-cap-minimum", token=token,
        params={"capacity": capacity, "kind": kind}, client=browser_address(request))
    data = answer.data if answer.ok and isinstance(answer.data, dict) else {}
    minimum = data.get("minimum_card_cap")
    if not isinstance(minimum, int) or isinstance(minimum, bool):
        return {}
    return {"minimum": minimum, "rule": data.get("rule")}


async def guideline_context(request: Request, capacity: str, kind: str,
                            card_cap: str) -> dict[str, Any]:
    """What the card-cap hint says for the numbers typed so far."""
    places = to_int(capacity)
    cap = to_int(card_cap)
    kind = kind or "performance"
    guideline = await card_cap_guideline(request, places, kind) if places and places > 0 else {}
    minimum = guideline.get("minimum")
    return {"minimum": minimum, "capacity": places, "kind": kind,
            "below": minimum is not None and cap is not None and cap < minimum,
            "mass": guideline.get("rule") == "mass-event"}


@router.get("/staff/guideline", response_class=HTMLResponse)
async def guideline_hint(request: Request, capacity: str = "", kind: str = "performance",
                         card_cap: str = "") -> Response:
    """The live hint under the card-cap field (an htmx fragment)."""
    return page(request, "staff/_guideline.html",
                **await guideline_context(request, capacity, kind, card_cap))


# --- which venue ----------------------------------------------------------------------


async def chosen_venue(request: Request) -> dict[str, Any] | None:
    venue_id = session_of(request).get("venue_id")
    if not venue_id:
        return None
    answer = await call(request, "venues", "GET", f"/venues/{venue_id}")
    return answer.data if answer.ok else None


async def my_venues(request: Request) -> Answer:
    """The venues the signed-in organisation works for: a venue organisation's
    own, or those that name a ticket agent among their ticket agents."""
    session = staff_session(request)
    if session.get("role") not in ("venue", "ticket_agent"):
        return Answer(200, None)  # Kaikukeskus names the venue by its id
    filter_ = ("agent_organisation_id" if session.get("role") == "ticket_agent"
               else "organisation_id")
    found: list[dict[str, Any]] = []
    for offset in range(0, 2000, VENUE_PAGE):
        listing = await call(request, "venues", "GET", "/venues", params={
            filter_: session.get("org"), "limit": VENUE_PAGE, "offset": offset})
        if not listing.ok or not isinstance(listing.data, list):
            return listing
        found += listing.data
        if len(listing.data) < VENUE_PAGE:
            break
    return Answer(200, found)


def acts_for(session: dict[str, Any], venue: dict[str, Any]) -> bool:
    org = str(session.get("org") or "")
    if session.get("role") not in ("venue", "ticket_agent"):
        return True  # Kaikukeskus: venues decides what it may do
    if session.get("role") == "ticket_agent":
        return org in [str(a) for a in (venue.get("limits") or {}).get("ticket_agents", [])]
    return str(venue.get("organisation_id")) == org


async def venue_choice_page(request: Request, *, status: int = 200,
                            error: Answer | None = None,
                            error_key: str | None = None) -> Response:
    listing = await my_venues(request)
    venues = listing.data if listing.ok and isinstance(listing.data, list) else None
    places = await place_names(request, language(request)) if venues else {}
    return page(request, "staff/venue_choice.html", status=status, venues=venues,
                places=places, listing_unavailable=not listing.ok,
                listing_error=None if listing.ok or listing.unavailable else listing,
                current=await chosen_venue(request), error=error, error_key=error_key)


@router.get("/staff/venue", response_class=HTMLResponse)
async def venue_choice(request: Request, staff: Staff) -> Response:
    return await venue_choice_page(request)


@router.post("/staff/venue", dependencies=CSRF)
async def venue_chosen(request: Request, staff: Staff, sessions: SessionsDep,
                       venue_id: str = Form("")) -> Response:
    session = dict(staff)
    try:
        venue_id = str(uuid.UUID(venue_id.strip()))
    except ValueError:
        return await venue_choice_page(request, status=422, error_key="venue.bad_id")
    answer = await call(request, "venues", "GET", f"/venues/{venue_id}")
    if not answer.ok:
        return await venue_choice_page(request, status=answer.status, error=answer)
    if not acts_for(session, answer.data):
        return await venue_choice_page(request, status=403, error_key=(
            "venue.not_an_agent" if session.get("role") == "ticket_agent"
            else "venue.not_yours"))
    session["venue_id"] = venue_id
    response = RedirectResponse("/staff/register", status_code=303)
    sessions.write(response, session)
    return response


async def need_venue(request: Request) -> dict[str, Any] | Response:
    """The chosen venue, or the way to choose one."""
    staff_session(request)
    venue = await chosen_venue(request)
    if venue is None:
        return RedirectResponse("/staff/venue", status_code=303)
    return venue


# --- offerings --------------------------------------------------------------------------


@router.get("/staff/offerings/new", response_class=HTMLResponse)
async def new_offering(request: Request, lang: Language) -> Response:
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    return page(request, "staff/offering_new.html", venue=venue, genres=genres(lang),
                form={}, **await guideline_context(request, "", "performance", ""))


def offering_body(form: dict[str, Any]) -> dict[str, Any]:
    """A new offering as venues takes it, from the form."""
    starts_at = local_datetime(str(form.get("starts_at", "")))
    return {"title": str(form.get("title", "")).strip(),
            "genres": [g for g in [form.get("genre")] if g],
            "starts_at": starts_at.isoformat() if starts_at else "",
            "capacity": to_int(form.get("capacity"), 0),
            "card_cap": to_int(form.get("card_cap"), 0),
            "kind": form.get("kind") or "performance"}


@router.post("/staff/offerings", dependencies=CSRF)
async def publish_offering(request: Request, lang: Language) -> Response:
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    form = dict(await request.form())
    body = offering_body(form)
    answer = await call(request, "venues", "POST",
                        f"/venues/{venue['venue_id']}/offerings", json=body,
                        idempotency_key=str(form.get("idem") or "") or None)
    if not answer.ok:
        hint = await guideline_context(request, str(form.get("capacity", "")),
                                       str(form.get("kind", "performance")),
                                       str(form.get("card_cap", "")))
        return page(request, "staff/offering_new.html", status=answer.status, venue=venue,
                    genres=genres(lang), form=form, error=answer, **hint)
    return page(request, "message.html", heading_key="offering.published",
                message_key="offering.published_detail", values={"title": body["title"]},
                live=True, next_href="/staff/register", next_key="nav.register")


@router.get("/staff/offerings", response_class=HTMLResponse)
async def venue_offerings(request: Request) -> Response:
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    answer = await call(request, "venues", "GET", "/offerings",
                        params={"venue_id": venue["venue_id"], "limit": 200})
    return page(request, "staff/offerings.html", venue=venue,
                offerings=answer.data if answer.ok else [], error=None if answer.ok else answer)


@router.post("/staff/offerings/{offering_id}/cancellation", dependencies=CSRF)
async def cancel_offering(request: Request, offering_id: str, staff: Staff) -> Response:
    answer = await call(request, "venues", "POST",
                        f"/offerings/{offering_id}/cancellation", json={})
    if not answer.ok:
        return page(request, "message.html", status=answer.status,
                    heading_key="error.refused", error=answer)
    return RedirectResponse("/staff/offerings", status_code=303)


# --- changing an offering ------------------------------------------------------------


def edit_form(offering: dict[str, Any]) -> dict[str, str]:
    starts = offering.get("starts_at")
    local = (datetime.fromisoformat(str(starts)).astimezone(HELSINKI)
             .strftime("%Y-%m-%dT%H:%M") if starts else "")
    return {"title": str(offering.get("title", "")), "starts_at": local,
            "capacity": str(offering.get("capacity", "")),
            "card_cap": str(offering.get("card_cap", "")),
            "kind": str(offering.get("kind", "performance"))}


async def edit_page(request: Request, offering: dict[str, Any], form: dict[str, str], *,
                    status: int = 200, error: Answer | None = None,
                    error_key: str | None = None, done_key: str | None = None) -> Response:
    hint = await guideline_context(request, form.get("capacity", ""), form.get("kind", ""),
                                   form.get("card_cap", ""))
    return page(request, "staff/offering_edit.html", status=status, offering=offering,
                form=form, error=error, error_key=error_key, done_key=done_key, **hint)


async def venues_record(request: Request, collection: str,
                        record_id: str) -> dict[str, Any] | Response:
    """One offering or ticket from venues, or the page that says why not."""
    record_id = as_uuid(record_id)
    if record_id is None:
        return not_found(request)
    answer = await call(request, "venues", "GET", f"/{collection}/{record_id}")
    if not answer.ok:
        return page(request, "message.html", status=answer.status,
                    heading_key="error.refused", error=answer)
    return answer.data


async def offering_to_edit(request: Request, offering_id: str) -> dict[str, Any] | Response:
    return await venues_record(request, "offerings", offering_id)


@router.get("/staff/offerings/{offering_id}/edit", response_class=HTMLResponse)
async def edit_offering(request: Request, offering_id: str, staff: Staff) -> Response:
    offering = await offering_to_edit(request, offering_id)
    if isinstance(offering, Response):
        return offering
    return await edit_page(request, offering, edit_form(offering))


def offering_changes(form: dict[str, str], before: dict[str, str]) -> dict[str, Any] | str:
    """What the form changed, as venues' PATCH takes it, or the key of what is wrong."""
    body: dict[str, Any] = {}
    if form.get("title", "") != before["title"]:
        body["title"] = form.get("title", "")
    if form.get("starts_at", "") != before["starts_at"]:
        starts_at = local_datetime(form.get("starts_at", ""))
        if starts_at is None:
            return "offering.bad_start"
        body["starts_at"] = starts_at.isoformat()
    for field in ("capacity", "card_cap"):
        if form.get(field, "") != before[field]:
            value = to_int(form.get(field))
            if value is None:
                return "offering.bad_number"
            body[field] = value
    return body


@router.post("/staff/offerings/{offering_id}", dependencies=CSRF)
async def change_offering(request: Request, offering_id: str, staff: Staff) -> Response:
    """Send venues only what was changed (PATCH); the guideline is checked again."""
    offering = await offering_to_edit(request, offering_id)
    if isinstance(offering, Response):
        return offering
    form = await form_of(request)
    form["kind"] = str(offering.get("kind", "performance"))
    body = offering_changes(form, edit_form(offering))
    if isinstance(body, str):
        return await edit_page(request, offering, form, status=422, error_key=body)
    if not body:
        return await edit_page(request, offering, form, done_key="offering.nothing_changed")
    answer = await call(request, "venues", "PATCH", f"/offerings/{offering['offering_id']}",
                        json=body)
    if not answer.ok:
        return await edit_page(request, offering, form, status=answer.status, error=answer)
    return page(request, "message.html", heading_key="offering.changed",
                message_key="offering.changed_detail",
                values={"title": answer.data.get("title", "")}, live=True,
                next_href="/staff/offerings", next_key="nav.offerings")


# --- the ticket desk ------------------------------------------------------------------


async def upcoming(request: Request, venue_id: str) -> list[dict[str, Any]]:
    answer = await call(request, "venues", "GET", "/offerings",
                        params={"venue_id": venue_id, "from": date.today().isoformat(),
                                "limit": 200})
    return answer.data if answer.ok and isinstance(answer.data, list) else []


@router.get("/staff/register", response_class=HTMLResponse)
async def ticket_desk(request: Request) -> Response:
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    return page(request, "staff/register.html", venue=venue,
                offerings=await upcoming(request, venue["venue_id"]), result=None)


@router.post("/staff/tickets", dependencies=CSRF)
async def register_ticket(request: Request) -> Response:
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    form = dict(await request.form())
    typed = str(form.get("card_number", "")).strip()
    scanned = looks_like_mobile_card(typed)
    body = {"offering_id": str(form.get("offering_id", "")),
            "children": to_int(form.get("children"), 0) or 0}
    # A scanned OmaKaiku mobile card goes to venues as it is: venues verifies
    # it offline and registers the card number inside. The web never reads it.
    body["mobile_card_token" if scanned else "card_number"] = typed
    answer = await call(request, "venues", "POST", "/tickets", json=body,
                        idempotency_key=str(form.get("idem") or "") or None)
    result = {"ok": answer.ok, "answer": answer, "children": body["children"],
              "card_number": "" if scanned else typed,
              "message_key": refusal_key(answer, scanned)}
    if is_htmx(request):
        return page(request, "staff/_ticket_result.html", result=result, status=200)
    return page(request, "staff/register.html", venue=venue, result=result,
                offerings=await upcoming(request, venue["venue_id"]),
                chosen=body["offering_id"], status=200 if answer.ok else answer.status)


@router.post("/staff/tickets/{ticket_id}/cancellation", dependencies=CSRF)
async def cancel_ticket(request: Request, ticket_id: str, staff: Staff) -> Response:
    answer = await call(request, "venues", "POST", f"/tickets/{ticket_id}/cancellation",
                        json={})
    result = {"cancelled": answer.ok, "answer": answer, "ok": answer.ok}
    return page(request, "staff/_ticket_result.html", result=result)


@router.get("/staff/feedback", response_class=HTMLResponse)
async def venue_feedback(request: Request) -> Response:
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    answer = await call(request, "venues", "GET", f"/venues/{venue['venue_id']}/feedback")
    return page(request, "staff/feedback.html", venue=venue, answer=answer)


# --- the desk: today's and upcoming offerings, each one's ticket list, the day sheet ------

DESK_OFFERINGS = 60  # the next offerings the desk shows (each asks venues its places left)
TICKET_STATUSES = ("registered", "cancelled")


def helsinki_today() -> date:
    return datetime.now(HELSINKI).date()


def local_day(value: Any) -> date | None:
    try:
        return datetime.fromisoformat(str(value)).astimezone(HELSINKI).date()
    except ValueError:
        return None


async def place_names(request: Request, lang: str) -> dict[str, str]:
    """Municipality code → its name in the reader's language, from Kaikukanta's
    network; empty when cards cannot say (the page then names no place)."""
    answer = await call(request, "cards", "GET", "/network")
    if not answer.ok or not isinstance(answer.data, dict):
        return {}
    names: dict[str, str] = {}
    for region in answer.data.get("regions", []):
        for municipality in region.get("municipalities", []):
            names[str(municipality.get("code", "")).lower()] = name_in(
                municipality.get("name"), lang)
    return names


async def with_places_left(request: Request, offerings: list[dict[str, Any]]
                           ) -> list[dict[str, Any]]:
    """Each offering with its card places used and left, as venues counts them now."""
    async def detail(offering: dict[str, Any]) -> dict[str, Any]:
        answer = await call(request, "venues", "GET", f"/offerings/{offering['offering_id']}")
        left = answer.data.get("card_places_left") if answer.ok else None
        used = None if left is None else int(offering.get("card_cap", 0)) - int(left)
        return {**offering, "places_left": left, "places_used": used}

    return list(await asyncio.gather(*(detail(o) for o in offerings)))


async def venue_offerings_between(request: Request, venue_id: str, first: date,
                                  last: date | None) -> Answer:
    params: dict[str, Any] = {"venue_id": venue_id, "from": first.isoformat(),
                              "limit": DESK_OFFERINGS}
    if last is not None:
        params["to"] = last.isoformat()
    return await call(request, "venues", "GET", "/offerings", params=params)


@router.get("/staff/desk", response_class=HTMLResponse)
async def desk(request: Request, lang: Language) -> Response:
    """Today's and upcoming offerings of the chosen venue, places used and left."""
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    today = helsinki_today()
    answer = await venue_offerings_between(request, venue["venue_id"], today, None)
    found = answer.data if answer.ok and isinstance(answer.data, list) else []
    offerings = await with_places_left(request, found)
    places = await place_names(request, lang)
    return page(request, "staff/desk.html", venue=venue, today=today,
                place=places.get(str(venue.get("municipality", "")).lower(), ""),
                todays=[o for o in offerings if local_day(o["starts_at"]) == today],
                upcoming=[o for o in offerings if local_day(o["starts_at"]) != today],
                error=None if answer.ok else answer)


def ticket_status(value: str) -> str | None:
    return value if value in TICKET_STATUSES else None


@router.get("/staff/desk/offerings/{offering_id}", response_class=HTMLResponse)
async def desk_tickets(request: Request, offering_id: str, staff: Staff,
                       status: str = "", done: str = "") -> Response:
    """One offering's card tickets, to check people in and cancel from."""
    offering = await offering_to_edit(request, offering_id)
    if isinstance(offering, Response):
        return offering
    chosen = ticket_status(status)
    answer = await call(request, "venues", "GET",
                        f"/offerings/{offering['offering_id']}/tickets",
                        params={"status": chosen} if chosen else None)
    return page(request, "staff/desk_tickets.html", offering=offering, shown=chosen or "",
                tickets=answer.data if answer.ok else [], error=None if answer.ok else answer,
                done_key="desk.cancelled" if done == "cancelled" else None)


async def ticket_to_cancel(request: Request, ticket_id: str) -> dict[str, Any] | Response:
    return await venues_record(request, "tickets", ticket_id)


@router.get("/staff/desk/tickets/{ticket_id}/cancel", response_class=HTMLResponse)
async def desk_cancel_confirm(request: Request, ticket_id: str, staff: Staff) -> Response:
    """Asks before cancelling: a cancelled ticket cannot be restored."""
    ticket = await ticket_to_cancel(request, ticket_id)
    if isinstance(ticket, Response):
        return ticket
    return page(request, "staff/desk_cancel.html", ticket=ticket, error=None)


@router.post("/staff/desk/tickets/{ticket_id}/cancel", dependencies=CSRF)
async def desk_cancel(request: Request, ticket_id: str, staff: Staff) -> Response:
    ticket = await ticket_to_cancel(request, ticket_id)
    if isinstance(ticket, Response):
        return ticket
    answer = await call(request, "venues", "POST", f"/tickets/{ticket_id}/cancellation",
                        json={})
    if not answer.ok:
        return page(request, "staff/desk_cancel.html", status=answer.status, ticket=ticket,
                    error=answer)
    return RedirectResponse(
        f"/staff/desk/offerings/{ticket['offering_id']}?done=cancelled", status_code=303)


@router.get("/staff/desk/day", response_class=HTMLResponse)
async def day_sheet(request: Request, lang: Language, day: str = "") -> Response:
    """The printable sheet of one day's offerings and their card tickets (today
    unless ``day`` names another, YYYY-MM-DD)."""
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    try:
        chosen = date.fromisoformat(day) if day else helsinki_today()
    except ValueError:
        return page(request, "message.html", status=422, heading_key="error.refused",
                    message_key="desk.bad_day")
    answer = await venue_offerings_between(request, venue["venue_id"], chosen, chosen)
    offerings = answer.data if answer.ok and isinstance(answer.data, list) else []

    async def with_tickets(offering: dict[str, Any]) -> dict[str, Any]:
        listed = await call(request, "venues", "GET",
                            f"/offerings/{offering['offering_id']}/tickets",
                            params={"status": "registered"})
        return {**offering, "tickets": listed.data if listed.ok else None}

    sheet = await asyncio.gather(*(with_tickets(o) for o in offerings))
    places = await place_names(request, lang)
    return page(request, "staff/desk_day.html", venue=venue, day=chosen, offerings=sheet,
                place=places.get(str(venue.get("municipality", "")).lower(), ""),
                error=None if answer.ok else answer)


# --- the venue's profile: name, public contact, limits, ticket agents ---------------------

CONTACT_PARTS = ("phone", "email", "url", "box_office")
EXCLUDABLE = ("visiting", "gala", "premiere")
EXCLUDABLE_LABELS = {"visiting": "desk.production_visiting", "gala": "desk.production_gala",
                     "premiere": "desk.production_premiere"}


def profile_form(venue: dict[str, Any]) -> dict[str, Any]:
    limits = venue.get("limits") or {}
    contact = venue.get("contact") or {}
    maximum = limits.get("max_open_reservations")
    return {"name": venue.get("name", ""),
            **{part: contact.get(part, "") for part in CONTACT_PARTS},
            "one_ticket_per_card": bool(limits.get("one_ticket_per_card")),
            "weekends_excluded": bool(limits.get("weekends_excluded")),
            "max_open_reservations": "" if maximum is None else str(maximum),
            "excluded_productions": list(limits.get("excluded_productions") or []),
            "ticket_agents": "\n".join(str(a) for a in limits.get("ticket_agents") or [])}


def profile_changes(form: dict[str, Any], before: dict[str, Any]) -> dict[str, Any] | str:
    """What the form changed, as venues' PATCH takes it, or the key of what is wrong."""
    body: dict[str, Any] = {}
    if form["name"] != before["name"]:
        body["name"] = form["name"]
    if any(form[part] != before[part] for part in CONTACT_PARTS):
        body["contact"] = {part: form[part] for part in CONTACT_PARTS if form[part]}
    limits: dict[str, Any] = {}
    for flag in ("one_ticket_per_card", "weekends_excluded", "excluded_productions"):
        if form[flag] != before[flag]:
            limits[flag] = form[flag]
    if form["max_open_reservations"] != before["max_open_reservations"]:
        maximum = to_int(form["max_open_reservations"]) if form["max_open_reservations"] \
            else None
        if form["max_open_reservations"] and (maximum is None or maximum < 1):
            return "desk.bad_maximum"
        limits["max_open_reservations"] = maximum
    if limits:
        body["limits"] = limits
    agents = [line.strip() for line in form["ticket_agents"].split() if line.strip()]
    if form["ticket_agents"].split() != before["ticket_agents"].split():
        if any(as_uuid(agent) is None for agent in agents):
            return "desk.bad_agent"
        body["ticket_agents"] = agents
    return body


async def submitted_profile(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {"name": str(form.get("name", "")).strip(),
            **{part: str(form.get(part, "")).strip() for part in CONTACT_PARTS},
            "one_ticket_per_card": form.get("one_ticket_per_card") == "on",
            "weekends_excluded": form.get("weekends_excluded") == "on",
            "max_open_reservations": str(form.get("max_open_reservations", "")).strip(),
            "excluded_productions": sorted(str(p) for p in form.getlist("excluded_productions")
                                           if p in EXCLUDABLE),
            "ticket_agents": str(form.get("ticket_agents", ""))}


async def agent_names(request: Request, venue: dict[str, Any]) -> list[dict[str, str]]:
    """The venue's ticket agents by name (by id when cards cannot say)."""
    async def named(agent: str) -> dict[str, str]:
        answer = await call(request, "cards", "GET", f"/organisations/{agent}")
        name = answer.data.get("name") if answer.ok and isinstance(answer.data, dict) else None
        return {"id": agent, "name": name or agent}

    agents = [str(a) for a in (venue.get("limits") or {}).get("ticket_agents") or []]
    return list(await asyncio.gather(*(named(a) for a in agents)))


async def profile_page(request: Request, venue: dict[str, Any], form: dict[str, Any], *,
                       status: int = 200, error: Answer | None = None,
                       error_key: str | None = None, done: dict[str, Any] | None = None
                       ) -> Response:
    return page(request, "staff/desk_profile.html", status=status, venue=venue, form=form,
                excludable=EXCLUDABLE_LABELS, agents=await agent_names(request, venue), error=error,
                error_key=error_key, done=done)


@router.get("/staff/desk/profile", response_class=HTMLResponse)
async def venue_profile(request: Request) -> Response:
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    return await profile_page(request, venue, profile_form(venue))


@router.post("/staff/desk/profile", dependencies=CSRF)
async def change_venue_profile(request: Request) -> Response:
    """Send venues only what changed (PATCH): one event per part on the venue."""
    venue = await need_venue(request)
    if isinstance(venue, Response):
        return venue
    form = await submitted_profile(request)
    body = profile_changes(form, profile_form(venue))
    if isinstance(body, str):
        return await profile_page(request, venue, form, status=422, error_key=body)
    if not body:
        return await profile_page(request, venue, form, done={"nothing": True})
    answer = await call(request, "venues", "PATCH", f"/venues/{venue['venue_id']}", json=body)
    if not answer.ok:
        return await profile_page(request, venue, form, status=answer.status, error=answer)
    return await profile_page(request, answer.data, profile_form(answer.data),
                              done=answer.data)
