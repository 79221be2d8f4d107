"""``GET /erasures``: Kaikukeskus's audit of erasures — who erased, when and why,
without naming any account, card or person."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from kaiku_shared.auth import Principal
from kaiku_shared.http import MAX_OFFSET, require_role

from ..adapters import retention as tables

router = APIRouter()
Kaikukeskus = Annotated[Principal, Depends(require_role("kaikukeskus"))]


class Erasure(BaseModel):
    erasure_id: UUID = Field(description="Random; names this erasure and nothing else.")
    requested_at: datetime
    completed_at: datetime | None = Field(
        description="None while an interrupted erasure waits for its retry.")
    erased_by: Literal["holder", "distributor", "retention"]
    staff_user_id: UUID | None = Field(description="The distributor's staff user, if one.")
    organisation_id: UUID | None = Field(description="The distributor, if one erased.")
    reason: str = Field(examples=["holder-request", "distributor-request",
                                  "retention-card-closed", "retention-card-expired"])


@router.get("/erasures", response_model=list[Erasure], tags=["accounts"])
async def list_erasures(request: Request, principal: Kaikukeskus,
                        limit: int = Query(default=100, ge=1, le=500),
                        offset: int = Query(default=0, ge=0, le=MAX_OFFSET)) -> list[Erasure]:
    """Newest first. Holds no account id, card number or personal data: an
    erasure can be counted and attributed, never traced back to its holder."""
    rows = await tables.erasures(request.app.state.pool, limit=limit, offset=offset)
    return [Erasure(**dict(row)) for row in rows]
