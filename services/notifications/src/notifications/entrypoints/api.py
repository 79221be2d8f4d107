"""Notifications HTTP API: the holder's in-app notifications."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from kaiku_shared.auth import Principal
from kaiku_shared.http import require_role

from ..adapters import read_models

router = APIRouter()
Holder = Annotated[Principal, Depends(require_role("holder"))]


class NotificationPublic(BaseModel):
    source_id: UUID
    kind: str
    title: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


@router.get("/me/notifications", response_model=list[NotificationPublic], tags=["holder"])
async def my_notifications(request: Request, principal: Holder) -> list[NotificationPublic]:
    rows = await read_models.for_account(request.app.state.pool, principal.account_id)
    return [NotificationPublic(**{**dict(row), "payload": json.loads(row["payload"])})
            for row in rows]
