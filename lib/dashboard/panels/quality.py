"""Data-quality panels: counts per micro-batch (``ops/quality_batches``) and the latest quarantined
raw messages with their reasons (``quarantine/events``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from lib.dashboard.panels.common import get_reader
from lib.dashboard.tables import QUALITY_BATCHES, QUARANTINE_EVENTS, LakeReader, latest_per_key

router = APIRouter(prefix="/api", tags=["quality"])
Reader = Annotated[LakeReader, Depends(get_reader)]
MAX_VALUE_CHARS = 2000


class QualityBatch(BaseModel):
    batch_id: int
    load_id: str | None = Field(None, description="writer and batch (`<app id>:<batch id>`), when recorded")
    processed_at: datetime | None = None
    read: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    quarantined_by_rule: dict[str, int] = Field(default_factory=dict)
    min_event_time: datetime | None = None
    max_event_time: datetime | None = None


class QualityTotals(BaseModel):
    batches: int = 0
    read: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0


class RuleCount(BaseModel):
    rule: str
    count: int


class QualityReport(BaseModel):
    batches: list[QualityBatch] = Field(description="the most recent micro-batches, newest first")
    totals: QualityTotals = Field(description="over every batch recorded")
    by_rule: list[RuleCount] = Field(description="quarantined records per rule over every batch, largest first")
    last_processed_at: datetime | None = None


class QuarantinedMessage(BaseModel):
    quarantined_at: datetime | None = None
    reasons: list[str] = Field(default_factory=list)
    value: str | None = Field(None, description=f"the raw message (first {MAX_VALUE_CHARS} characters)")
    value_truncated: bool = False
    key: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    kafka_timestamp: datetime | None = None
    batch_id: int | None = None
    load_id: str | None = None


class QuarantineRecent(BaseModel):
    messages: list[QuarantinedMessage] = Field(description="newest first")


def _all_batches(reader: LakeReader) -> pa.Table | None:
    """Every batch once, newest first (a batch logged twice, e.g. after a retry, counts once: the latest
    record wins). A batch is (load_id, batch_id): the streaming app and a backfill number theirs apart."""

    def compute(_dt: Any) -> pa.Table:
        t = reader.read(QUALITY_BATCHES)
        if t is None:  # gone since memo saw it: fails like any other read inside memo
            raise FileNotFoundError(f"{QUALITY_BATCHES} vanished while being read")
        t = t.filter(pc.is_valid(t.column("batch_id")))
        if t.num_rows and t.column("load_id").null_count < t.num_rows:  # key on load_id where it is recorded
            key = pc.if_else(pc.is_valid(t.column("load_id")), t.column("load_id"),
                             pc.cast(t.column("batch_id"), pa.string()))
            t = t.append_column("__key", key)
            t = latest_per_key(t, ["__key"], "processed_at").drop_columns(["__key"])
        else:
            t = latest_per_key(t, ["batch_id"], "processed_at")
        return t.sort_by([("processed_at", "descending"), ("batch_id", "descending")])

    return reader.memo(QUALITY_BATCHES, ("batches",), compute)


def _rule_totals(t: pa.Table) -> list[RuleCount]:
    col = t.column("quarantined_by_rule")
    # MapArray.keys/items ignore slicing: go through list<struct<key, value>> instead
    as_list = pa.list_(pa.struct([("key", col.type.key_type), ("value", col.type.item_type)]))
    entries = [c.cast(as_list).flatten() for c in col.chunks if len(c)]
    entries = [e for e in entries if len(e)]
    if not entries:
        return []
    flat = pa.table({"rule": pa.concat_arrays([e.field(0) for e in entries]),
                     "count": pa.concat_arrays([e.field(1) for e in entries])})
    g = flat.group_by("rule").aggregate([("count", "sum")])
    out = [RuleCount(rule=r["rule"], count=r["count_sum"] or 0) for r in g.to_pylist() if r["rule"] is not None]
    return sorted(out, key=lambda r: (-r.count, r.rule))


def _report(reader: LakeReader, batches: int) -> QualityReport:
    t = _all_batches(reader)
    if t is None or t.num_rows == 0:
        return QualityReport(batches=[], totals=QualityTotals(), by_rule=[])

    def total(column: str) -> int:
        return pc.sum(t.column(column)).as_py() or 0

    recent = []
    for r in t.slice(0, batches).to_pylist():
        r["quarantined_by_rule"] = dict(r["quarantined_by_rule"] or [])
        recent.append(QualityBatch(**{k: (0 if v is None and k in ("read", "valid", "quarantined", "duplicates") else v)
                                      for k, v in r.items()}))
    return QualityReport(
        batches=recent,
        totals=QualityTotals(batches=t.num_rows, read=total("read"), valid=total("valid"),
                             quarantined=total("quarantined"), duplicates=total("duplicates")),
        by_rule=_rule_totals(t),
        last_processed_at=pc.max(t.column("processed_at")).as_py(),
    )


@router.get("/quality", response_model=QualityReport, summary="Data-quality counts per micro-batch and in total")
def get_quality(reader: Reader,
                batches: Annotated[int, Query(ge=1, le=1000, description="how many recent batches to list")] = 50,
                ) -> QualityReport:
    return reader.memo(QUALITY_BATCHES, ("report", batches), lambda _dt: _report(reader, batches)) or \
        QualityReport(batches=[], totals=QualityTotals(), by_rule=[])


@router.get("/quarantine/recent", response_model=QuarantineRecent, summary="Latest quarantined raw messages and why")
def get_quarantine_recent(reader: Reader,
                          limit: Annotated[int, Query(ge=1, le=200, description="how many messages")] = 20,
                          ) -> QuarantineRecent:
    t = reader.read_latest(QUARANTINE_EVENTS, "quarantined_at", limit)
    messages = []
    for r in [] if t is None else t.to_pylist():
        value = r["value"]
        truncated = value is not None and len(value) > MAX_VALUE_CHARS
        messages.append(QuarantinedMessage(
            quarantined_at=r["quarantined_at"], reasons=[x for x in r["reasons"] or [] if x is not None],
            value=value[:MAX_VALUE_CHARS] if truncated else value, value_truncated=truncated, key=r["key"],
            topic=r["topic"], partition=r["partition"], offset=r["offset"], kafka_timestamp=r["kafka_timestamp"],
            batch_id=r["batch_id"], load_id=r["load_id"]))
    return QuarantineRecent(messages=messages)
