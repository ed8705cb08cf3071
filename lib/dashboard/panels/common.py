"""What every panel shares: FastAPI dependencies (the lake reader, the clock) and common models."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from lib.dashboard.tables import LakeReader


def get_reader(request: Request) -> LakeReader:
    """The app's :class:`LakeReader` (one per app, shared by all requests)."""
    return request.app.state.reader


def get_now(request: Request) -> datetime:
    """The current time (aware, UTC). Tests replace the clock through ``create_app(clock=...)``."""
    return request.app.state.clock()


class ErrorResponse(BaseModel):
    """Body of every error answer (404, 413, 503): FastAPI's ``{"detail": ...}`` shape."""

    detail: str = Field(examples=["product 42 has no sales"])


class ValidationIssue(BaseModel):
    """One problem with a request parameter, as FastAPI reports it (``input`` and ``ctx`` may follow)."""

    model_config = ConfigDict(extra="allow")
    loc: list[str | int]
    msg: str
    type: str


class RequestRejected(BaseModel):
    """Body of a 422 that the route itself may give (a message) besides FastAPI's parameter checks (a list)."""

    detail: str | list[ValidationIssue] = Field(examples=["not an offer code: expected FREESHIP- followed by ..."])


class SalesTotals(BaseModel):
    units: int = 0
    revenue: float = 0.0
    orders: int = 0


class MinutePoint(BaseModel):
    """One minute of sales (minutes without sales are present with zeros)."""

    window_start: datetime = Field(description="start of the minute, UTC")
    units: int = 0
    revenue: float = 0.0
    orders: int = 0
