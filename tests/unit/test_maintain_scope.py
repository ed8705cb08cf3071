"""maintain's compaction scope (lib/batch/maintain.py): bin-packing works per partition, so a table is
compacted only where a partition holds two small files or more, and only those partitions are named;
files at or above ``batch.compact_small_file_mb`` neither count nor get rewritten."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from deltalake import write_deltalake

from lib import delta_io
from lib.batch.maintain import compaction_scope as _scope
from lib.delta_io import open_table_or_none


def compaction_scope(path: str, min_files: int, small_bytes: int = 2**30):
    return _scope(open_table_or_none(path), min_files, small_bytes)


def _append(path, day: dt.date | None, n: int = 1) -> None:
    for i in range(n):
        write_deltalake(str(path), pa.table({"x": pa.array([i], pa.int64()), "d": pa.array([day], pa.date32())}),
                        mode="append", partition_by=["d"])


def test_only_partitions_with_two_files_or_more_are_compacted(tmp_path):
    t = tmp_path / "t"
    for k in range(5):  # one file per day: nothing to pack, however many files
        _append(t, dt.date(2020, 1, 1 + k))
    assert compaction_scope(str(t), min_files=2) == (False, None)
    _append(t, dt.date(2020, 1, 3), 2)
    _append(t, None, 2)
    assert compaction_scope(str(t), min_files=10) == (False, None)  # 9 files: below the threshold
    compact, where = compaction_scope(str(t), min_files=2)
    assert compact and where == "`d` IN ('2020-01-03') OR `d` IS NULL"


def test_an_unpartitioned_table_is_compacted_whole_and_a_missing_one_not(tmp_path):
    t = tmp_path / "u"
    for i in range(3):
        write_deltalake(str(t), pa.table({"x": [i]}), mode="append")
    assert compaction_scope(str(t), min_files=3) == (True, None)
    assert compaction_scope(str(t), min_files=4) == (False, None)
    assert compaction_scope(str(tmp_path / "none"), min_files=2) == (False, None)


def _sizes(path) -> dict[str, int]:
    adds = delta_io.add_actions(open_table_or_none(str(path)))
    return dict(zip(adds["path"].to_pylist(), adds["size_bytes"].to_pylist()))


def test_only_small_files_count_towards_a_compaction(tmp_path):
    t = tmp_path / "s"
    for i in range(3):
        write_deltalake(str(t), pa.table({"x": [i]}), mode="append")
    largest = max(_sizes(t).values())
    assert compaction_scope(str(t), min_files=3, small_bytes=largest + 1) == (True, None)
    # a backfill's big files: as many as you like, nothing to pack
    assert compaction_scope(str(t), min_files=2, small_bytes=min(_sizes(t).values())) == (False, None)


def test_optimize_packs_the_small_files_and_leaves_the_big_ones(tmp_path, spark):
    t = tmp_path / "b"
    for seed in range(2):  # two "big" files: 20k distinct doubles do not compress
        write_deltalake(str(t), pa.table({"x": pa.array([seed + i / 7 for i in range(20_000)])}), mode="append")
    big = _sizes(t)
    for i in range(3):
        write_deltalake(str(t), pa.table({"x": [float(i)]}), mode="append")
    small_bytes = min(big.values())  # the big files are not below it, the one-row files are
    assert compaction_scope(str(t), min_files=3, small_bytes=small_bytes) == (True, None)
    delta_io.compact(spark, str(t), min_file_bytes=small_bytes)
    after = _sizes(t)
    assert set(big) < set(after) and len(after) == 3  # the big two kept as they were, the three small packed into one
    assert spark.conf.get(delta_io.OPTIMIZE_MIN_FILE_SIZE, None) is None  # the session's setting is restored
    assert delta_io.row_count(open_table_or_none(str(t))) == 40_003
