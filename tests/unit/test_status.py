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


def test_carts_progress_is_the_sessions_watermark_the_undecided_carts_and_the_emails_sent(tmp_path):
    """``--carts`` (what ``make demo`` waits on before it points at var/mail/new): the newest real
    watermark of ops/session_batches (Spark's 1970 "none yet" is not one), outbox sessions without a
    decision, decisions ``sent``."""
    from datetime import UTC, datetime

    from lib.retarget.store import DECISIONS, RetargetStore
    from lib.schema import arrow_schema
    from tests.helpers import add_outbox, outbox_row

    lake = tmp_path / "lake"
    assert _status(lake, "--carts").stdout.split() == ["0", "0", "0"]  # no lake yet: nothing reached, nothing due
    store = RetargetStore(str(lake))
    t = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    ops = arrow_schema("ops/session_batches")
    store.append("ops/session_batches", pa.Table.from_pylist(
        [{"batch_id": 0, "watermark": datetime(1970, 1, 1, tzinfo=UTC)}, {"batch_id": 1, "watermark": t},
         {"batch_id": 2, "watermark": None}], schema=ops))
    add_outbox(store, [outbox_row(s, 1, t, items=[], cart_value=1.0, n_units=1) for s in ("a", "b", "c")])
    store.append(DECISIONS, pa.Table.from_pylist(
        [{"user_session": "a", "decision": "sent"}, {"user_session": "b", "decision": "control"}],
        schema=arrow_schema(DECISIONS)))
    proc = _status(lake, "--carts")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(int(t.timestamp())), "1", "1"]
