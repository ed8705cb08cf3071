"""The product catalogue the cart-recovery emails take their product facts from (``gold/product_catalogue``).

Events are published by clients: anyone who can publish one could otherwise put their own brand,
category or price into a shop-signed email. So the email shows, for each cart item, only what this
table says about the product (brand, category, price; the quantity and the numeric product id come
from the cart), and a generic line for a product the table does not know (docs/retarget.md).

Where the rows come from (``source``):

* ``silver`` — built by the nightly ``gold`` stage from every silver event (:func:`build_from_silver`,
  Spark). Robust to a few spoofed events: a product needs events from at least ``min_users`` distinct
  users; brand, category code and category id are the value seen by the most distinct users (ties:
  more events, then the smaller value); the price is the *lower median* of each user's last price
  of the product's latest day that at least ``min_users`` users saw it (a product never seen by that
  many users in one day: of the latest ``recent_users`` (9) users' last prices). A user counts once
  however many events they sent. Brands and category codes that do not look like one (anything but
  letters, digits, blanks and ``. & ' + _ -``; more than 40 characters)
  become null. So one spoofed event — or a flood from one user id — changes nothing once two real
  users saw the product that day (a median needs a majority). Not defended: many forged user ids
  (user ids are client data too); a shop that must resist that imports its own catalogue export.
* ``generator`` — the catalogue of :mod:`lib.data.generator.catalogue` (the shop's export for generated data;
  ``make demo`` imports it before its replay): ``python -m jobs.ops.catalogue import-generator``.

The dispatcher reads the table with delta-rs (no Spark) and re-reads it when its version changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from lib.data.generator.catalogue import _catalog
from lib.delta_io import replace_table
from lib.schema import BATCH_TABLE_DDL, arrow_schema

CATALOGUE = "gold/product_catalogue"
MIN_USERS = 2
RECENT_USERS = 9
GENERATOR_SOURCE = "generator"
# what a brand / category code may look like to be shown at all (the real data: "runail", "f.o.x",
# "appliances.environment.vacuum"); the HTML template escapes on top of this
TEXT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 .&'+_-]{0,39}$"
_TEXT = re.compile(TEXT_PATTERN)


@dataclass(frozen=True)
class Product:
    brand: str | None
    category_code: str | None
    category_id: int | None
    price: float


Catalogue = Mapping[int, Product]


def plausible(text: str | None) -> str | None:
    """``text`` when it looks like a brand / category code, else None."""
    return text if text is not None and _TEXT.fullmatch(text) else None


def from_table(table: pa.Table) -> dict[int, Product]:
    """product id -> :class:`Product` from rows of ``gold/product_catalogue`` (last row of an id wins)."""
    cols = table.select(["product_id", "brand", "category_code", "category_id", "price"]).to_pydict()
    out: dict[int, Product] = {}
    for pid, brand, code, cid, price in zip(cols["product_id"], cols["brand"], cols["category_code"],
                                            cols["category_id"], cols["price"], strict=True):
        if pid is None or price is None:
            continue
        out[int(pid)] = Product(plausible(brand), plausible(code), cid, float(price))
    return out


def load(store) -> dict[int, Product]:
    """The catalogue of a :class:`lib.retarget.store.RetargetStore`'s lake (empty when not built yet)."""
    return from_table(store.read(CATALOGUE))


def write_products(store, products: Mapping[int, Product], source: str = "import",
                   now: datetime | None = None) -> None:
    """Replace the catalogue with ``products`` (a shop's own export; tests)."""
    stamp = now or datetime.now(UTC)
    store.overwrite(CATALOGUE, pa.Table.from_pylist(
        [{"product_id": pid, "brand": p.brand, "category_code": p.category_code, "category_id": p.category_id,
          "price": p.price, "price_at": stamp, "users": None, "events": None, "source": source, "updated_at": stamp}
         for pid, p in products.items()], schema=arrow_schema(CATALOGUE)))


# --- built from silver (Spark; the gold stage) ----------------------------------------------------------
def build_from_silver(events, min_users: int = MIN_USERS, now: datetime | None = None,
                      recent_users: int = RECENT_USERS):
    """``gold/product_catalogue`` rows (Spark DataFrame) from silver events. See the module docstring."""
    # deferred: this module is in the dashboard image (via lib.retarget.message), which has no pyspark
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ev = (events.where(F.col("product_id").isNotNull() & F.col("user_id").isNotNull() & F.col("price").isNotNull())
          .select("product_id", "user_id", "event_time", "price", "category_id",
                  *[F.when(F.col(c).rlike(TEXT_PATTERN), F.col(c)).alias(c) for c in ("brand", "category_code")],
                  F.to_date("event_time").alias("day")))
    totals = ev.groupBy("product_id").agg(F.countDistinct("user_id").alias("users"), F.count("*").alias("events"))

    def most_seen(col: str):
        counted = ev.groupBy("product_id", col).agg(F.countDistinct("user_id").alias("u"), F.count("*").alias("n"))
        w = Window.partitionBy("product_id").orderBy(F.desc("u"), F.desc("n"), F.asc_nulls_last(col))
        return counted.withColumn("r", F.row_number().over(w)).where("r = 1").select("product_id", col)

    # each user's last price of a day counts once (a flood from one user id is one vote)
    per_user_day = ev.groupBy("product_id", "day", "user_id").agg(
        F.max_by("price", "event_time").alias("price"), F.max("event_time").alias("at"))
    day_users = per_user_day.groupBy("product_id", "day").agg(F.count("*").alias("day_users"))
    latest = (day_users.where(F.col("day_users") >= min_users).groupBy("product_id")
              .agg(F.max("day").alias("day")))
    on_latest_day = per_user_day.join(latest, ["product_id", "day"]).select("product_id", "price", "at")
    # products no day of which had min_users users: the last price of each of the latest recent_users users
    per_user = per_user_day.groupBy("product_id", "user_id").agg(F.max_by("price", "at").alias("price"),
                                                                 F.max("at").alias("at"))
    newest = Window.partitionBy("product_id").orderBy(F.desc("at"), F.asc("user_id"))
    latest_users = (per_user.join(latest, "product_id", "left_anti")
                    .withColumn("k", F.row_number().over(newest)).where(F.col("k") <= recent_users)
                    .select("product_id", "price", "at"))
    pool = on_latest_day.unionByName(latest_users)
    by_price = Window.partitionBy("product_id").orderBy("price")
    whole = Window.partitionBy("product_id")
    price = (pool.withColumn("r", F.row_number().over(by_price)).withColumn("n", F.count("*").over(whole))
             .withColumn("price_at", F.max("at").over(whole))
             .where(F.col("r") == F.floor((F.col("n") + 1) / 2))  # the lower median
             .select("product_id", "price", "price_at"))
    stamp = now or datetime.now(UTC)
    return (totals.where(F.col("users") >= min_users)
            .join(price, "product_id")
            .join(most_seen("brand"), "product_id", "left")
            .join(most_seen("category_code"), "product_id", "left")
            .join(most_seen("category_id"), "product_id", "left")
            .select("product_id", "brand", "category_code", "category_id", "price", "price_at", "users", "events",
                    F.lit("silver").alias("source"), F.lit(stamp).cast("timestamp").alias("updated_at")))


def write_from_silver(spark, cfg, min_users: int = MIN_USERS, silver=None) -> int:
    """Replace ``gold/product_catalogue`` with the catalogue built from silver (``silver``: already
    read, e.g. the gold stage's cached copy); returns its rows."""
    if silver is None:
        silver = spark.read.format("delta").load(cfg.lake.table("silver", "events"))
    df = build_from_silver(silver, min_users).selectExpr(
        *[f"CAST({c.split()[0]} AS {c.split()[1]}) AS {c.split()[0]}"
          for c in BATCH_TABLE_DDL[CATALOGUE].split(", ")])
    path = cfg.lake.table(*CATALOGUE.split("/"))
    replace_table(df, path)
    return spark.read.format("delta").load(path).count()


# --- the generator's catalogue (make demo) ------------------------------------------------------------------
def generator_table(now: datetime | None = None) -> pa.Table:
    """The generator's fixed catalogue as ``gold/product_catalogue`` rows: each product's current price
    (after its price change, when it has one)."""
    cat = _catalog()
    stamp = now or datetime.now(UTC)
    n = len(cat.product_id)
    return pa.table({
        "product_id": cat.product_id, "brand": cat.brand.tolist(), "category_code": cat.category_code.tolist(),
        "category_id": cat.category_id, "price": np.round(cat.price[:, 1], 2),
        "price_at": pa.array([stamp] * n, pa.timestamp("us", tz="UTC")), "users": pa.nulls(n, pa.int64()),
        "events": pa.nulls(n, pa.int64()), "source": [GENERATOR_SOURCE] * n,
        "updated_at": pa.array([stamp] * n, pa.timestamp("us", tz="UTC")),
    }).cast(arrow_schema(CATALOGUE))
