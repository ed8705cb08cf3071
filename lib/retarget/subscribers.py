"""Load the newsletter subscribers (CSV ``user_id,email,consent,first_name,locale``; the generator
writes one beside its events) into the ``retarget/subscribers`` Delta table, replacing its contents.

The command line is ``python -m jobs.ops.subscribers <subscribers.csv>`` (``make subscribers``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from lib.retarget.redact import redact
from lib.retarget.store import SUBSCRIBERS, RetargetStore
from lib.schema import SUBSCRIBER_COLUMNS


class SubscriberFileError(ValueError):
    pass


def read_subscribers(path: str | Path) -> pa.Table:
    """Read and check a subscribers CSV; one-line errors name the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise SubscriberFileError(f"subscribers file not found: {path}")
    try:
        t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={"user_id": pa.int64(), "email": pa.string(), "consent": pa.string(),
                          "first_name": pa.string(), "locale": pa.string()},
            strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SubscriberFileError(f"{path}: {str(exc).splitlines()[0]}") from None
    missing = [c for c in SUBSCRIBER_COLUMNS if c not in t.column_names]
    if missing:
        raise SubscriberFileError(f"{path}: missing column {missing[0]!r} (expected {','.join(SUBSCRIBER_COLUMNS)})")
    consent_raw = [str(v).strip().lower() for v in t["consent"].to_pylist()]
    bad = next((i for i, v in enumerate(consent_raw) if v not in ("true", "false", "1", "0", "yes", "no")), None)
    if bad is not None:
        raise SubscriberFileError(f"{path}: line {bad + 2}: consent must be true/false, got {consent_raw[bad]!r}")
    emails = t["email"].to_pylist()
    bad = next((i for i, e in enumerate(emails) if not e or "@" not in e or any(c in e for c in "\r\n <>,;")), None)
    if bad is not None:
        # the value itself stays out of the message (it is someone's near-address): the line says where
        raise SubscriberFileError(f"{path}: line {bad + 2}: not an email address: {redact(repr(emails[bad]), emails[bad])}")
    now = datetime.now(UTC)
    return pa.table({
        "user_id": t["user_id"], "email": t["email"],
        "consent": pa.array([v in ("true", "1", "yes") for v in consent_raw]),
        "first_name": t["first_name"], "locale": t["locale"], "loaded_at": pa.array([now] * t.num_rows,
                                                                                    pa.timestamp("us", tz="UTC")),
    })


def load(store: RetargetStore, path: str | Path) -> int:
    table = read_subscribers(path)
    store.ensure(SUBSCRIBERS)
    store.overwrite(SUBSCRIBERS, table)
    return table.num_rows
