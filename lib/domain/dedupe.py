"""Exact duplicates: the key, which copy wins, and the driver-side (pandas) form.

Two events are the same event when every event field (:data:`KEY_FIELDS`, the CSV columns) is equal;
silver stores a hash of them as :data:`KEY` (``event_key``, built by :func:`lib.domain.spark.event_key`).
A row is a duplicate when silver already holds its key (an earlier batch wrote it) or, inside one
batch, when another row with its key comes first by :data:`FIRST_WINS` (the lowest Kafka position).
Duplicates share their event time (it is one of the fields), which is why the driver keeps its index of
silver's keys per event-time minute (:mod:`lib.recent_silver`).

The Spark form (the backfill, large batches) is :func:`lib.domain.spark.drop_duplicates_within` /
:func:`lib.domain.spark.drop_seen`. The cart state of ``lib.sessions`` counts a cart event once with the
same rule restricted to one session (:data:`lib.domain.carts.CART_EVENT_KEY`).
"""

from __future__ import annotations

import pandas as pd

from lib.schema import CSV_COLUMNS

KEY = "event_key"
KEY_FIELDS: tuple[str, ...] = tuple(CSV_COLUMNS)
FIRST_WINS = ("topic", "partition", "offset")  # inside a batch the lowest Kafka position is kept


def first_per_key(rows: pd.DataFrame) -> pd.Series:
    """``rows`` (:data:`KEY` and :data:`FIRST_WINS` columns) -> True for the copy of each key that is
    kept inside the batch, aligned with ``rows``' index."""
    return ~rows.sort_values(list(FIRST_WINS)).duplicated(KEY).sort_index()
