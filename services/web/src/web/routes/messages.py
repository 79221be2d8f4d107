"""Writing and replying to messages, for staff (/staff/messages/…) and holders
(/oma/messages/…): a new message, a thread with its reply form, and what was sent.

Both kinds of user share the templates in messages/; ``Side`` says whose pages
they are (their paths and notifications' routes). The inboxes themselves are
listed by staff_signin (/staff/inbox) and oma (/oma/inbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..client import Answer
from ..pages import CSRF, Holder, Staff, as_uuid, call, form_of, not_found, page

router = APIRouter()

SUBJECT_MAX = 200  # as notifications takes them
BODY_MAX = 10_000
# Notifications' refusals (problem kinds) in the writer's own words.
REFUSALS = {
    "card-not-found": "msg.error_card_unknown",
    "holder-not-found": "msg.error_card_unknown",
    "organisation-not-found": "msg.error_organisation_unknown",
    "message-not-found": "msg.error_message_unknown",
    "no-link-to-holder": "msg.error_no_link_to_holder",
    "no-link-to-organisation": "msg.error_no_link_to_organisation",
    "wrong-role": "msg.error_wrong_role",
    "message-empty": "msg.error_empty",
    "message-too-long": "msg.error_too_long",
    "message-to-self": "msg.error_to_self",
}


@dataclass(frozen=True)
class Side:
    """Whose message pages: the web's path prefix and notifications' routes."""

    holder: bool
    pages: str  # /staff/messages or /oma/messages
    api: str  # /messages or /me/messages
    inbox: str


STAFF = Side(False, "/staff/messages", "/messages", "/staff/inbox")
HOLDER = Side(True, "/oma/messages", "/me/messages", "/oma/inbox")


def input_problem(subject: str | None, body: str) -> str | None:
    """What the web can tell at once is wrong with a message (a message key)."""
    if (subject is not None and not subject) or not body:
        return "msg.error_empty"
    if (subject and len(subject) > SUBJECT_MAX) or len(body) > BODY_MAX:
        return "msg.error_too_long"
    return None


def refusal_key(answer: Answer) -> str | None:
    """The message key for notifications' refusal; None: show its own words."""
    if answer.ok or answer.unavailable:
        return None
    if answer.status == 422 and answer.problem_kind not in REFUSALS:
        return "msg.error_invalid"
    return REFUSALS.get(answer.problem_kind or "")


def staff_recipient(form: dict[str, str], session: dict[str, Any]) -> dict[str, str] | None:
    """Notifications' ``to`` from the staff form; None when the form names nobody."""
    kind = form.get("to_kind")
    if kind == "card" and form.get("card_number"):
        return {"card_number": form["card_number"].upper().replace(" ", "")}
    if kind == "own" and session.get("org"):
        return {"organisation_id": session["org"]}
    if kind == "organisation" and as_uuid(form.get("organisation_id")):
        return {"organisation_id": as_uuid(form.get("organisation_id"))}
    return None


async def compose(request: Request, side: Side, *, form: dict[str, str] | None = None,
                  error: Answer | None = None, error_key: str | None = None,
                  status: int = 200) -> Response:
    choices = await call(request, "notifications", "GET", f"{side.api}/organisations")
    return page(request, "messages/compose.html", side=side, form=form or {},
                choices=choices.data if choices.ok else [], choices_answer=choices,
                error=error if error_key is None else None, error_key=error_key,
                status=status)


async def send_new(request: Request, side: Side, session: dict[str, Any]) -> Response:
    form = await form_of(request)
    to = (staff_recipient(form, session) if not side.holder
          else {"organisation_id": as_uuid(form.get("organisation_id"))}
          if as_uuid(form.get("organisation_id")) else None)
    problem = "msg.error_no_recipient" if to is None else input_problem(
        form.get("subject", ""), form.get("body", ""))
    if problem:
        return await compose(request, side, form=form, error_key=problem, status=422)
    answer = await call(request, "notifications", "POST", side.api,
                        json={"to": to, "subject": form["subject"], "body": form["body"]},
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return await compose(request, side, form=form, error=answer,
                             error_key=refusal_key(answer), status=answer.status)
    return page(request, "message.html", heading_key="msg.sent_title",
                message_key="msg.sent_detail", live=True,
                next_href=f"{side.pages}/sent", next_key="msg.sent_list")


async def thread_page(request: Request, side: Side, message_id: str, *,
                      form: dict[str, str] | None = None, error: Answer | None = None,
                      error_key: str | None = None, status: int = 200) -> Response:
    if as_uuid(message_id) is None:
        return not_found(request)
    answer = await call(request, "notifications", "GET", f"{side.api}/{message_id}/thread")
    if answer.status == 404 and not answer.unavailable:
        return not_found(request)
    if answer.ok:
        await mark_received_read(request, side, answer.data)
    return page(request, "messages/thread.html", side=side, answer=answer,
                names=await organisation_names(request, side), message_id=message_id,
                form=form or {}, error=error,
                error_key=error_key, status=status)


async def mark_received_read(request: Request, side: Side, thread: list[dict[str, Any]]
                             ) -> None:
    """Opening a thread reads what was received in it."""
    read = "/inbox" if not side.holder else "/me/messages"
    for item in thread:
        if item.get("direction") == "received" and not item.get("read_at"):
            await call(request, "notifications", "POST", f"{read}/{item['item_id']}/read")


async def reply(request: Request, side: Side, message_id: str) -> Response:
    form = await form_of(request)
    problem = input_problem(None, form.get("body", ""))
    if problem == "msg.error_empty":
        problem = "msg.error_empty_reply"
    if problem:
        return await thread_page(request, side, message_id, form=form, error_key=problem,
                                 status=422)
    answer = await call(request, "notifications", "POST",
                        f"{side.api}/{message_id}/replies", json={"body": form["body"]},
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return await thread_page(request, side, message_id, form=form, error=answer,
                                 error_key=refusal_key(answer), status=answer.status)
    return page(request, "message.html", heading_key="msg.sent_title",
                message_key="msg.reply_sent_detail", live=True,
                next_href=f"{side.pages}/{message_id}", next_key="msg.back_to_thread")


async def organisation_names(request: Request, side: Side) -> dict[str, str]:
    """Organisations by id → name, as far as the writer may know them."""
    choices = await call(request, "notifications", "GET", f"{side.api}/organisations")
    return {c["organisation_id"]: c["name"] for c in (choices.data if choices.ok else [])}


async def sent_page(request: Request, side: Side) -> Response:
    answer = await call(request, "notifications", "GET", f"{side.api}/sent")
    return page(request, "messages/sent.html", side=side, answer=answer,
                names=await organisation_names(request, side))


# --- staff ---------------------------------------------------------------------------


@router.get("/staff/messages/new", response_class=HTMLResponse)
async def staff_compose(request: Request, staff: Staff) -> Response:
    return await compose(request, STAFF, form={"to_kind": "organisation"})


@router.post("/staff/messages", dependencies=CSRF)
async def staff_send(request: Request, staff: Staff) -> Response:
    return await send_new(request, STAFF, staff)


@router.get("/staff/messages/sent", response_class=HTMLResponse)
async def staff_sent(request: Request, staff: Staff) -> Response:
    return await sent_page(request, STAFF)


@router.get("/staff/messages/{message_id}", response_class=HTMLResponse)
async def staff_thread(request: Request, message_id: str, staff: Staff) -> Response:
    return await thread_page(request, STAFF, message_id)


@router.post("/staff/messages/{message_id}/replies", dependencies=CSRF)
async def staff_reply(request: Request, message_id: str, staff: Staff) -> Response:
    return await reply(request, STAFF, message_id)


# --- holders -------------------------------------------------------------------------


@router.get("/oma/messages/new", response_class=HTMLResponse)
async def holder_compose(request: Request, holder: Holder) -> Response:
    return await compose(request, HOLDER)


@router.post("/oma/messages", dependencies=CSRF)
async def holder_send(request: Request, holder: Holder) -> Response:
    return await send_new(request, HOLDER, holder)


@router.get("/oma/messages/sent", response_class=HTMLResponse)
async def holder_sent(request: Request, holder: Holder) -> Response:
    return await sent_page(request, HOLDER)


@router.get("/oma/messages/{message_id}", response_class=HTMLResponse)
async def holder_thread(request: Request, message_id: str, holder: Holder) -> Response:
    return await thread_page(request, HOLDER, message_id)


@router.post("/oma/messages/{message_id}/replies", dependencies=CSRF)
async def holder_reply(request: Request, message_id: str, holder: Holder) -> Response:
    return await reply(request, HOLDER, message_id)
