"""``GET /api/offers/{code}``: may a checkout accept this free-shipping code? Read-only, nothing personal.

Served by both apps: the public unsubscribe service (``create_unsubscribe_app``; the shop's checkout
server reaches it without an IAP identity) and the dashboard (``create_app``; locally ``--role all``).
The answer names the code, ``valid`` / ``expired`` / ``unknown`` and the expiry — never the user,
session or email behind it. An input that cannot be a code (format ``FREESHIP-`` + 16 of A-Z, 2-7;
at most 64 characters) is refused with 422 before any table is read; codes are 80-bit HMACs, so
guessing one is hopeless. A lake without ``retarget/offers`` (no email sent yet) answers ``unknown``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lib.dashboard.panels.common import ErrorResponse, RequestRejected, get_now, get_reader
from lib.dashboard.tables import LakeReader, TableReadError, TableRef, normalize
from lib.retarget.offers import CODE_MAX_LENGTH, offer_status
from lib.retarget.offers import normalize_code as _normalize
from lib.schema import arrow_schema

RETARGET_OFFERS = TableRef("retarget", "offers")
_SCHEMA = arrow_schema(str(RETARGET_OFFERS))
log = logging.getLogger("lib.dashboard.offers")
# What the route accepts, for the OpenAPI document (the route checks it with lib.retarget.offers.normalize_code,
# after refusing non-ASCII input — str.upper() maps a few non-ASCII letters to ASCII ones): ASCII blanks
# around, the prefix in any case, 16 base32 letters in any case; at most CODE_MAX_LENGTH characters in all.
CODE_DOC_PATTERN = r"^[\t-\r\x1c-\x20]*[Ff][Rr][Ee][Ee][Ss][Hh][Ii][Pp]-[A-Za-z2-7]{16}[\t-\r\x1c-\x20]*$"


class OfferCheck(BaseModel):
    """The answer of a code check. ``expires_at`` is null when the code is unknown."""

    code: str = Field(examples=["FREESHIP-MFRGGZDFMZTWQ2LK"], description="the code checked (upper case)")
    status: Literal["valid", "expired", "unknown"] = Field(
        description="valid: issued and not expired; expired: issued, past its expiry (or withdrawn); "
                    "unknown: no email carried this code")
    expires_at: datetime | None = Field(None, description="end of validity, UTC (exclusive)")


router = APIRouter(prefix="/api", tags=["offers"])


@router.get("/offers/{code}", response_model=OfferCheck, summary="Check a cart-recovery offer code",
            responses={422: {"model": RequestRejected, "description": "not an offer code (format or length)"},
                       503: {"model": ErrorResponse, "description": "the offers table cannot be read right now"}})
def check_offer(code: Annotated[str, Path(max_length=CODE_MAX_LENGTH, description="the code as the email shows it",
                                          json_schema_extra={"pattern": CODE_DOC_PATTERN})],
                reader: Annotated[LakeReader, Depends(get_reader)],
                now: Annotated[datetime, Depends(get_now)]):
    # a plain def: FastAPI runs it in its threadpool, the Delta read never blocks the event loop
    normalized = _normalize(code) if code.isascii() else None
    if normalized is None:
        return JSONResponse(status_code=422, content={
            "detail": "not an offer code: expected FREESHIP- followed by 16 characters A-Z or 2-7"})
    try:
        # the Delta log's per-file min/max of `code` leaves out the files that cannot hold it
        table = reader.read(RETARGET_OFFERS, columns=["expires_at", "status"], where=[("code", "==", normalized)])
    except TableReadError as exc:
        log.warning("offer check failed: %s", exc)
        # the public service must not describe the lake: no table path or reason in the answer
        return JSONResponse(status_code=503, content={"detail": "offer codes cannot be checked right now"})
    rows = [] if table is None else normalize(table, _SCHEMA).to_pylist()
    status, expires = offer_status(rows, now)
    return OfferCheck(code=normalized, status=status, expires_at=expires)
