"""Maintenance beside the live stream (issue #13.4): the stream's gold MERGEs survive a compaction that
commits between their read and their commit (retried on the new version, counted once), and
``maintain`` isolates tables: a compaction that loses a commit race is retried, a table that fails
does not stop the others, and the failure is named in one line."""

from __future__ import annotations

import pandas as pd
import pytest
from deltalake import DeltaTable

from lib import delta_io, lakehouse, serving
from lib.batch import maintain as M


def increments(batch: int, also_first: bool = False) -> pd.DataFrame:
    """Batch ``batch`` sells 2 units of product ``batch`` in minute 12:``batch`` (a new key: each batch
    adds a file); ``also_first``: and 1 more of batch 1's key (the MERGE rewrites batch 1's file)."""
    keys = [(batch, batch)] + ([(1, 1)] if also_first else [])
    return pd.DataFrame({
        "product_id": pd.Series([k[0] for k in keys], dtype="int64"),
        "window_start": pd.to_datetime([f"2026-11-27 12:{k[1]:02d}" for k in keys]).tz_localize("UTC"),
        "units": pd.Series([2] + [1] * also_first, dtype="int64"), "revenue": [3.0] + [1.5] * also_first,
        "orders": pd.Series([1] * len(keys), dtype="int64"), "new_key": pd.Series([1] + [0] * also_first, dtype="int64"),
        "brand": ["b"] * len(keys), "category_code": [None] * len(keys),
    })


@pytest.fixture(scope="module")
def lake(cfg, tmp_path_factory, empty_lake):
    """One lake for both tests: they use different app ids."""
    root = empty_lake(tmp_path_factory.mktemp("maintain") / "lake")
    lake_cfg = cfg.model_copy(update={"lake": cfg.lake.model_copy(update={"root": str(root)}),
                                      "batch": cfg.batch.model_copy(update={"compact_min_files": 2})})
    return lakehouse.Lakehouse(lake_cfg), lake_cfg


def test_a_compaction_between_read_and_commit_is_retried_and_counted_once(lake, monkeypatch):
    lh, _ = lake
    for b in range(1, 5):  # several MERGE commits = several files to compact
        lh.serving.apply(increments(b), "app", b)
    path = lh.path[serving.MINUTE_TABLE]
    real_dt, fired = delta_io.open_table, []

    def dt_then_compact(p, storage_options=None):
        table = real_dt(p, storage_options)
        if p == path and not fired:  # the MERGE holds its snapshot: now maintenance compacts the table
            fired.append(DeltaTable(p).optimize.compact())
        return table

    monkeypatch.setattr(delta_io, "open_table", dt_then_compact)
    before = delta_io.conflict_retries
    lh.serving.apply(increments(5, also_first=True), "app", 5)  # must not raise
    assert fired and fired[0]["numFilesRemoved"] >= 2
    assert delta_io.conflict_retries == before + 1
    got = DeltaTable(path).to_pandas().set_index("product_id")["units"].to_dict()
    assert got == {1: 3, 2: 2, 3: 2, 4: 2, 5: 2}  # every batch exactly once, the retried one too
    lh.serving.apply(increments(5, also_first=True), "app", 5)  # a re-run of the same batch changes nothing
    assert DeltaTable(path).to_pandas().set_index("product_id")["units"].to_dict() == got


def test_maintain_retries_a_lost_commit_race_and_isolates_a_broken_table(spark, lake, monkeypatch):
    lh, cfg = lake
    for b in range(1, 4):
        lh.serving.apply(increments(10 + b), "other-app", b)  # new keys: one more file each
    from delta.tables import DeltaTable as SparkDeltaTable

    real_for_path, races = SparkDeltaTable.forPath, {"n": 0}

    class Racing:
        def __init__(self, table):
            self.table = table

        def optimize(self):
            outer = self

            class Builder:
                def executeCompaction(self):  # noqa: N802 - Delta's API
                    if races["n"] == 0:
                        races["n"] += 1
                        raise RuntimeError("[DELTA_CONCURRENT_DELETE_READ] ConcurrentDeleteReadException: "
                                           "a concurrent transaction deleted a file this one read")
                    return outer.table.optimize().executeCompaction()
            return Builder()

        def __getattr__(self, name):
            return getattr(self.table, name)

    monkeypatch.setattr(SparkDeltaTable, "forPath", classmethod(lambda cls, s, p: Racing(real_for_path(s, p))))
    # and one table whose log is damaged: the others are still maintained, the failure named
    broken = lh.path["quarantine/events"]
    import pathlib
    for f in pathlib.Path(broken, "_delta_log").glob("*.json"):
        f.write_text("not json\n")
    # three tables are enough (the whole lake's VACUUMs cost a minute on 2 cores)
    names = [serving.MINUTE_TABLE, "quarantine/events", "silver/events"]
    monkeypatch.setattr(M, "lake_tables", lambda s, c: {n.replace("/", "."): lh.path[n] for n in names})
    monkeypatch.setattr(M, "maintain_retarget", lambda c: [])
    with pytest.raises(M.MaintenanceError, match="1 of 3 tables failed.*quarantine"):
        M.maintain(spark, cfg)
    assert races["n"] == 1
    gold = DeltaTable(lh.path[serving.MINUTE_TABLE])
    assert gold.history(1)[0]["operation"] in ("OPTIMIZE", "VACUUM END", "VACUUM START")
    assert any(h["operation"] == "OPTIMIZE" for h in gold.history())
