"""Batch-scored panels: the demand outlook (products to restock, with their probability of selling
tomorrow; ``gold/demand_forecast``) and customer value segments (``gold/customer_segments``).

Both tables are replaced whole by the nightly ``score`` job; before its first run they do not exist
and the endpoints answer with empty data.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from lib.dashboard.panels.common import get_reader
from lib.dashboard.tables import CUSTOMER_SEGMENTS, DEMAND_FORECAST, LakeReader

router = APIRouter(prefix="/api", tags=["forecasts"])
Reader = Annotated[LakeReader, Depends(get_reader)]
SEGMENT_ORDER = {"high": 0, "medium": 1, "low": 2}


class RestockProduct(BaseModel):
    rank: int = Field(description="1 = the most units expected")
    product_id: int
    brand: str | None = None
    category_code: str | None = None
    units_last_7d: int = 0
    forecast_units: float = Field(description="units expected over the horizon")
    p_sale_tomorrow: float = Field(description="probability of selling at least one unit tomorrow")


class DemandOutlook(BaseModel):
    as_of_date: date | None = Field(None, description="the last day of data the forecast starts after")
    horizon_days: int | None = None
    demand_model: str | None = None
    demand_model_version: int | None = None
    sale_model: str | None = None
    sale_model_version: int | None = None
    scored_at: datetime | None = None
    products: list[RestockProduct] = Field(description="by expected units, largest first")


class ValueSegment(BaseModel):
    value_segment: str = Field(description="high (top 10 % by predicted value), medium (next 30 %), low")
    customers: int
    predicted_value: float = Field(description="sum of the customers' predicted spend over the horizon")
    share_of_predicted_value: float
    avg_clv: float
    avg_total_spend: float = Field(description="average spend so far")


class CustomerSegments(BaseModel):
    as_of: datetime | None = None
    horizon_days: int | None = None
    model: str | None = None
    model_version: int | None = None
    scored_at: datetime | None = None
    segments: list[ValueSegment]


@router.get("/demand/outlook", response_model=DemandOutlook,
            summary="Products to restock: expected units over the horizon and P(sale tomorrow)")
def get_demand_outlook(reader: Reader,
                       limit: Annotated[int, Query(ge=1, le=500, description="how many products")] = 20,
                       ) -> DemandOutlook:
    t = reader.read(DEMAND_FORECAST)
    if t is None or t.num_rows == 0:
        return DemandOutlook(products=[])
    t = t.take(pc.sort_indices(t, sort_keys=[("forecast_rank", "ascending")]))
    rows = t.slice(0, limit).to_pylist()
    head = rows[0]
    return DemandOutlook(
        **{k: head[k] for k in ("as_of_date", "horizon_days", "demand_model", "demand_model_version",
                                "sale_model", "sale_model_version", "scored_at")},
        products=[RestockProduct(rank=r["forecast_rank"], product_id=r["product_id"], brand=r["brand"],
                                 category_code=r["category_code"], units_last_7d=r["units_last_7d"] or 0,
                                 forecast_units=r["forecast_units"] or 0.0, p_sale_tomorrow=r["p_sale_tomorrow"] or 0.0)
                  for r in rows])


@router.get("/customers/segments", response_model=CustomerSegments,
            summary="Customer value segments from the lifetime-value model")
def get_customer_segments(reader: Reader) -> CustomerSegments:
    t = reader.read(CUSTOMER_SEGMENTS)
    if t is None or t.num_rows == 0:
        return CustomerSegments(segments=[])
    rows = sorted(t.to_pylist(), key=lambda r: (SEGMENT_ORDER.get(r["value_segment"], 9), r["value_segment"] or ""))
    head = rows[0]
    return CustomerSegments(
        **{k: head[k] for k in ("as_of", "horizon_days", "model", "model_version", "scored_at")},
        segments=[ValueSegment(**{k: r[k] for k in ValueSegment.model_fields}) for r in rows])
