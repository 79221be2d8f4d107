"""The session and CSRF cookies.

The session cookie holds the signed-in person's bearer token and what the web
needs to shape its pages (role, organisation, chosen venue). It is signed with
itsdangerous (timestamped, so it expires), HttpOnly and SameSite=Strict, so
scripts cannot read it and other sites cannot send it. Forms carry a CSRF token
that must equal the (signed) CSRF cookie: the double-submit pattern.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "kaiku_session"
CSRF_COOKIE = "kaiku_csrf"
LANG_COOKIE = "kaiku_lang"


class Sessions:
    def __init__(self, secret: str, max_age: int, secure: bool) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="kaiku-web-session")
        self.csrf_serializer = URLSafeTimedSerializer(secret, salt="kaiku-web-csrf")
        self.max_age = max_age
        self.secure = secure

    def read(self, request: Request) -> dict[str, Any]:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return {}
        try:
            return self.serializer.loads(raw, max_age=self.max_age)
        except BadSignature:
            return {}

    def write(self, response: Response, data: dict[str, Any]) -> None:
        response.set_cookie(SESSION_COOKIE, self.serializer.dumps(data), max_age=self.max_age,
                            httponly=True, samesite="strict", secure=self.secure, path="/")

    def clear(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                               secure=self.secure)

    # --- CSRF --------------------------------------------------------------------

    def csrf_token(self, request: Request) -> str:
        """The request's CSRF token: from its cookie, or a new one (set on the way out)."""
        existing = getattr(request.state, "csrf", None)
        if existing:
            return existing
        token = None
        raw = request.cookies.get(CSRF_COOKIE)
        if raw:
            try:
                token = self.csrf_serializer.loads(raw)
            except BadSignature:
                token = None
        if not token:
            token = secrets.token_urlsafe(24)
            request.state.new_csrf = True
        request.state.csrf = token
        return token

    def set_csrf_cookie(self, request: Request, response: Response) -> None:
        if getattr(request.state, "new_csrf", False):
            response.set_cookie(CSRF_COOKIE, self.csrf_serializer.dumps(request.state.csrf),
                                httponly=True, samesite="strict", secure=self.secure, path="/")

    def csrf_ok(self, request: Request, submitted: str | None) -> bool:
        raw = request.cookies.get(CSRF_COOKIE)
        if not raw or not submitted:
            return False
        try:
            expected = self.csrf_serializer.loads(raw)
        except BadSignature:
            return False
        return hmac.compare_digest(str(expected), str(submitted))
