"""Gold / ops / quarantine Delta tables for the dashboard tests, written with ``deltalake`` (no Spark).

The schemas below are what the streaming app writes (``lib/schema.py`` ``TABLE_DDL``); they are spelt
out here on purpose instead of imported from ``lib.dashboard.tables``, so a drift shows up in tests
(``test_dashboard_contract_matches_the_writer`` compares all three).
:class:`GoldSales` keeps a list of sales and rewrites the four gold sales tables from it the way the
streaming app's upserts leave them (one row per key), each flush being one new Delta version.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

SALES_PER_MINUTE = pa.schema([
    ("product_id", pa.int64()), ("window_start", TS), ("units", pa.int64()), ("revenue", pa.float64()),
    ("orders", pa.int64()), ("brand", pa.string()), ("category_code", pa.string()), ("updated_at", TS),
])
SALES_DAILY = pa.schema([
    ("product_id", pa.int64()), ("sale_date", pa.date32()), ("units", pa.int64()), ("revenue", pa.float64()),
    ("orders", pa.int64()), ("brand", pa.string()), ("category_code", pa.string()), ("first_sale_minute", TS),
    ("last_sale_minute", TS), ("updated_at", TS),
])
REVENUE_PER_MINUTE = pa.schema([
    ("window_start", TS), ("units", pa.int64()), ("revenue", pa.float64()), ("orders", pa.int64()),
    ("products", pa.int64()), ("updated_at", TS),
])
TOP_PRODUCTS = pa.schema([
    ("rank", pa.int32()), ("product_id", pa.int64()), ("brand", pa.string()), ("category_code", pa.string()),
    ("units", pa.int64()), ("revenue", pa.float64()), ("window_minutes", pa.int32()), ("as_of", TS),
])
QUALITY_BATCHES = pa.schema([
    ("batch_id", pa.int64()), ("load_id", pa.string()), ("processed_at", TS), ("read", pa.int64()), ("valid", pa.int64()),
    ("quarantined", pa.int64()), ("duplicates", pa.int64()), ("quarantined_by_rule", pa.map_(pa.string(), pa.int64())),
    ("min_event_time", TS), ("max_event_time", TS),
])
QUARANTINE_EVENTS = pa.schema([
    ("key", pa.string()), ("value", pa.string()), ("topic", pa.string()), ("partition", pa.int32()),
    ("offset", pa.int64()), ("kafka_timestamp", TS), ("reasons", pa.list_(pa.string())), ("load_id", pa.string()),
    ("quarantined_at", TS),
])


def naive(schema: pa.Schema) -> pa.Schema:
    """The same schema with naive timestamps (Delta ``TIMESTAMP_NTZ``)."""
    return pa.schema([pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in schema])


def write_table(lake: str | Path, layer: str, name: str, schema: pa.Schema, rows: list[dict[str, Any]],
                mode: str = "append") -> None:
    from deltalake import write_deltalake

    if any(pa.types.is_timestamp(f.type) and f.type.tz is None for f in schema):
        rows = [{k: (v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo else v)
                 for k, v in r.items()} for r in rows]
    table = pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(str(Path(lake) / layer / name), table, mode=mode,
                    schema_mode="overwrite" if mode == "overwrite" else None)


def minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass
class Sale:
    product_id: int
    at: datetime
    units: int
    revenue: float
    brand: str | None = None
    category_code: str | None = None


@dataclass
class GoldSales:
    """The four gold sales tables, derived from a list of sales like the streaming app derives them."""

    lake: str | Path
    top_k: int = 10
    top_window_minutes: int = 60
    sales: list[Sale] = field(default_factory=list)

    def add(self, product_id: int, at: datetime, units: int, revenue: float, brand: str | None = None,
            category_code: str | None = None) -> GoldSales:
        self.sales.append(Sale(product_id, at.astimezone(UTC), units, revenue, brand, category_code))
        return self

    def flush(self, now: datetime | None = None, tables: tuple[str, ...] = ("sales_per_minute", "sales_daily",
                                                                            "revenue_per_minute", "top_products")) -> None:
        now = (now or datetime.now(UTC)).astimezone(UTC)
        per_minute: dict[tuple[int, datetime], list] = defaultdict(lambda: [0, 0.0, 0, None, None])
        daily: dict[tuple[int, date], list] = defaultdict(lambda: [0, 0.0, 0, None, None, None, None])
        total: dict[datetime, list] = defaultdict(lambda: [0, 0.0, 0, set()])
        for s in sorted(self.sales, key=lambda s: s.at):
            for acc in (per_minute[(s.product_id, minute(s.at))], daily[(s.product_id, s.at.date())]):
                acc[0] += s.units
                acc[1] += s.revenue
                acc[2] += 1
                acc[3] = s.brand if s.brand is not None else acc[3]
                acc[4] = s.category_code if s.category_code is not None else acc[4]
            d = daily[(s.product_id, s.at.date())]
            d[5] = d[5] or minute(s.at)
            d[6] = minute(s.at)
            t = total[minute(s.at)]
            t[0] += s.units
            t[1] += s.revenue
            t[2] += 1
            t[3].add(s.product_id)
        if "sales_per_minute" in tables:
            write_table(self.lake, "gold", "sales_per_minute", SALES_PER_MINUTE, [
                {"product_id": p, "window_start": w, "units": a[0], "revenue": round(a[1], 2), "orders": a[2],
                 "brand": a[3], "category_code": a[4], "updated_at": now} for (p, w), a in per_minute.items()],
                mode="overwrite")
        if "sales_daily" in tables:
            write_table(self.lake, "gold", "sales_daily", SALES_DAILY, [
                {"product_id": p, "sale_date": d, "units": a[0], "revenue": round(a[1], 2), "orders": a[2],
                 "brand": a[3], "category_code": a[4], "first_sale_minute": a[5], "last_sale_minute": a[6],
                 "updated_at": now} for (p, d), a in daily.items()],
                mode="overwrite")
        if "revenue_per_minute" in tables:
            write_table(self.lake, "gold", "revenue_per_minute", REVENUE_PER_MINUTE, [
                {"window_start": w, "units": a[0], "revenue": round(a[1], 2), "orders": a[2], "products": len(a[3]),
                 "updated_at": now} for w, a in total.items()], mode="overwrite")
        if "top_products" in tables:
            since = minute(now) - timedelta(minutes=self.top_window_minutes - 1)
            agg: dict[int, list] = defaultdict(lambda: [0, 0.0, None, None])
            for (p, w), a in per_minute.items():
                if w >= since:
                    agg[p][0] += a[0]
                    agg[p][1] += a[1]
                    agg[p][2], agg[p][3] = a[3], a[4]
            ranked = sorted(agg.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))[: self.top_k]
            write_table(self.lake, "gold", "top_products", TOP_PRODUCTS, [
                {"rank": i + 1, "product_id": p, "brand": a[2], "category_code": a[3], "units": a[0],
                 "revenue": round(a[1], 2), "window_minutes": self.top_window_minutes, "as_of": now}
                for i, (p, a) in enumerate(ranked)], mode="overwrite")


def quality_batch(batch_id: int, processed_at: datetime, read: int, valid: int, quarantined: int, duplicates: int,
                  by_rule: dict[str, int] | None = None, app_id: str = "stream") -> dict[str, Any]:
    return {"batch_id": batch_id, "load_id": f"{app_id}:{batch_id}", "processed_at": processed_at, "read": read, "valid": valid,
            "quarantined": quarantined, "duplicates": duplicates,
            "quarantined_by_rule": list((by_rule or {}).items()),
            "min_event_time": processed_at - timedelta(seconds=5), "max_event_time": processed_at - timedelta(seconds=1)}


def quarantined(offset: int, at: datetime, value: str, reasons: list[str], batch_id: int = 1,
                partition: int = 0) -> dict[str, Any]:
    return {"key": str(offset % 7), "value": value, "topic": "events", "partition": partition, "offset": offset,
            "kafka_timestamp": at - timedelta(seconds=1), "reasons": reasons, "load_id": f"stream:{batch_id}",
            "quarantined_at": at}
