"""An offering's terms in words, for holders: each limit the venue set and how to
get a card ticket, in Finnish, Swedish or English. The national guideline asks
that every limit be communicated clearly, so each is its own sentence."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

LANGUAGES = ("fi", "sv", "en")
HELSINKI = ZoneInfo("Europe/Helsinki")

_PRODUCTIONS = {
    "visiting": {"fi": "vierailuesitykset", "sv": "gästspel", "en": "visiting productions"},
    "gala": {"fi": "gaalat", "sv": "galor", "en": "galas"},
    "premiere": {"fi": "ensi-illat", "sv": "premiärer", "en": "premieres"},
}

_WORDS: dict[str, dict[str, str]] = {
    "one_ticket_per_card": {
        "fi": "Yhdellä kortilla saa yhden lipun tähän esitykseen.",
        "sv": "Ett kort ger en biljett till den här föreställningen.",
        "en": "One card ticket per card for this performance."},
    "max_open_reservations": {
        "fi": "Kortilla voi olla tässä paikassa enintään {n} avointa varausta kerrallaan.",
        "sv": "Ett kort kan ha högst {n} öppna bokningar åt gången på det här stället.",
        "en": "A card may hold at most {n} open reservations at a time at this venue."},
    "weekends_excluded": {
        "fi": "Kortti ei kata tämän paikan viikonlopputapahtumia.",
        "sv": "Kortet gäller inte evenemang på veckoslut på det här stället.",
        "en": "The card does not cover this venue's weekend events."},
    "excluded_productions": {
        "fi": "Kortti ei kata näitä: {what}.",
        "sv": "Kortet gäller inte för: {what}.",
        "en": "The card does not cover: {what}."},
    "sales_opens_at": {
        "fi": "Kortilla saa lippuja {when} alkaen.",
        "sv": "Biljetter med kortet från {when}.",
        "en": "Card tickets are available from {when}."},
    "production-excluded": {
        "fi": "Kortilla ei saa lippuja tähän esitykseen: paikka ei ota korttia tämän "
              "tyyppisiin esityksiin.",
        "sv": "Kortet ger inga biljetter till den här föreställningen: stället tar inte "
              "emot kortet för den här typen av föreställningar.",
        "en": "The card gives no tickets to this performance: the venue does not take "
              "the card for this kind of production."},
    "weekend-excluded": {
        "fi": "Kortilla ei saa lippuja tähän esitykseen: se on viikonloppuna.",
        "sv": "Kortet ger inga biljetter till den här föreställningen: den är på ett veckoslut.",
        "en": "The card gives no tickets to this performance: it is on a weekend."},
    "children": {
        "fi": "Jokainen mukana tuleva lapsi vie yhden korttipaikan.",
        "sv": "Varje barn som följer med tar en kortplats.",
        "en": "Each child who comes along takes one card place."},
}

_HOW = {
    "ask": {
        "fi": "Pyydä Kaikukortti-lippua paikan lipunmyynnistä tai sen lippuasiamieheltä "
              "ja näytä korttisi (tai mobiilikortti).",
        "sv": "Be om en Kaikukort-biljett i ställets biljettkassa eller hos dess "
              "biljettombud och visa ditt kort (eller mobilkortet).",
        "en": "Ask for a Kaikukortti ticket at the venue's box office or from its ticket "
              "agents, and show your card (or the mobile card)."},
    "box_office": {"fi": "Lipunmyynti: {v}", "sv": "Biljettkassa: {v}", "en": "Box office: {v}"},
    "phone": {"fi": "Puhelin: {v}", "sv": "Telefon: {v}", "en": "Phone: {v}"},
    "email": {"fi": "Sähköposti: {v}", "sv": "E-post: {v}", "en": "E-mail: {v}"},
    "url": {"fi": "Verkkosivu: {v}", "sv": "Webbplats: {v}", "en": "Web page: {v}"},
    "none_left": {
        "fi": "Korttipaikat ovat nyt loppuneet; peruutuksia voi kysyä lipunmyynnistä.",
        "sv": "Kortplatserna är slut just nu; fråga biljettkassan om avbokningar.",
        "en": "No card places are left now; ask the box office about cancellations."},
}


def _when(moment: datetime, language: str) -> str:
    local = moment.astimezone(HELSINKI)
    return local.strftime("%d.%m.%Y %H:%M") if language != "en" else \
        local.strftime("%d %b %Y %H:%M")


def limits_in_words(*, limits: Mapping[str, Any] | None, sales_opens_at: datetime | None,
                    card_tickets_excluded: str | None, language: str,
                    now: datetime) -> list[dict[str, str]]:
    """Each limit as ``{code, text}``; the exclusion that applies to this very
    offering first, then the venue's limits, then what every offering shares."""
    limits = limits or {}
    said: list[tuple[str, str]] = []
    if card_tickets_excluded in _WORDS:
        said.append((card_tickets_excluded, _WORDS[card_tickets_excluded][language]))
    if sales_opens_at is not None and sales_opens_at > now:
        said.append(("sales_opens_at", _WORDS["sales_opens_at"][language].format(
            when=_when(sales_opens_at, language))))
    if limits.get("one_ticket_per_card"):
        said.append(("one_ticket_per_card", _WORDS["one_ticket_per_card"][language]))
    if limits.get("max_open_reservations"):
        said.append(("max_open_reservations", _WORDS["max_open_reservations"][language]
                     .format(n=limits["max_open_reservations"])))
    if limits.get("weekends_excluded"):
        said.append(("weekends_excluded", _WORDS["weekends_excluded"][language]))
    excluded = [_PRODUCTIONS.get(p, {}).get(language, p)
                for p in limits.get("excluded_productions") or ()]
    if excluded:
        said.append(("excluded_productions", _WORDS["excluded_productions"][language]
                     .format(what=", ".join(excluded))))
    said.append(("children", _WORDS["children"][language]))
    return [{"code": code, "text": text} for code, text in said]


def how_to_get(*, contact: Mapping[str, str] | None, places_left: int | None,
               card_tickets_excluded: str | None, language: str) -> list[str]:
    """How to get a card ticket, step by step, with the venue's public contact."""
    if card_tickets_excluded in _WORDS:
        return [_WORDS[card_tickets_excluded][language]]
    steps = [_HOW["ask"][language]]
    for key in ("box_office", "phone", "email", "url"):
        value = (contact or {}).get(key)
        if value:
            steps.append(_HOW[key][language].format(v=value))
    if places_left == 0:
        steps.append(_HOW["none_left"][language])
    return steps
