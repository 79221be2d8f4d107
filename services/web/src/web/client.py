"""Calls to the four service APIs with the signed-in person's token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from .config import WebSettings


@dataclass
class Answer:
    status: int
    data: Any = None

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


class Services:
    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(timeout=settings.api_timeout_seconds)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, service: str, method: str, path: str, *, token: str | None = None,
                   json: Any = None, params: dict[str, Any] | None = None,
                   idempotency_key: str | None = None, client: str | None = None) -> Answer:
        headers = {"Accept": "application/json"}
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
        return Answer(response.status_code, data)
