"""Sales panels: headline numbers, revenue per minute, top products, product search and product view.

Reads ``gold/revenue_per_minute``, ``gold/sales_per_minute``, ``gold/sales_daily`` and
``gold/top_products``. Times are UTC; "today" is the current UTC date.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from lib.dashboard.panels.common import ErrorResponse, MinutePoint, SalesTotals, get_now, get_reader
from lib.dashboard.tables import (
    QUALITY_BATCHES,
    REVENUE_PER_MINUTE,
    SALES_DAILY,
    SALES_PER_MINUTE,
    TOP_PRODUCTS,
    LakeReader,
    column_max,
    floor_minute,
    latest_per_key,
    rows,
    today,
    utc,
)
from lib.domain.sales import top_k

Date = date  # alias: some models have a field named `date`

router = APIRouter(prefix="/api/sales", tags=["sales"])

Reader = Annotated[LakeReader, Depends(get_reader)]
Now = Annotated[datetime, Depends(get_now)]
MinutesQuery = Annotated[int, Query(ge=1, le=1440, description="length of the series in minutes (max one day)")]
UNTIL_MIN = datetime(1970, 1, 1, tzinfo=UTC)
UNTIL_MAX = datetime(9000, 1, 1, tzinfo=UTC)  # far from datetime.max: windows end a minute later
_ISO_DATE = re.compile(r"\s*\d{4}-\d\d-\d\d")


def _iso_only(value: Any) -> Any:
    """pydantic would also read a number as Unix seconds (or milliseconds): ``until`` is ISO-8601 only."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO-8601 time such as 2019-10-01T10:00:00Z")
    return value


def _in_range(value: datetime | None) -> datetime | None:
    if value is not None and not UNTIL_MIN <= utc(value) < UNTIL_MAX:
        raise ValueError(f"must be from {UNTIL_MIN:%Y-%m-%d} to before {UNTIL_MAX:%Y-%m-%d}")
    return value


UntilQuery = Annotated[datetime | None, BeforeValidator(_iso_only), AfterValidator(_in_range), Query(
    description="end of the series (ISO-8601, years 1970 to 8999; default: now). Use it to look at replayed history.")]


# -- models -------------------------------------------------------------------------------------------------------
class SalesSummary(BaseModel):
    """Headline numbers for today (UTC date) and how fresh the data is."""

    date: Date = Field(description="today's date, UTC")
    units: int = 0
    revenue: float = 0.0
    orders: int = 0
    products: int = Field(0, description="distinct products sold today")
    last_sale_minute: datetime | None = Field(None, description="start of the latest minute with a sale")
    updated_at: datetime | None = Field(None, description="latest write to the gold sales tables")
    pipeline_at: datetime | None = Field(None, description="latest micro-batch processed (ops/quality_batches)")
    server_time: datetime


class RevenuePerMinute(BaseModel):
    minutes: int
    start: datetime = Field(description="first minute of the series (inclusive)")
    end: datetime = Field(description="end of the series (exclusive)")
    points: list[MinutePoint] = Field(description="one point per minute, oldest first, zeros where nothing sold")
    totals: SalesTotals
    last_sale_minute: datetime | None = None
    updated_at: datetime | None = None


class TopProduct(BaseModel):
    rank: int
    product_id: int
    brand: str | None = None
    category_code: str | None = None
    units: int = 0
    revenue: float = 0.0


class TopProducts(BaseModel):
    source: str = Field(description="table the ranking comes from")
    window_minutes: int | None = Field(None, description="the ranking covers this many minutes up to as_of")
    as_of: datetime | None = None
    products: list[TopProduct]


class ProductMatch(BaseModel):
    product_id: int
    brand: str | None = None
    category_code: str | None = None
    units: int = Field(0, description="all-time units (gold/sales_daily)")
    revenue: float = 0.0
    orders: int = 0
    last_sale_date: Date | None = None
    last_sale_minute: datetime | None = Field(None, description="start of the product's latest minute with a sale")


class ProductSearch(BaseModel):
    query: str
    products: list[ProductMatch]


class ProductToday(SalesTotals):
    date: Date


class ProductDetail(BaseModel):
    product_id: int
    brand: str | None = None
    category_code: str | None = None
    minutes: int
    start: datetime
    end: datetime
    points: list[MinutePoint]
    totals: SalesTotals = Field(description="sum over the series")
    today: ProductToday
    last_sale_date: Date | None = None
    last_sale_minute: datetime | None = None


# -- queries ------------------------------------------------------------------------------------------------------
def window(now: datetime, minutes: int, until: datetime | None) -> tuple[datetime, datetime]:
    """``minutes`` whole minutes ending with the minute of ``until`` (default ``now``), inclusive."""
    end = floor_minute(until or now) + timedelta(minutes=1)
    return end - timedelta(minutes=minutes), end


def minute_series(table: pa.Table | None, start: datetime, end: datetime) -> tuple[list[MinutePoint], SalesTotals]:
    acc: dict[datetime, tuple[int, float, int]] = {}  # units, revenue, orders per minute
    for r in rows(table):
        t = r["window_start"]
        if t is None:
            continue
        units, revenue, orders = acc.get(t, (0, 0.0, 0))
        acc[t] = (units + (r["units"] or 0), revenue + (r["revenue"] or 0.0), orders + (r["orders"] or 0))
    points, totals = [], SalesTotals()
    t = start
    while t < end:
        units, revenue, orders = acc.get(t, (0, 0.0, 0))
        points.append(MinutePoint(window_start=t, units=units, revenue=round(revenue, 2), orders=orders))
        totals.units += units
        totals.revenue += revenue
        totals.orders += orders
        t += timedelta(minutes=1)
    totals.revenue = round(totals.revenue, 2)
    return points, totals


def _sum(table: pa.Table, column: str) -> Any:
    return (pc.sum(table.column(column)).as_py() or 0) if table.num_rows else 0


def catalogue(reader: LakeReader) -> pa.Table | None:
    """One row per product ever sold (from gold/sales_daily): all-time totals, last sale date, brand,
    category and lower-cased search keys. Cached per version of the table."""

    def compute(_dt: Any) -> pa.Table:
        t = reader.read(SALES_DAILY)
        if t is None:  # gone since memo saw it: fails like any other read inside memo
            raise FileNotFoundError(f"{SALES_DAILY} vanished while being read")
        t = t.filter(pc.is_valid(t.column("product_id")))
        t = latest_per_key(t, ["product_id", "sale_date"])
        t = t.sort_by([("sale_date", "descending")])
        g = t.group_by("product_id", use_threads=False).aggregate([
            ("units", "sum"), ("revenue", "sum"), ("orders", "sum"), ("sale_date", "max"),
            ("brand", "first"), ("category_code", "first"), ("last_sale_minute", "max"),
        ])
        g = g.rename_columns({"units_sum": "units", "revenue_sum": "revenue", "orders_sum": "orders",
                              "sale_date_max": "last_sale_date", "brand_first": "brand",
                              "category_code_first": "category_code", "last_sale_minute_max": "last_sale_minute"})
        g = g.append_column("id_str", pc.cast(g.column("product_id"), pa.string()))
        g = g.append_column("brand_lc", pc.utf8_lower(g.column("brand")))
        return g.append_column("category_lc", pc.utf8_lower(g.column("category_code")))

    return reader.memo(SALES_DAILY, ("catalogue",), compute)


def _match(row: dict[str, Any]) -> ProductMatch:
    return ProductMatch(product_id=row["product_id"], brand=row["brand"], category_code=row["category_code"],
                        units=row["units"] or 0, revenue=round(row["revenue"] or 0.0, 2), orders=row["orders"] or 0,
                        last_sale_date=row["last_sale_date"], last_sale_minute=row["last_sale_minute"])


def search_products(reader: LakeReader, query: str, limit: int) -> list[ProductMatch]:
    """Products whose id starts with ``query`` or whose brand / category contains it (case-insensitive).
    Best first: exact id, id prefix, exact brand, brand prefix, the rest; ties by all-time revenue."""
    cat = catalogue(reader)
    q = query.strip()
    if cat is None or cat.num_rows == 0 or not q:
        return []
    ql = q.lower()
    false = pa.scalar(False)
    id_prefix = pc.fill_null(pc.starts_with(cat.column("id_str"), q), false)
    brand_has = pc.fill_null(pc.match_substring(cat.column("brand_lc"), ql), false)
    category_has = pc.fill_null(pc.match_substring(cat.column("category_lc"), ql), false)
    found = cat.filter(pc.or_(pc.or_(id_prefix, brand_has), category_has))
    if found.num_rows == 0:
        return []
    brand = pc.fill_null(found.column("brand_lc"), "")
    score = pc.if_else(pc.equal(found.column("id_str"), q), 0,
                       pc.if_else(pc.starts_with(found.column("id_str"), q), 1,
                                  pc.if_else(pc.equal(brand, ql), 2,
                                             pc.if_else(pc.starts_with(brand, ql), 3, 4))))
    found = found.append_column("score", score)
    found = found.sort_by([("score", "ascending"), ("revenue", "descending"), ("product_id", "ascending")])
    return [_match(r) for r in found.slice(0, limit).to_pylist()]


def top_from_minutes(reader: LakeReader, start: datetime, end: datetime, limit: int) -> list[TopProduct]:
    return reader.memo(SALES_PER_MINUTE, ("top", start, end, limit),
                       lambda _dt: _top_from_minutes(reader, start, end, limit)) or []


def _top_from_minutes(reader: LakeReader, start: datetime, end: datetime, limit: int) -> list[TopProduct]:
    t = reader.read(SALES_PER_MINUTE, where=[("window_start", ">=", start), ("window_start", "<", end)])
    if t is None or t.num_rows == 0:
        return []
    t = latest_per_key(t, ["product_id", "window_start"]).sort_by([("window_start", "descending")])
    g = t.group_by("product_id", use_threads=False).aggregate([
        ("units", "sum"), ("revenue", "sum"), ("brand", "first"), ("category_code", "first")])
    g = g.rename_columns({"units_sum": "units", "revenue_sum": "revenue", "brand_first": "brand",
                          "category_code_first": "category_code"})
    return [TopProduct(rank=r["rank"], product_id=r["product_id"], brand=r["brand"],
                       category_code=r["category_code"], units=r["units"] or 0, revenue=round(r["revenue"] or 0.0, 2))
            for r in top_k(g, limit).to_pylist()]


def _latest(*values: datetime | None) -> datetime | None:
    present = [utc(v) for v in values if v is not None]
    return max(present) if present else None


def _day_totals(reader: LakeReader, day: date) -> tuple[int, float, int, int] | None:
    daily = reader.read(SALES_DAILY, where=[("sale_date", "==", day)])
    if daily is None or daily.num_rows == 0:
        return None
    daily = latest_per_key(daily, ["product_id", "sale_date"])
    return (_sum(daily, "units"), round(_sum(daily, "revenue"), 2), _sum(daily, "orders"),
            pc.count_distinct(daily.column("product_id")).as_py())


# -- endpoints ----------------------------------------------------------------------------------------------------
@router.get("/summary", response_model=SalesSummary, summary="Today's headline numbers and data freshness")
def get_summary(reader: Reader, now: Now) -> SalesSummary:
    day = today(now)
    out = SalesSummary(date=day, server_time=now)
    totals = reader.memo(SALES_DAILY, ("day totals", day), lambda _dt: _day_totals(reader, day))
    if totals:
        out.units, out.revenue, out.orders, out.products = totals
    out.last_sale_minute = _latest(column_max(reader, REVENUE_PER_MINUTE, "window_start"),
                                   column_max(reader, SALES_PER_MINUTE, "window_start"))
    out.updated_at = _latest(column_max(reader, REVENUE_PER_MINUTE, "updated_at"),
                             column_max(reader, SALES_PER_MINUTE, "updated_at"),
                             column_max(reader, SALES_DAILY, "updated_at"))
    out.pipeline_at = column_max(reader, QUALITY_BATCHES, "processed_at")
    return out


@router.get("/revenue_per_minute", response_model=RevenuePerMinute, summary="Revenue, units and orders per minute")
def get_revenue_per_minute(reader: Reader, now: Now, minutes: MinutesQuery = 60,
                           until: UntilQuery = None) -> RevenuePerMinute:
    start, end = window(now, minutes, until)
    t = reader.read(REVENUE_PER_MINUTE, where=[("window_start", ">=", start), ("window_start", "<", end)])
    if t is not None:
        t = latest_per_key(t, ["window_start"])
    points, totals = minute_series(t, start, end)
    return RevenuePerMinute(minutes=minutes, start=start, end=end, points=points, totals=totals,
                            last_sale_minute=column_max(reader, REVENUE_PER_MINUTE, "window_start"),
                            updated_at=column_max(reader, REVENUE_PER_MINUTE, "updated_at"))


@router.get("/top_products", response_model=TopProducts, summary="Best-selling products")
def get_top_products(
    reader: Reader, now: Now,
    limit: Annotated[int, Query(ge=1, le=100, description="how many products")] = 10,
    minutes: Annotated[int | None, Query(ge=1, le=10080, description=(
        "rank over this many minutes up to now, computed from gold/sales_per_minute; "
        "default: the streaming app's own ranking in gold/top_products"))] = None,
) -> TopProducts:
    if minutes is not None:
        start, end = window(now, minutes, None)
        return TopProducts(source=str(SALES_PER_MINUTE), window_minutes=minutes, as_of=now,
                           products=top_from_minutes(reader, start, end, limit))
    t = reader.read(TOP_PRODUCTS)
    if t is None or t.num_rows == 0:
        return TopProducts(source=str(TOP_PRODUCTS), products=[])
    as_of = pc.max(t.column("as_of")).as_py()
    if as_of is not None:  # the table is overwritten per micro-batch; if a writer appended, keep the latest
        t = t.filter(pc.equal(t.column("as_of"), pa.scalar(as_of, t.schema.field("as_of").type)))
    t = t.sort_by([("rank", "ascending"), ("revenue", "descending")]).slice(0, limit)
    products = [TopProduct(rank=r["rank"] if r["rank"] is not None else i + 1, product_id=r["product_id"],
                           brand=r["brand"], category_code=r["category_code"], units=r["units"] or 0,
                           revenue=round(r["revenue"] or 0.0, 2))
                for i, r in enumerate(t.to_pylist()) if r["product_id"] is not None]
    wm = t.column("window_minutes")
    return TopProducts(source=str(TOP_PRODUCTS), window_minutes=pc.max(wm).as_py() if t.num_rows else None,
                       as_of=as_of, products=products)


@router.get("/products", response_model=ProductSearch, summary="Find products by id prefix, brand or category")
def get_product_search(
    reader: Reader,
    query: Annotated[str, Query(min_length=1, max_length=100, description="product id prefix, or part of a brand or category")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ProductSearch:
    return ProductSearch(query=query, products=search_products(reader, query, limit))


@router.get("/products/{product_id}", response_model=ProductDetail, summary="One product: sales per minute and today",
            responses={404: {"model": ErrorResponse, "description": "no sales of this product in the lake"}})
def get_product(
    reader: Reader, now: Now,
    product_id: Annotated[int, Path(ge=0, le=2**63 - 1)],
    minutes: MinutesQuery = 60,
    until: UntilQuery = None,
) -> ProductDetail:
    start, end = window(now, minutes, until)
    series = reader.read(SALES_PER_MINUTE, where=[("product_id", "==", product_id), ("window_start", ">=", start),
                                                  ("window_start", "<", end)])
    if series is not None:
        series = latest_per_key(series, ["window_start"])
    cat = catalogue(reader)
    known = cat.filter(pc.equal(cat.column("product_id"), product_id)).to_pylist() if cat is not None else []
    if not known and (series is None or series.num_rows == 0):
        raise HTTPException(status_code=404, detail=f"product {product_id} has no sales")
    day = today(now)
    daily = reader.read(SALES_DAILY, where=[("product_id", "==", product_id), ("sale_date", "==", day)])
    today_totals = ProductToday(date=day)
    if daily is not None and daily.num_rows:
        daily = latest_per_key(daily, ["sale_date"])
        today_totals.units, today_totals.orders = _sum(daily, "units"), _sum(daily, "orders")
        today_totals.revenue = round(_sum(daily, "revenue"), 2)
    points, totals = minute_series(series, start, end)
    series_last: dict[str, Any] = {}  # the newest minute of the series, if any
    if series is not None and series.num_rows:
        series_last = series.sort_by([("window_start", "descending")]).slice(0, 1).to_pylist()[0]
    if known:
        brand, category = known[0]["brand"], known[0]["category_code"]
        last_date, last_minute = known[0]["last_sale_date"], known[0]["last_sale_minute"]
    else:
        brand, category, last_date, last_minute = series_last["brand"], series_last["category_code"], None, None
    if series_last:
        last_minute = max(last_minute or series_last["window_start"], series_last["window_start"])
    return ProductDetail(product_id=product_id, brand=brand, category_code=category, minutes=minutes, start=start,
                         end=end, points=points, totals=totals, today=today_totals, last_sale_date=last_date,
                         last_sale_minute=last_minute)
