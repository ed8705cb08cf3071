"""The serving tables' in-memory window of recent per-minute rows (lib.serving)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from lib.serving import RECENT_COLUMNS, append_recent


def frame(brand, category_code, minute: int, text: str) -> pd.DataFrame:
    """Per-minute rows as the app holds them: the kept ones read back with delta-rs (text columns
    ``object``), a batch's increments from Spark (``string``) — seen in the demo's log."""
    return pd.DataFrame({"product_id": [1, 2], "window_start": [pd.Timestamp(2026, 12, 2, 12, minute, tz="UTC")] * 2,
                         "units": [1, 2], "revenue": [3.0, 4.0], "brand": pd.Series(brand, dtype=text),
                         "category_code": pd.Series(category_code, dtype=text)}, columns=RECENT_COLUMNS)


KEPT, BATCH = "object", "string"


@pytest.mark.parametrize("kept, batch, pandas_warns", [
    (frame(["a", "b"], [None, None], 0, KEPT), frame(["c", "d"], [None, None], 1, BATCH), False),  # the demo's first
    (frame(["a", "b"], ["x.y", "x.z"], 0, KEPT), frame(["c", "d"], [None, None], 1, BATCH), False),  # a batch without
    (frame(["a", "b"], [None, None], 0, KEPT), frame(["c", "d"], ["x.y", "x.z"], 1, BATCH), True),  # kept rows without
    (frame(["a", "b"], ["x.y", "x.z"], 0, KEPT).iloc[:0], frame(["c", "d"], ["x.y", "x.z"], 1, BATCH), True),  # none kept
])
def test_a_batch_joins_the_kept_rows_without_a_pandas_warning_and_keeps_every_value(kept, batch, pandas_warns):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        plain = pd.concat([kept, batch], ignore_index=True)
    # what this guards against: kept rows whose column is all-NA (or none kept), a batch with values (pandas 2.3)
    assert any(issubclass(w.category, FutureWarning) for w in seen) == pandas_warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = append_recent(kept, batch)
    assert len(out) == len(kept) + len(batch) and list(out.columns) == RECENT_COLUMNS
    assert out["brand"].astype(object).tolist() == [*kept["brand"], *batch["brand"]]
    pd.testing.assert_frame_equal(out.drop(columns=["brand", "category_code"]),
                                  plain.drop(columns=["brand", "category_code"]))
    assert out["category_code"].notna().sum() == plain["category_code"].notna().sum()
