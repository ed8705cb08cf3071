"""maintain's compaction scope (lib/batch/maintain.py): bin-packing works per partition, so a table is
compacted only where a partition holds two files or more, and only those partitions are named."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from deltalake import write_deltalake

from lib.batch.maintain import compaction_scope as _scope
from lib.delta_io import open_table_or_none


def compaction_scope(path: str, min_files: int):
    return _scope(open_table_or_none(path), min_files)


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
