"""Kaikukeskus edits the network: regions and the municipalities in them.

Like every page, these only call the cards API with the signed-in person's
token; cards decides who may do what, and its refusals are shown on the page.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..client import Answer
from ..pages import CSRF, Language, Staff, call, form_of, page

router = APIRouter()

# The network's codes, as cards checks them; checked here too because a code
# becomes part of the cards URL.
CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,60}$")
COUNTRY = re.compile(r"^[A-Za-z]{2}$")
MUNICIPALITY_STATUSES = ("in_use", "pilot", "joining_2025_2026", "popup", "left")
LANGS = ("fi", "sv", "en")


def place_form_problem(code: str, form: dict[str, str], country: str) -> str | None:
    """What a region or municipality form lacks before it may go to cards (a message key)."""
    if not CODE.fullmatch(code):
        return "network.bad_code"
    if not form.get("name_fi"):
        return "network.name_fi_needed"
    if not COUNTRY.fullmatch(country):
        return "network.bad_country"
    return None


def name_in(names: Any, lang: str) -> str:
    """A network name in the chosen language, else Finnish, else any."""
    if isinstance(names, dict):
        return names.get(lang) or names.get("fi") or next(iter(names.values()), "")
    return str(names or "")


def form_names(form: dict[str, str]) -> dict[str, str]:
    return {lang: form.get(f"name_{lang}", "") for lang in LANGS if form.get(f"name_{lang}")}


def names_form(names: dict[str, str] | None) -> dict[str, str]:
    """A place's names as the form's name_fi, name_sv and name_en fields."""
    return {f"name_{lang}": (names or {}).get(lang, "") for lang in LANGS}


def regions_of(answer: Answer) -> list[dict[str, Any]]:
    if answer.ok and isinstance(answer.data, dict):
        return list(answer.data.get("regions") or [])
    return []


def unknown_place(request: Request, answer: Answer, heading_key: str) -> Response:
    return page(request, "message.html", status=answer.status if not answer.ok else 404,
                heading_key=heading_key, error=None if answer.ok else answer)


async def network_page(request: Request, *, status: int = 200, done_key: str | None = None,
                       values: dict[str, Any] | None = None) -> Response:
    answer = await call(request, "cards", "GET", "/network")
    return page(request, "staff/network.html", status=status, answer=answer,
                regions=regions_of(answer), done_key=done_key, values=values or {},
                name_in=name_in)


async def network_page_saved(request: Request, done_key: str, answer: Answer,
                             lang: str) -> Response:
    return await network_page(request, done_key=done_key,
                              values={"name": name_in(answer.data.get("name"), lang)})


@router.get("/staff/network", response_class=HTMLResponse)
async def network(request: Request, staff: Staff) -> Response:
    return await network_page(request)


# --- regions ----------------------------------------------------------------------------


@router.get("/staff/network/region", response_class=HTMLResponse)
async def region_form(request: Request, staff: Staff, code: str = "") -> Response:
    form: dict[str, str] = {"country": "FI"}
    if code:
        answer = await call(request, "cards", "GET", "/network")
        region = next((r for r in regions_of(answer) if r.get("code") == code), None)
        if region is None:
            return unknown_place(request, answer, "network.region_unknown")
        form = {"code": code, "country": region.get("country", "FI"),
                **names_form(region.get("name"))}
    return page(request, "staff/region_form.html", form=form, existing=bool(code))


def region_form_again(request: Request, form: dict[str, str], status: int,
                      **context: Any) -> Response:
    return page(request, "staff/region_form.html", status=status, form=form,
                existing=form.get("existing") == "1", **context)


@router.post("/staff/network/region", dependencies=CSRF)
async def save_region(request: Request, staff: Staff, lang: Language) -> Response:
    form = await form_of(request)
    code = form.get("code", "").lower()
    country = form.get("country", "").upper() or "FI"
    if (problem := place_form_problem(code, form, country)) is not None:
        return region_form_again(request, form, 422, error_key=problem)
    if form.get("existing") != "1":
        current = await call(request, "cards", "GET", "/network")
        if any(r.get("code") == code for r in regions_of(current)):
            return region_form_again(request, form, 409, error_key="network.code_taken")
    answer = await call(request, "cards", "PUT", f"/network/regions/{code}",
                        json={"name": form_names(form), "country": country})
    if not answer.ok:
        return region_form_again(request, form, answer.status, error=answer)
    return await network_page_saved(request, "network.region_saved", answer, lang)


# --- municipalities ---------------------------------------------------------------------


def municipality_fields(code: str, region: dict[str, Any],
                        municipality: dict[str, Any]) -> dict[str, str]:
    return {"code": code, "region": region.get("code", ""),
            "status": municipality.get("status", ""),
            "country": municipality.get("country", "FI"),
            **names_form(municipality.get("name"))}


@router.get("/staff/network/municipality", response_class=HTMLResponse)
async def municipality_form(request: Request, staff: Staff, code: str = "",
                            region: str = "") -> Response:
    answer = await call(request, "cards", "GET", "/network")
    regions = regions_of(answer)
    form: dict[str, str] = {"country": "FI", "region": region, "status": "in_use"}
    if code:
        found = next(((r, m) for r in regions for m in r.get("municipalities") or []
                      if m.get("code") == code), None)
        if found is None:
            return unknown_place(request, answer, "network.municipality_unknown")
        form = municipality_fields(code, *found)
    return page(request, "staff/municipality_form.html", form=form, existing=bool(code),
                regions=regions, statuses=MUNICIPALITY_STATUSES, name_in=name_in,
                error=None if answer.ok else answer)


def municipality_form_again(request: Request, form: dict[str, str],
                            regions: list[dict[str, Any]], status: int,
                            **context: Any) -> Response:
    return page(request, "staff/municipality_form.html", status=status, form=form,
                existing=form.get("existing") == "1", regions=regions,
                statuses=MUNICIPALITY_STATUSES, name_in=name_in, **context)


def municipality_form_problem(form: dict[str, str], code: str, country: str,
                              regions: list[dict[str, Any]]) -> tuple[int, str] | None:
    """What is wrong with a municipality form (status and message key), if anything."""
    if (problem := place_form_problem(code, form, country)) is not None:
        return 422, problem
    if form.get("status") not in MUNICIPALITY_STATUSES:
        return 422, "network.status_needed"
    if not form.get("region"):
        return 422, "network.region_needed"
    if form.get("existing") != "1" and any(m.get("code") == code for r in regions
                                           for m in r.get("municipalities") or []):
        return 409, "network.code_taken"
    return None


@router.post("/staff/network/municipality", dependencies=CSRF)
async def save_municipality(request: Request, staff: Staff, lang: Language) -> Response:
    form = await form_of(request)
    code = form.get("code", "").lower()
    country = form.get("country", "").upper() or "FI"
    current = await call(request, "cards", "GET", "/network")
    regions = regions_of(current)
    if (problem := municipality_form_problem(form, code, country, regions)) is not None:
        status, key = problem
        return municipality_form_again(request, form, regions, status, error_key=key)
    answer = await call(request, "cards", "PUT", f"/network/municipalities/{code}", json={
        "name": form_names(form), "region": form["region"], "status": form["status"],
        "country": country})
    if not answer.ok:
        return municipality_form_again(request, form, regions, answer.status, error=answer)
    return await network_page_saved(request, "network.municipality_saved", answer, lang)
