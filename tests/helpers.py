"""Small test helpers shared by the tests (no fixtures here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from lib.config import PROJECT_ROOT
from lib.delta_io import add_actions
from tools.wait import wait_until


def delta_rows(path: str | Path, columns: list[str] | None = None):
    """Rows of a Delta table as a pyarrow Table, read without Spark (None if not created yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(str(path)).to_pyarrow_table(columns=columns)
    except TableNotFoundError:
        return None


def stats_columns(path: str | Path) -> tuple[dict[str, str], set[str]]:
    """A Delta table's properties, and the columns its data files carry statistics for (min or null count
    in any file's add action), read without Spark."""
    from deltalake import DeltaTable

    dt = DeltaTable(str(path))
    return dict(dt.metadata().configuration), {name.split(".", 1)[1] for name in add_actions(dt).column_names
                                               if name.startswith(("min.", "null_count."))}


def bronze_values(lake: str | Path) -> dict[tuple[int, int], bytes | None]:
    """(partition, offset) -> the raw value bytes ``bronze/events`` holds (string column read as binary:
    no decoding)."""
    import pyarrow as pa

    t = delta_rows(Path(lake) / "bronze" / "events", columns=["partition", "offset", "value"])
    values = t.column("value").cast(pa.binary()).to_pylist()
    return {(p, o): v for p, o, v in zip(t.column("partition").to_pylist(), t.column("offset").to_pylist(), values,
                                         strict=True)}


def delta_count(path: str | Path) -> int:
    table = delta_rows(path, columns=["offset"])
    return 0 if table is None else table.num_rows


# the tests' wait: tools.wait's, failing the test (AssertionError) when the condition never holds
wait_for = partial(wait_until, error=AssertionError)


def start_app(env_overrides: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """Start jobs/streaming/app.py in its own process group (so SIGKILL takes the JVM too)."""
    env = dict(os.environ, **env_overrides)
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "jobs" / "streaming" / "app.py"), *args],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 60) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


# -- the cart-recovery dispatcher's input ---------------------------------------------------------------
def outbox_row(session: str, user: int, expired: datetime, *, items: list[dict], cart_value: float, n_units: int,
               purchased: datetime | None = None) -> dict:
    """One ``retarget/outbox`` row: a cart that expired at ``expired`` (last cart add 31 min before)."""
    return {"user_session": session, "user_id": user, "items": items, "cart_value": cart_value, "n_units": n_units,
            "first_event_at": expired - timedelta(minutes=45), "last_activity_at": expired - timedelta(minutes=30),
            "last_cart_at": expired - timedelta(minutes=31), "user_purchased_at": purchased, "expired_at": expired,
            "detected_at": expired, "written_at": expired}


def add_outbox(store, rows: list[dict]) -> None:
    """Append outbox rows as the streaming app does (new sessions only)."""
    import pyarrow as pa

    from lib.retarget.store import OUTBOX
    from lib.schema import arrow_schema

    store.insert_new(OUTBOX, pa.Table.from_pylist(rows, schema=arrow_schema(OUTBOX)), "user_session")


class CapturingSender:
    """An email sender that keeps every message it is given (tests that read what an email shows)."""

    name = "capture"

    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)
        return msg.header("Message-ID")

    def close(self):
        pass
