"""The retargeting Delta tables, read and written without Spark (delta-rs, ``deltalake``).

Each table has one writer: the streaming sink writes the outbox, the dispatcher its decisions,
attempts and offers, the dashboard the unsubscribes, ``python -m jobs.ops.subscribers`` the subscribers.
Schemas come from ``lib.schema`` (the same DDL Spark uses); the tables are opened, read and written
through ``lib.delta_io``.

Personal data: ``retarget/subscribers`` and ``retarget/unsubscribes`` hold email addresses — that is
their purpose; no other table does (decisions keep the domain only, errors and details are redacted).
Their history is vacuumed after ``retarget.history_retention_hours`` and one user can be erased
(``lib.retarget.personal_data``; docs/retarget.md, "Personal data").
"""

from __future__ import annotations

import pyarrow as pa

from lib import delta_io
from lib.schema import arrow_schema

OUTBOX = "retarget/outbox"
DECISIONS = "retarget/decisions"
ATTEMPTS = "retarget/attempts"
SUBSCRIBERS = "retarget/subscribers"
UNSUBSCRIBES = "retarget/unsubscribes"
OFFERS = "retarget/offers"
SENDER_HEALTH = "ops/sender_health"  # the dispatcher's circuit: opened (why) / closed


class RetargetStore:
    def __init__(self, lake_root: str, storage_options: dict[str, str] | None = None):
        self.root = lake_root.rstrip("/")
        self.storage_options = storage_options

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _table(self, name: str):
        return delta_io.open_table_or_none(self.path(name), self.storage_options)

    def ensure(self, name: str) -> None:
        """Create the (empty) table if it does not exist yet; give a table of an older version the
        columns added since (each table has one writer, the caller: no other commit races this one)."""
        table = self._table(name)
        if table is None:
            delta_io.create_table(self.path(name), arrow_schema(name), self.storage_options)
        else:
            delta_io.add_missing_columns(table, arrow_schema(name))

    def version(self, name: str) -> int | None:
        t = self._table(name)
        return None if t is None else t.version()

    def read(self, name: str, columns: list[str] | None = None, where=None) -> pa.Table:
        """All rows, or those matching ``where`` (a ``pyarrow.compute`` expression; files whose
        statistics rule it out are not read); an empty table with the right schema when the table does
        not exist yet."""
        t = delta_io.read_table(self.path(name), columns, where, self.storage_options)
        if t is None:
            schema = arrow_schema(name)
            return schema.empty_table().select(columns) if columns else schema.empty_table()
        return t

    def append(self, name: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        self.ensure(name)
        delta_io.write_table(self.path(name), data, arrow_schema(name), "append", self.storage_options)

    def overwrite(self, name: str, data: pa.Table) -> None:
        delta_io.write_table(self.path(name), data, arrow_schema(name), "overwrite", self.storage_options)

    def insert_new(self, name: str, data: pa.Table, key: str) -> int:
        """MERGE: insert the rows whose ``key`` is not in the table yet (idempotent). Returns how many."""
        if data.num_rows == 0:
            return 0
        self.ensure(name)
        schema = arrow_schema(name)
        return delta_io.insert_new(self._table(name), data.select(schema.names).cast(schema), key)
