"""OmaKaiku, the holder's pages: signing in (a code by e-mail, or the welcome
link), the card, events, history and feedback, genres to follow, the inbox and
erasing the account."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaiku_shared import taxonomy
from kaiku_shared.contracts import FEEDBACK_WINDOW

from ..client import Answer
from ..i18n import LANGUAGES
from ..pages import (
    CSRF,
    Holder,
    Language,
    SessionsDep,
    call,
    genres,
    language,
    page,
    services_of,
    set_language_cookie,
    to_int,
    web_settings_of,
)
from ..session import LANG_COOKIE

router = APIRouter()


# --- signing in ------------------------------------------------------------------------


@router.get("/oma/signin", response_class=HTMLResponse)
async def holder_signin(request: Request) -> Response:
    return page(request, "oma/signin.html", step="email")


@router.post("/oma/signin/code", dependencies=CSRF)
async def holder_code(request: Request, email: str = Form("")) -> Response:
    answer = await call(request, "omakaiku", "POST", "/auth/code", anonymous=True,
                        json={"email": email.strip()})
    if answer.unavailable:
        return page(request, "oma/signin.html", status=503, step="email",
                    error_key="signin.unavailable")
    if not answer.ok:
        key = "signin.too_many" if answer.status == 429 else "signin.bad_email"
        return page(request, "oma/signin.html", status=answer.status, step="email",
                    email=email, error_key=key)
    return page(request, "oma/signin.html", step="code", email=email.strip())


@router.post("/oma/signin/link", dependencies=CSRF)
async def holder_link(request: Request, link_token: str = Form("")) -> Response:
    """The one-time link from the welcome e-mail (its token travels in the URL
    fragment, which only the page's script can read and post here)."""
    answer = await call(request, "omakaiku", "POST", "/auth/token", anonymous=True,
                        json={"link_token": link_token.strip()})
    if not answer.ok:
        return page(request, "oma/signin.html", status=answer.status, step="email",
                    error_key="signin.bad_link")
    return await holder_signed_in(request, answer.data["access_token"])


@router.post("/oma/signin/token", dependencies=CSRF)
async def holder_token(request: Request, email: str = Form(""),
                       code: str = Form("")) -> Response:
    answer = await call(request, "omakaiku", "POST", "/auth/token", anonymous=True,
                        json={"email": email.strip(), "code": code.strip()})
    if not answer.ok:
        key = "signin.too_many" if answer.status == 429 else "signin.bad_code"
        return page(request, "oma/signin.html", status=answer.status, step="code",
                    email=email, error_key=key)
    return await holder_signed_in(request, answer.data["access_token"])


async def holder_signed_in(request: Request, token: str) -> Response:
    """The holder's session, in the language of their account unless one was chosen."""
    response = RedirectResponse("/oma", status_code=303)
    request.app.state.sessions.write(response, {"token": token, "role": "holder"})
    me = await services_of(request).call("omakaiku", "GET", "/me", token=token)
    if me.ok and me.data.get("language") in LANGUAGES and not request.cookies.get(
            LANG_COOKIE):
        set_language_cookie(response, me.data["language"], web_settings_of(request))
    return response


# --- the holder's pages ----------------------------------------------------------------


@router.get("/oma", response_class=HTMLResponse)
async def my_card(request: Request, holder: Holder) -> Response:
    card = await call(request, "omakaiku", "GET", "/me/card")
    qr = None
    if card.ok and card.data.get("qr_svg"):
        qr = "data:image/svg+xml;base64," + base64.b64encode(
            card.data["qr_svg"].encode()).decode()
    now = datetime.now(UTC)
    response = page(request, "oma/card.html", card=card, qr=qr, rendered_at=now,
                    refresh_in=refresh_delay(card, now))
    return keep_offline(response, card.ok)


# Renew the QR this long before its token expires (the phone's clock may lag).
REFRESH_MARGIN_SECONDS = 60
MIN_REFRESH_SECONDS = 15


def refresh_delay(card: Answer, now: datetime) -> int:
    """Seconds until the card page's script should fetch a fresh QR (oma.js)."""
    try:
        expires = datetime.fromisoformat(str(card.data["expires_at"]))
    except (KeyError, TypeError, ValueError):
        return MIN_REFRESH_SECONDS * 4
    left = (expires - now).total_seconds() - REFRESH_MARGIN_SECONDS
    return max(MIN_REFRESH_SECONDS, int(left))


@router.get("/oma/events", response_class=HTMLResponse)
async def my_events(request: Request, holder: Holder) -> Response:
    answer = await call(request, "omakaiku", "GET", "/me/tickets")
    response = page(request, "oma/events.html", answer=answer, rendered_at=datetime.now(UTC))
    return keep_offline(response, answer.ok)


def keep_offline(response: Response, whole: bool) -> Response:
    """Tells the service worker (static/sw.js) this page may replace its offline
    copy: only a page that shows what was asked, never a "not available" one.
    private: a shared cache never keeps a holder's page."""
    response.headers["Cache-Control"] = "private, no-cache"
    if whole:
        response.headers["X-Kaiku-Keep"] = "1"
    return response


@router.post("/oma/tickets/{ticket_id}/cancel", dependencies=CSRF)
async def cancel_my_ticket(request: Request, ticket_id: str, holder: Holder) -> Response:
    answer = await call(request, "omakaiku", "POST", f"/me/tickets/{ticket_id}/cancellation")
    tickets = await call(request, "omakaiku", "GET", "/me/tickets")
    return page(request, "oma/events.html", answer=tickets, action=answer,
                status=200 if answer.ok else answer.status)


@router.get("/oma/history", response_class=HTMLResponse)
async def my_history(request: Request, holder: Holder) -> Response:
    answer = await call(request, "omakaiku", "GET", "/me/history")
    return page(request, "oma/history.html", answer=answer, **_feedback_times())


@router.post("/oma/tickets/{ticket_id}/feedback", dependencies=CSRF)
async def give_feedback(request: Request, ticket_id: str, holder: Holder) -> Response:
    form = dict(await request.form())
    body = {k: to_int(form.get(k), -1) for k in ("accessibility", "meaning", "interest")}
    answer = await call(request, "omakaiku", "POST", f"/me/tickets/{ticket_id}/feedback",
                        json=body)
    history = await call(request, "omakaiku", "GET", "/me/history")
    return page(request, "oma/history.html", answer=history, feedback=answer,
                given=ticket_id if answer.ok else None, **_feedback_times(),
                status=200 if answer.ok else answer.status)


def _feedback_times() -> dict[str, str]:
    """The history offers feedback for events that started after ``closed`` and
    before ``now`` (omakaiku refuses the others)."""
    now = datetime.now(UTC)
    return {"now": now.isoformat(), "closed": (now - FEEDBACK_WINDOW).isoformat()}


def _subgenres(lang: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Each genre with its subgenres, by name in the reader's language."""
    return [(g.code, g.names[lang], [(s.code, s.names[lang]) for s in g.subgenres])
            for g in taxonomy.GENRES]


def _date_or_none(value: str) -> str | None:
    """A yyyy-mm-dd from the date field, or nothing (omakaiku says what is wrong)."""
    return value.strip() or None


@router.get("/oma/offerings", response_class=HTMLResponse)
async def browse(request: Request, holder: Holder, lang: Language, genre: str = "",
                 subgenre: str = "", region: str = "", municipality: str = "",
                 date_from: str = Query("", alias="from"), to: str = "") -> Response:
    """Events to browse, filtered; places come from the network by name, never codes."""
    chosen = {"genre": genre, "subgenre": subgenre, "region": region,
              "municipality": municipality, "from": date_from, "to": to}
    answer = await call(request, "omakaiku", "GET", "/offerings", params={
        "genre": genre or None, "subgenre": subgenre or None, "region": region or None,
        "municipality": municipality or None, "from": _date_or_none(date_from),
        "to": _date_or_none(to), "lang": lang})
    places = await call(request, "omakaiku", "GET", "/places", params={"lang": lang},
                        anonymous=True)
    return page(request, "oma/offerings.html", answer=answer, genres=genres(lang),
                subgenres=_subgenres(lang), places=places.data if places.ok else {},
                chosen=chosen, status=200 if answer.ok or answer.unavailable
                else answer.status)


@router.get("/oma/offerings/{offering_id}", response_class=HTMLResponse)
async def offering_page(request: Request, offering_id: str, holder: Holder,
                        lang: Language) -> Response:
    """One event: the venue and its contact, card places left, every limit in words
    and how to get a card ticket."""
    answer = await call(request, "omakaiku", "GET", f"/offerings/{offering_id}",
                        params={"lang": lang}, anonymous=True)
    return page(request, "oma/offering.html", answer=answer,
                status=200 if answer.ok or answer.unavailable else answer.status)


async def subscriptions_page(request: Request, *, saved: Answer | None = None) -> Response:
    answer = await call(request, "omakaiku", "GET", "/me/subscriptions")
    chosen = set(answer.data.get("genres", [])) if answer.ok else set()
    chosen_subgenres = set(answer.data.get("subgenres", [])) if answer.ok else set()
    lang = language(request)
    return page(request, "oma/subscriptions.html", answer=answer, chosen=chosen,
                chosen_subgenres=chosen_subgenres, genres=genres(lang),
                subgenres=_subgenres(lang), saved=saved,
                status=200 if saved is None or saved.ok else saved.status)


@router.get("/oma/subscriptions", response_class=HTMLResponse)
async def my_subscriptions(request: Request, holder: Holder) -> Response:
    return await subscriptions_page(request)


@router.post("/oma/subscriptions", dependencies=CSRF)
async def save_subscriptions(request: Request, holder: Holder) -> Response:
    form = await request.form()
    chosen = [str(g) for g in form.getlist("genres") if taxonomy.is_valid_genre(str(g))]
    # A subgenre ticked without its genre follows that genre too.
    subgenres = [(g.code, s.code) for g in taxonomy.GENRES for s in g.subgenres
                 if f"{g.code}:{s.code}" in form.getlist("subgenres")]
    chosen += [g for g, _ in subgenres if g not in chosen]
    current = await call(request, "omakaiku", "GET", "/me/subscriptions")
    saved = await call(request, "omakaiku", "PUT", "/me/subscriptions", json={
        "genres": chosen, "subgenres": sorted({s for _, s in subgenres}),
        # the region choice is not on this form: keep it as it is
        "only_my_region": bool(current.ok and current.data.get("only_my_region"))})
    return await subscriptions_page(request, saved=saved)


@router.get("/oma/inbox", response_class=HTMLResponse)
async def holder_inbox(request: Request, holder: Holder) -> Response:
    answer = await call(request, "notifications", "GET", "/me/notifications")
    messages = await call(request, "notifications", "GET", "/me/messages")
    known = await call(request, "notifications", "GET", "/me/messages/organisations")
    names = {o["organisation_id"]: o["name"] for o in (known.data if known.ok else [])}
    return page(request, "inbox.html", answer=answer, messages=messages, holder=True,
                names=names)


@router.get("/oma/erase", response_class=HTMLResponse)
async def erase_form(request: Request, holder: Holder) -> Response:
    return page(request, "oma/erase.html")


@router.post("/oma/erase", dependencies=CSRF)
async def erase(request: Request, holder: Holder, sessions: SessionsDep,
                confirm: str = Form("")) -> Response:
    if confirm != "yes":
        return page(request, "oma/erase.html", status=422, error_key="erase.confirm_needed")
    answer = await call(request, "omakaiku", "DELETE", "/me")
    if not answer.ok:
        return page(request, "oma/erase.html", status=answer.status, error=answer)
    response = page(request, "message.html", heading_key="erase.done",
                    message_key="erase.done_detail", live=True)
    sessions.clear(response)
    return response
