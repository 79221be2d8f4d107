"""Kaikukeskus's pages: partner organisations (adding, approving), statistics
with the regions' printable reports, and bulletins to every partner."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from .. import charts
from ..client import Answer
from ..formatting import number
from ..i18n import translator
from ..pages import CSRF, Language, Staff, call, form_of, not_found, page

router = APIRouter()

# cards' refusal of a new partner in the middle of a season; Kaikukeskus may override it.
MID_YEAR_REFUSAL = "no-new-partners-mid-year"


async def organisations_page(request: Request, *, status: int = 200,
                             form: dict[str, str] | None = None,
                             error: Answer | None = None, done_key: str | None = None,
                             values: dict[str, Any] | None = None,
                             changed: dict[str, Any] | None = None,
                             override_for: str | None = None) -> Response:
    answer = await call(request, "cards", "GET", "/organisations")
    rows = answer.data if answer.ok and isinstance(answer.data, list) else []
    if changed:  # the list is a read model: show what the registry just answered
        rows = [{**row, "status": changed["status"]}
                if str(row.get("organisation_id")) == str(changed["organisation_id"])
                else row for row in rows]
    pending = [row for row in rows if row.get("status") == "pending"]
    return page(request, "staff/organisations.html", status=status, answer=answer,
                rows=rows, pending=pending, form=form or {}, error=error,
                done_key=done_key, values=values or {}, override_for=override_for)


@router.get("/staff/organisations", response_class=HTMLResponse)
async def organisations(request: Request, staff: Staff) -> Response:
    return await organisations_page(request)


@router.post("/staff/organisations", dependencies=CSRF)
async def add_organisation(request: Request, staff: Staff) -> Response:
    form = await form_of(request)
    created = await call(request, "cards", "POST", "/organisations", json={
        "kind": form.get("kind", ""), "name": form.get("name", ""),
        "municipality": form.get("municipality", ""),
        "pending": form.get("pending") == "on", "override": form.get("override") == "on"},
        idempotency_key=form.get("idem") or None)
    if not created.ok:
        return await organisations_page(
            request, status=created.status, form=form, error=created,
            override_for="new" if created.problem_kind == MID_YEAR_REFUSAL else None)
    pending = created.data.get("status") == "pending"
    return await organisations_page(
        request, done_key="organisation.proposed" if pending else "organisation.added",
        values={"name": form.get("name", "")})


@router.post("/staff/organisations/{organisation_id}/approval", dependencies=CSRF)
async def approve_organisation(request: Request, organisation_id: str,
                               staff: Staff) -> Response:
    form = await form_of(request)
    try:
        organisation_id = str(uuid.UUID(organisation_id))
    except ValueError:
        return not_found(request)
    answer = await call(request, "cards", "POST",
                        f"/organisations/{organisation_id}/approval",
                        json={"override": form.get("override") == "on"},
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return await organisations_page(
            request, status=answer.status, error=answer,
            override_for=organisation_id if answer.problem_kind == MID_YEAR_REFUSAL else None)
    return await organisations_page(request, done_key="organisation.approved",
                                    values={"name": answer.data.get("name", "")},
                                    changed=answer.data)


# --- statistics ---------------------------------------------------------------------


# Statistics cover whole calendar months: the form asks for months (YYYY-MM).
FromMonth = Annotated[str, Query(alias="from", max_length=10)]
ToMonth = Annotated[str, Query(alias="to", max_length=10)]


def chosen_months(start: str, end: str) -> dict[str, str]:
    """The months to ask cards for; cards says (422) what is wrong with a bad one."""
    return {name: value.strip() for name, value in (("from", start), ("to", end))
            if value.strip()}


@router.get("/staff/stats", response_class=HTMLResponse)
async def statistics(request: Request, staff: Staff, lang: Language,
                     start: FromMonth = "",
                     end: ToMonth = "") -> Response:
    months = chosen_months(start, end)
    national = await call(request, "cards", "GET", "/stats/national", params=months)
    regions = await call(request, "cards", "GET", "/stats/regions", params=months)
    rows = regions.data if regions.ok and isinstance(regions.data, list) else []
    rows = sorted(rows, key=lambda r: staff_region_name(r, lang).lower())
    status = national.status if national.status == 422 else 200
    return page(request, "staff/stats.html", status=status, national=national,
                regions=regions, rows=rows, months=months,
                num=lambda value: number(value, lang),
                region_chart=staff_region_chart(rows, lang))


def staff_region_name(row: dict[str, Any], lang: str) -> str:
    return str((row.get("names") or {}).get(lang) or row.get("name") or row.get("region") or "")


def staff_region_chart(rows: list[dict[str, Any]], lang: str) -> Any:
    """The public page's region chart, drawn from the staff figures (the table
    beside it has the same numbers)."""
    t = translator(lang)
    ordered = sorted(rows, key=lambda r: (-(r.get("uses") or 0),
                                          staff_region_name(r, lang).lower()))
    bars = [charts.Bar(label=staff_region_name(r, lang), value=int(r.get("uses") or 0),
                       value_text=number(int(r.get("uses") or 0), lang)) for r in ordered]
    return charts.bar_chart("staff-region-chart", bars, charts.ChartText(
        title=t("stats.region_chart_title"), description=t("stats.region_chart_desc"),
        suppressed=""))


@router.get("/staff/stats/regions/{region}/report", response_class=HTMLResponse)
async def region_report(request: Request, region: str, staff: Staff,
                        start: FromMonth = "",
                        end: ToMonth = "") -> Response:
    """Kaikukanta's printable feedback-meeting report, fetched with the staff token."""
    answer = await call(request, "cards", "GET", f"/stats/regions/{region}/report",
                        params=chosen_months(start, end))
    if not answer.ok or not isinstance(answer.data, str):
        return page(request, "message.html", status=answer.status if not answer.ok else 502,
                    heading_key="error.refused", error=answer)
    return HTMLResponse(answer.data)


# --- bulletins ------------------------------------------------------------------------


@router.get("/staff/bulletins", response_class=HTMLResponse)
async def bulletin_form(request: Request, staff: Staff) -> Response:
    return page(request, "staff/bulletin.html", form={})


@router.post("/staff/bulletins", dependencies=CSRF)
async def send_bulletin(request: Request, staff: Staff) -> Response:
    form = await form_of(request)
    answer = await call(request, "notifications", "POST", "/bulletins",
                        json={"title": form.get("title", ""), "body": form.get("body", ""),
                              "valid_until": form.get("valid_until") or None},
                        idempotency_key=form.get("idem") or None)
    if not answer.ok:
        return page(request, "staff/bulletin.html", status=answer.status, form=form,
                    error=answer)
    return page(request, "message.html", heading_key="bulletin.sent",
                message_key="bulletin.sent_detail", live=True)
