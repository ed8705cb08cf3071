"""Cart-recovery panel: what happened to the abandoned carts (decisions per rule, emails sent, how fast)
and whether the emails work (mailed vs control: purchase within 7 days, recovered revenue)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from lib.dashboard.panels.common import get_reader
from lib.dashboard.tables import RETARGET_DECISIONS, RETARGET_UPLIFT, SESSION_BATCHES, LakeReader

router = APIRouter(prefix="/api", tags=["recovery"])
Reader = Annotated[LakeReader, Depends(get_reader)]


class DecisionCount(BaseModel):
    decision: str = Field(examples=["sent"])
    carts: int
    cart_value: float


class RecentDecision(BaseModel):
    decided_at: datetime | None = None
    decision: str
    cart_value: float | None = None
    email_domain: str | None = None
    seconds_after_expiry: float | None = Field(None, description="decided_at - expired_at")


class UpliftArm(BaseModel):
    """One arm of the intention-to-treat comparison (lib/retarget/uplift.py, docs/retarget.md): ``mailed``
    = carts decided sent, failed, uncertain or stale; ``control`` = the hold-out. A unit is one user's carts whose
    purchase windows overlap (anchored at the first expiry). The comparison fields are set on the mailed
    row only."""
    arm: str = Field(examples=["mailed"])
    carts: int = 0
    users: int = 0
    units: int = Field(0, description="user-episodes: a user's carts with overlapping windows count once")
    converted_units: int = Field(0, description="units with a purchase within window_days of the first expiry")
    conversion_rate: float | None = None
    revenue: float = 0.0
    revenue_per_unit: float | None = None
    window_complete_units: int = 0
    window_days: int | None = None
    uplift_pp: float | None = Field(None, description="conversion rate mailed - control, percentage points")
    uplift_ci_low_pp: float | None = Field(None, description="95 % CI of uplift_pp (Newcombe hybrid score), low")
    uplift_ci_high_pp: float | None = Field(None, description="95 % CI of uplift_pp, high")
    p_value: float | None = Field(None, description="two-sided score test, mailed vs control conversion")
    mde_pp: float | None = Field(None, description="minimum detectable effect (pp), alpha 0.05, power 0.8")
    revenue_per_unit_diff: float | None = Field(None, description="revenue per unit mailed - control")
    revenue_per_unit_diff_ci_low: float | None = Field(None, description="95 % bootstrap CI, low")
    revenue_per_unit_diff_ci_high: float | None = Field(None, description="95 % bootstrap CI, high")
    incremental_revenue: float | None = Field(None, description="revenue_per_unit_diff x mailed units")
    verdict: str | None = Field(None, examples=["not yet significant"],
                                description='"significant", "not yet significant" or "too few carts" '
                                            "(fewer than 100 units in an arm)")
    as_of: datetime | None = None
    computed_at: datetime | None = None


class Recovery(BaseModel):
    abandoned_carts: int = 0
    emails_sent: int = 0
    decisions: list[DecisionCount] = Field(default_factory=list, description="largest first")
    median_seconds_expiry_to_send: float | None = None
    recent: list[RecentDecision] = Field(default_factory=list, description="newest first")
    uplift: list[UpliftArm] = Field(default_factory=list, description="from gold/retarget_uplift (batch job)")
    python_calls_last_batch: int | None = None


@router.get("/recovery", response_model=Recovery, summary="Abandoned carts: decisions, emails, uplift")
def get_recovery(reader: Reader, recent: Annotated[int, Query(ge=1, le=200)] = 20) -> Recovery:
    def compute(_dt) -> Recovery:
        out = Recovery()
        t = reader.read(RETARGET_DECISIONS)
        if t is not None and t.num_rows:
            out.abandoned_carts = t.num_rows
            g = t.group_by("decision").aggregate([("user_session", "count"), ("cart_value", "sum")])
            out.decisions = sorted(
                (DecisionCount(decision=d, carts=n, cart_value=round(v or 0.0, 2))
                 for d, n, v in zip(g["decision"].to_pylist(), g["user_session_count"].to_pylist(),
                                    g["cart_value_sum"].to_pylist())),
                key=lambda d: -d.carts)
            sent = t.filter(pc.equal(t["decision"], "sent"))
            out.emails_sent = sent.num_rows
            if sent.num_rows:
                lag = [(a - b).total_seconds() for a, b in zip(sent["decided_at"].to_pylist(),
                                                               sent["expired_at"].to_pylist()) if a and b]
                if lag:
                    out.median_seconds_expiry_to_send = round(sorted(lag)[len(lag) // 2], 1)
            idx = pc.sort_indices(t, [("decided_at", "descending")])[:recent]
            for r in t.take(idx).to_pylist():
                after = (r["decided_at"] - r["expired_at"]).total_seconds() if r["decided_at"] and r["expired_at"] else None
                out.recent.append(RecentDecision(decided_at=r["decided_at"], decision=r["decision"],
                                                 cart_value=r["cart_value"], email_domain=r["email_domain"],
                                                 seconds_after_expiry=round(after, 1) if after is not None else None))
        return out

    cached = reader.memo(RETARGET_DECISIONS, ("recovery", recent), compute) or Recovery()
    out = cached.model_copy()
    u = reader.read(RETARGET_UPLIFT)  # each table is cached per its own version
    if u is not None:
        # None -> the field's default: a table of an older schema reads with its new columns null
        out.uplift = [UpliftArm(**{k: v for k, v in r.items() if v is not None}) for r in u.to_pylist()]
    ops = reader.read_latest(SESSION_BATCHES, "processed_at", 1)
    if ops is not None and ops.num_rows:
        out.python_calls_last_batch = ops["python_calls"][0].as_py()
    return out
