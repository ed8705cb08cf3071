"""`make status` and every reader of table statistics (lib/delta_io.py): an empty table, a table being
created, a damaged log and a missing lake are states to report, never a Rust panic or a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lib.config import PROJECT_ROOT
from lib.delta_io import add_actions, row_count


def _status(lake, *args):
    env = {"SHOP__LAKE__ROOT": str(lake), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "jobs.ops.status", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def lake(tmp_path):
    lake = tmp_path / "lake"
    write_deltalake(str(lake / "bronze" / "events"), pa.table({"offset": pa.array([1, 2, 3], pa.int64())}))
    write_deltalake(str(lake / "silver" / "events"), pa.table({"a": pa.array([1, 2], pa.int64())}))
    write_deltalake(str(lake / "quarantine" / "events"), pa.table({"a": pa.array([3], pa.int64())}))
    # created, no data file yet: deltalake's get_add_actions panics on these
    write_deltalake(str(lake / "gold" / "retarget_uplift"), pa.table({"a": pa.array([], pa.int64())}))
    write_deltalake(str(lake / "retarget" / "unsubscribes"), pa.table({"a": pa.array([], pa.int64())}))
    (lake / "retarget" / "attempts" / "_delta_log").mkdir(parents=True)  # first commit not written yet
    return lake


def test_empty_tables_have_no_files_and_zero_rows(lake):
    dt = DeltaTable(str(lake / "gold" / "retarget_uplift"))
    assert add_actions(dt).num_rows == 0 and row_count(dt) == 0
    assert row_count(DeltaTable(str(lake / "bronze" / "events"))) == 3


def test_status_lists_every_layer_and_accounts_for_the_records(lake):
    proc = _status(lake)
    assert proc.returncode == 0, proc.stderr
    assert "panicked" not in proc.stderr and "Traceback" not in proc.stderr
    out = proc.stdout
    for table in ("bronze/events", "gold/retarget_uplift", "retarget/unsubscribes", "retarget/attempts"):
        assert table in out
    assert "being created" in out
    assert "records: bronze 3 = silver 2 + quarantine 1 + duplicates removed 0" in out
    data = json.loads(_status(lake, "--json").stdout)
    states = {t["table"]: (t["state"], t["rows"]) for t in data["tables"]}
    assert states["gold/retarget_uplift"] == ("ok", 0) and states["retarget/attempts"] == ("creating", None)


def test_a_damaged_log_is_one_line_and_exit_1(lake):
    log = lake / "silver" / "events" / "_delta_log" / "00000000000000000000.json"
    log.write_text("{not json\n")
    proc = _status(lake)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr
    assert re.search(r"^  silver/events +unreadable: \S", proc.stdout, re.M), proc.stdout
    assert "status: 1 table(s) cannot be read: silver/events" in proc.stderr.splitlines()


def test_missing_lake_and_records_of_nothing(tmp_path):
    proc = _status(tmp_path / "nowhere")
    assert proc.returncode == 0 and "no Delta tables under" in proc.stdout
    assert _status(tmp_path / "nowhere", "--records", "bronze").stdout.strip() == "0"
    assert _status(tmp_path / "nowhere", "--records", "cleaned").stdout.strip() == "0"
