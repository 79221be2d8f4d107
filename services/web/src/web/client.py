"""Calls to the four service APIs with the signed-in person's token."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx

from .config import WebSettings


@dataclass
class Answer:
    status: int
    data: Any = None
    # The response's headers that a page may pass on (ETag, Content-Type, …).
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def unavailable(self) -> bool:
        """The service has no such route (yet) or cannot be reached."""
        if self.status in (405, 501, 502, 503) and not self.problem_kind == "busy":
            return True
        return self.status == 404 and isinstance(self.data, dict) \
            and str(self.data.get("detail", "")).lower() == "not found"

    @property
    def problem_kind(self) -> str | None:
        if isinstance(self.data, dict) and self.data.get("type"):
            return str(self.data["type"]).rsplit("/", 1)[-1]
        return None

    @property
    def detail(self) -> str:
        if isinstance(self.data, dict):
            detail = self.data.get("detail") or self.data.get("title") or ""
            errors = self.data.get("errors") or []
            if errors:
                detail += " " + "; ".join(f"{e.get('field')}: {e.get('message')}"
                                          for e in errors[:5])
            return str(detail).strip()
        return str(self.data or "")


# What a page may pass on of a service's answer (the open-data downloads do).
PASSED_ON = ("etag", "content-type", "content-disposition", "cache-control",
             "last-modified")


class Services:
    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(timeout=settings.api_timeout_seconds)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   json: Any = None, params: dict[str, Any] | None = None,
                   idempotency_key: str | None = None, client: str | None = None,
                   headers: dict[str, str] | None = None) -> Answer:
        headers = {"Accept": "application/json", **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if client:
            # The browser's address, so that the services' sign-in limits count
            # each person apart (they believe it from the web: KAIKU_TRUSTED_PROXIES).
            headers["X-Forwarded-For"] = client
        if method == "POST":
            # Forms carry a key made when the form was shown, so submitting the
            # same form twice (double click, reload) acts once.
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        url = self.settings.service_url(service) + path
        try:
            response = await self.http.request(method, url, headers=headers, json=json,
                                               params={k: v for k, v in (params or {}).items()
                                                       if v not in (None, "")})
        except httpx.HTTPError:
            return Answer(503, {"title": "Service unavailable", "detail": ""})
        try:
            data = response.json()
        except ValueError:
            data = response.text
        return Answer(response.status_code, data, {
            name: response.headers[name] for name in PASSED_ON if name in response.headers})


class DocumentCache:
    """Public documents kept with their ETag (cards' open statistics): the next
    read asks again with If-None-Match, and a 304 reuses the kept copy, so the
    figures are always current and an unchanged document costs no body. The
    oldest is forgotten past ``limit`` (one per path: the whole and each month)."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.kept: OrderedDict[str, Answer] = OrderedDict()

    def validator(self, key: str) -> dict[str, str]:
        kept = self.kept.get(key)
        return {"If-None-Match": kept.headers["etag"]} if kept else {}

    def settle(self, key: str, answer: Answer) -> Answer:
        """The answer to show: the kept copy on 304, else the new one (kept if it
        has an ETag)."""
        kept = self.kept.get(key)
        if answer.status == 304 and kept is not None:
            self.kept.move_to_end(key)
            return kept
        if answer.ok and answer.headers.get("etag"):
            self.kept[key] = answer
            self.kept.move_to_end(key)
            while len(self.kept) > self.limit:
                self.kept.popitem(last=False)
        elif answer.status != 304:
            self.kept.pop(key, None)
        return answer
