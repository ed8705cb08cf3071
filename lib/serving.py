"""Gold *serving* tables of real-time sales, updated from the driver with delta-rs (``deltalake``).

Why not Spark MERGE here: these tables are tiny and a micro-batch touches a few hundred rows, but on
a small machine every Spark MERGE costs ~3 s of fixed overhead (several jobs), and three of them per
micro-batch put sales 15-20 s behind. delta-rs applies the same MERGE in ~0.1 s. The tables stay
plain Delta tables (created with Spark, read by Spark SQL, the dashboard and BigQuery).

Exactly once: the increments of a batch are computed in Spark from the batch's *new* silver rows
(duplicates already removed), and each table's commit carries a Delta app transaction
(``app_id``, ``batch_id``); a table that already holds the batch (crash + retry) is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from lib.domain.sales import DISPLAY, MINUTE_KEY, daily_increments, minute_total_increments, top_k, window_totals

MINUTE_TABLE = "gold/sales_per_minute"
DAILY_TABLE = "gold/sales_daily"
REVENUE_TABLE = "gold/revenue_per_minute"
TOP_TABLE = "gold/top_products"


log = logging.getLogger("shop.serving")

# a commit that lost against another writer of the same table (nightly `maintain` compacting it: Spark
# OPTIMIZE removes the files this MERGE read) is re-read and re-applied; the app transaction makes the
# retry idempotent (a commit that did land is skipped), so the stream never stops over maintenance
CONFLICT_RETRIES = 8
CONFLICT_BACKOFF_S = 0.2
conflict_retries = 0  # retries taken by this process (tests and logs)


def with_conflict_retry(what: str, write: Callable[[], None]) -> None:
    """Run ``write`` (which re-opens the table and checks its app transaction itself) again after a
    Delta commit conflict, up to ``CONFLICT_RETRIES`` times with a growing pause; other errors raise."""
    def retrying(state: RetryCallState) -> None:
        global conflict_retries
        conflict_retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning("%s: commit conflict with another writer (%s); retrying (%d/%d)", what,
                    str(exc).splitlines()[0][:200], state.attempt_number, CONFLICT_RETRIES)

    # 0.2 s, 0.4 s, ... between the tries; the last conflict raises, other errors at once
    Retrying(stop=stop_after_attempt(CONFLICT_RETRIES + 1), wait=wait_incrementing(CONFLICT_BACKOFF_S, CONFLICT_BACKOFF_S),
             retry=retry_if_exception_type(CommitFailedError), before_sleep=retrying, reraise=True)(write)


def _dt(path: str, storage_options: dict | None = None):
    return DeltaTable(path, storage_options=storage_options)


def _commit(app_id: str, batch_id: int):
    return CommitProperties(app_transactions=[Transaction(app_id, int(batch_id))])


def _applied(table, app_id: str, batch_id: int) -> bool:
    version = table.transaction_version(app_id)
    return version is not None and version >= batch_id


def append_once(path: str, data: pa.Table, app_id: str, batch_id: int,
                storage_options: dict | None = None) -> bool:
    """Append ``data`` to the Delta table at ``path`` unless batch ``batch_id`` of ``app_id`` is
    already in it (the commit records the app transaction). Returns True when it appended."""
    done = {"appended": False}

    def write() -> None:
        table = _dt(path, storage_options)
        if _applied(table, app_id, batch_id):
            return
        schema = pa.schema(table.schema().to_arrow())
        write_deltalake(path, data.select(schema.names).cast(schema), mode="append",
                        storage_options=storage_options, commit_properties=_commit(app_id, batch_id))
        done["appended"] = True

    with_conflict_retry(f"append to {path}", write)
    return done["appended"]


class ServingTables:
    """Applies a batch's sales increments to the gold serving tables and keeps ``top_products``."""

    def __init__(self, paths: dict[str, str], top_window_minutes: int, top_k: int,
                 storage_options: dict | None = None):
        self.paths = paths
        self.window = timedelta(minutes=top_window_minutes)
        self.top_window_minutes = top_window_minutes
        self.top_k = top_k
        self.storage_options = storage_options
        self._recent: pd.DataFrame | None = None  # per-minute rows of the last `window`, for the top list

    # -- increments ---------------------------------------------------------------------------------
    def apply(self, inc: pd.DataFrame, app_id: str, batch_id: int, now: datetime | None = None) -> None:
        """``inc``: one row per (product_id, window_start) the batch sold in, with the batch's
        ``units``, ``revenue``, ``orders`` (new purchase sessions) and ``new_key`` (1 if the product
        had no sale in that minute before this batch)."""
        if inc.empty:
            return
        now = now or datetime.now(timezone.utc)
        inc = inc.assign(updated_at=pd.Timestamp(now))
        if inc["window_start"].dt.tz is None:  # Spark's toPandas gives naive UTC (session time zone)
            inc = inc.assign(window_start=inc["window_start"].dt.tz_localize("UTC"))
        self._merge_minutes(inc, app_id, batch_id)
        self._merge_daily(inc, app_id, batch_id)
        self._merge_revenue(inc, app_id, batch_id)
        self._refresh_top(inc, app_id, batch_id)

    def _merge(self, name: str, df: pd.DataFrame, keys: list[str], updates: dict[str, str],
               app_id: str, batch_id: int) -> None:
        with_conflict_retry(f"merge into {name}", lambda: self._merge_once(name, df, keys, updates, app_id, batch_id))

    def _merge_once(self, name: str, df: pd.DataFrame, keys: list[str], updates: dict[str, str],
                    app_id: str, batch_id: int) -> None:
        table = _dt(self.paths[name], self.storage_options)
        if _applied(table, app_id, batch_id):
            return
        schema = table.schema().to_arrow()
        source = pa.Table.from_pandas(df, preserve_index=False)
        target = pa.schema(schema)
        names = [f.name for f in target if f.name in source.column_names]
        source = source.select(names).cast(pa.schema([target.field(n) for n in names]))
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        (
            table.merge(source, predicate, source_alias="s", target_alias="t",
                        commit_properties=_commit(app_id, batch_id))
            .when_matched_update(updates)
            .when_not_matched_insert_all()
            .execute()
        )

    def _merge_minutes(self, inc: pd.DataFrame, app_id: str, batch_id: int) -> None:
        df = inc[[*MINUTE_KEY, "units", "revenue", "orders", *DISPLAY, "updated_at"]]
        self._merge(MINUTE_TABLE, df, list(MINUTE_KEY), {
            "units": "t.units + s.units",
            "revenue": "round(t.revenue + s.revenue, 2)",
            "orders": "t.orders + s.orders",
            "brand": "coalesce(s.brand, t.brand)",
            "category_code": "coalesce(s.category_code, t.category_code)",
            "updated_at": "s.updated_at",
        }, app_id, batch_id)

    def _merge_daily(self, inc: pd.DataFrame, app_id: str, batch_id: int) -> None:
        self._merge(DAILY_TABLE, daily_increments(inc), ["product_id", "sale_date"], {
            "units": "t.units + s.units",
            "revenue": "round(t.revenue + s.revenue, 2)",
            "orders": "t.orders + s.orders",
            "brand": "coalesce(s.brand, t.brand)",
            "category_code": "coalesce(s.category_code, t.category_code)",
            "first_sale_minute": "CASE WHEN s.first_sale_minute < t.first_sale_minute "
                                 "THEN s.first_sale_minute ELSE t.first_sale_minute END",
            "last_sale_minute": "CASE WHEN s.last_sale_minute > t.last_sale_minute "
                                "THEN s.last_sale_minute ELSE t.last_sale_minute END",
            "updated_at": "s.updated_at",
        }, app_id, batch_id)

    def _merge_revenue(self, inc: pd.DataFrame, app_id: str, batch_id: int) -> None:
        self._merge(REVENUE_TABLE, minute_total_increments(inc), ["window_start"], {
            "units": "t.units + s.units",
            "revenue": "round(t.revenue + s.revenue, 2)",
            "orders": "t.orders + s.orders",
            "products": "t.products + s.products",
            "updated_at": "s.updated_at",
        }, app_id, batch_id)

    # -- top products ---------------------------------------------------------------------------------
    def _load_recent(self, as_of: pd.Timestamp) -> pd.DataFrame:
        table = _dt(self.paths[MINUTE_TABLE], self.storage_options)
        lo = (as_of - self.window).to_pydatetime()
        data = table.to_pyarrow_table(
            columns=["product_id", "window_start", "units", "revenue", "brand", "category_code"],
            filters=[("window_start", ">", lo)],
        )
        return data.to_pandas()

    def _refresh_top(self, inc: pd.DataFrame, app_id: str, batch_id: int) -> None:
        top_path = self.paths[TOP_TABLE]
        as_of = max(inc["window_start"].max(), self._recent["window_start"].max()
                    if self._recent is not None and not self._recent.empty else inc["window_start"].max())
        if self._recent is None:
            # first batch of this process: the per-minute table already holds this batch's increments
            recent = self._load_recent(as_of)
        else:
            cols = ["product_id", "window_start", "units", "revenue", "brand", "category_code"]
            recent = pd.concat([self._recent, inc[cols]], ignore_index=True)
        recent = recent[recent["window_start"] > as_of - self.window]
        self._recent = recent
        best = top_k(pa.Table.from_pandas(window_totals(recent), preserve_index=False), self.top_k)
        n = best.num_rows
        best = best.append_column("window_minutes", pa.array([self.top_window_minutes] * n, pa.int32())).append_column(
            "as_of", pa.array([as_of] * n, pa.timestamp("us", tz="UTC")))

        def write() -> None:
            table = _dt(top_path, self.storage_options)
            if _applied(table, app_id, batch_id):
                return
            schema = pa.schema(table.schema().to_arrow())
            data = best.select([f.name for f in schema]).cast(schema)
            write_deltalake(top_path, data, mode="overwrite", storage_options=self.storage_options,
                            commit_properties=_commit(app_id, batch_id))

        with_conflict_retry(f"overwrite {TOP_TABLE}", write)
