"""One dispatcher at a time: a lease in the lake (``retarget/dispatcher_lease``, one row).

Every change of the lease — take it, renew it, release it — is a Delta commit (an overwrite of the one
row) made with ``max_commit_retries=0`` on the snapshot the decision was read from: the commit must land
at exactly the version after the one read, or it fails (``CommitFailedError``). Delta commits are
put-if-absent of ``_delta_log/<version>.json`` (a no-replace rename locally, a generation-0 conditional
write on gs://), so of two dispatchers that read version V and both want the lease, exactly one commit
becomes V+1 and the other gets an error and re-reads (tests/unit/test_dispatcher_lease.py races them).
The Delta operations themselves are in lib/delta_io.py (``open_or_create``, ``overwrite_next_version``,
``vacuum_now``); this module holds only the lease's logic.

The row: ``owner`` (host:pid:random), host, pid, ``epoch`` (the fencing token: +1 on every acquisition
by a new owner), acquired_at, renewed_at, ``expires_at`` (= the holder's clock at the read + TTL) and
``released``. Another dispatcher may take it once ``expires_at`` has passed by its own clock or the
holder released it. The holder renews every TTL/3 and keeps its own deadline on its monotonic clock
(started before the read, so it ends before the row's ``expires_at``); it sends a batch only while at
least ``margin`` (TTL/3) of that deadline remains. A holder that cannot renew (the lake is unreachable)
therefore stops sending at TTL - margin at the latest, and one that finds someone else in the row has
lost it and stops at once. Clocks of two machines must agree to better than the margin (NTP does).

Takeovers, releases and losses are logged (``shop.dispatcher.lease``) and appended to
``ops/dispatcher_leases``. Renewals are the only regular commits (one per TTL/3); the post-commit hook
checkpoints every 100 versions and drops log entries older than an hour, and the holder vacuums the
replaced row files every ``VACUUM_EVERY`` commits, so the table stays a few files.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from lib.delta_io import open_or_create, overwrite_next_version, vacuum_now
from lib.schema import arrow_schema

LEASE = "retarget/dispatcher_lease"
LEASE_EVENTS = "ops/dispatcher_leases"
VACUUM_EVERY = 500  # commits between two vacuums of the lease table's replaced files
_TABLE_CONFIG = {"delta.logRetentionDuration": "interval 1 hours",
                 "delta.deletedFileRetentionDuration": "interval 1 hours",
                 "delta.checkpointInterval": "100"}

log = logging.getLogger("shop.dispatcher.lease")


@dataclass(frozen=True)
class Holder:
    owner: str
    host: str
    pid: int
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    released: bool

    def describe(self) -> str:
        return (f"{self.host} pid {self.pid} (epoch {self.epoch}, holding since "
                f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC, lease until {self.expires_at:%H:%M:%S} UTC)")


class Lease:
    """The dispatcher's lease. ``ensure()`` once per cycle (cheap: a clock comparison unless a renewal or
    a retry is due), ``may_send()`` before each send batch, ``release()`` on a clean stop."""

    def __init__(self, store, ttl: float = 30.0, *, margin: float | None = None, renew_every: float | None = None,
                 retry_every: float | None = None, clock=lambda: datetime.now(UTC), monotonic=time.monotonic,
                 owner: str | None = None):
        self.store, self.ttl = store, float(ttl)
        self.margin = self.ttl / 3 if margin is None else margin
        self.renew_every = self.ttl / 3 if renew_every is None else renew_every
        self.retry_every = min(self.ttl / 3, 5.0) if retry_every is None else retry_every
        self.clock, self.monotonic = clock, monotonic
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.owner = owner or f"{self.host}:{self.pid}:{secrets.token_hex(4)}"
        self.held = False
        self.epoch: int | None = None
        self.since: datetime | None = None
        self.valid_until = 0.0  # monotonic deadline of the lease we hold
        self.holder: Holder | None = None  # whom we found holding it when we could not take it
        self._next = 0.0  # monotonic time of the next renewal (held) or try (not held)
        self._commits = 0
        self._unreachable = False  # logged once per outage
        self._stopped_logged = False

    @property
    def path(self) -> str:
        return self.store.path(LEASE)

    # --- the one atomic step ------------------------------------------------------------------------------
    def _read(self):
        dt = open_or_create(self.path, arrow_schema(LEASE), _TABLE_CONFIG, self.store.storage_options)
        rows = dt.to_pyarrow_table().to_pylist()
        return dt, (Holder(**rows[0]) if rows else None)

    def _commit(self, dt, row: dict) -> bool:
        """Overwrite the row, landing at exactly the version after ``dt``'s; False if another commit was first."""
        if not overwrite_next_version(dt, pa.Table.from_pylist([row], schema=arrow_schema(LEASE))):
            return False
        self._commits += 1
        if self._commits % VACUUM_EVERY == 0:
            self._housekeeping()
        return True

    def _housekeeping(self) -> None:
        try:
            vacuum_now(self.path, 1, self.store.storage_options)
        except Exception as exc:  # noqa: BLE001 — only tidying; tried again VACUUM_EVERY commits later
            log.warning("lease table vacuum failed (%s)", type(exc).__name__)

    def _attempt(self) -> None:
        """Read the row and take or renew the lease with one commit at the next version."""
        t0 = self.monotonic()
        now = self.clock()
        dt, cur = self._read()
        mine = cur is not None and cur.owner == self.owner and not cur.released  # owner ids are unique per process
        live = cur is not None and not cur.released and cur.expires_at > now and not self._gone(cur)
        if not mine and live:
            self._lose(cur)
            return
        epoch = cur.epoch if mine else (cur.epoch + 1 if cur is not None else 1)
        since = cur.acquired_at if mine else now
        row = {"owner": self.owner, "host": self.host, "pid": self.pid, "epoch": epoch, "acquired_at": since,
               "renewed_at": now, "expires_at": now + timedelta(seconds=self.ttl), "released": False}
        if not self._commit(dt, row):  # someone committed after our read: look again next time
            _, cur = self._read()
            if cur is not None and cur.owner != self.owner:
                self._lose(cur)
            else:
                self._next = self.monotonic()
            return
        was_held = self.held
        self.held, self.epoch, self.since, self.holder = True, epoch, since, None
        self.valid_until = t0 + self.ttl
        self._next = t0 + self.renew_every
        self._stopped_logged = False
        if not was_held:
            if cur is None or cur.released or cur.owner == self.owner:
                event, detail = "acquired", ""
                log.info("lease: acquired (epoch %d, %s pid %d)", epoch, self.host, self.pid)
            else:
                event, detail = "takeover", f"{cur.owner} epoch {cur.epoch} expired at {cur.expires_at:%H:%M:%S} UTC"
                log.warning("lease: took over from %s (lease expired %s); now epoch %d", cur.describe(),
                            f"{cur.expires_at:%H:%M:%S} UTC", epoch)
            self._record(event, cur, detail)

    def _gone(self, cur: Holder) -> bool:
        """The holder is provably dead: a process of *this* host whose pid no longer exists (a SIGKILLed
        app restarted on the same machine takes over at once instead of waiting out the TTL). A reused
        pid or another host: not provable, the TTL decides."""
        if cur.host != self.host or cur.pid == self.pid or cur.pid <= 0:
            return False
        try:
            os.kill(cur.pid, 0)  # signal 0: existence check only
        except ProcessLookupError:
            log.warning("lease: holder %s is gone (no such process on this host); taking over now", cur.describe())
            return True
        except PermissionError:  # exists, owned by someone else
            return False
        return False

    def _lose(self, cur: Holder) -> None:
        if self.held:
            log.error("lease: LOST to %s; not sending", cur.describe())
            self._record("lost", cur, "found another owner at renewal")
        self.held, self.holder = False, cur
        self._next = self.monotonic() + self.retry_every

    # --- what the dispatcher calls ----------------------------------------------------------------------
    def ensure(self) -> bool:
        """Renew (held) or try to take (not held) when due; True while we hold it."""
        if self.monotonic() < self._next:
            return self.held
        try:
            self._attempt()
            if self._unreachable:
                log.info("lease: the lake answers again")
            self._unreachable = False
        except Exception as exc:  # noqa: BLE001 — lake unreachable: keep the deadline we have, retry soon
            if not self._unreachable:
                log.warning("lease: cannot reach %s (%s: %s); retrying", LEASE, type(exc).__name__, str(exc)[:200])
            self._unreachable = True
            self._next = self.monotonic() + min(1.0, self.retry_every)
        return self.held

    def may_send(self) -> bool:
        """True while we hold the lease with at least ``margin`` of it left (checked before each batch)."""
        if not self.held:
            return False
        left = self.valid_until - self.monotonic()
        if left >= self.margin:
            return True
        if not self._stopped_logged:
            log.error("lease: not renewed in time (%.1f s left, margin %.1f s): stopped sending", left, self.margin)
            self._stopped_logged = True
        if left <= 0:
            self.held = False
            self._next = self.monotonic()
        return False

    def release(self) -> None:
        """On a clean stop: mark the row released (if still ours) so the next dispatcher starts at once."""
        if not self.held:
            return
        self.held = False
        try:
            now = self.clock()
            dt, cur = self._read()
            if cur is None or cur.owner != self.owner:
                return
            row = {**cur.__dict__, "renewed_at": now, "expires_at": now, "released": True}
            if self._commit(dt, row):
                log.info("lease: released (epoch %d)", cur.epoch)
                self._record("released", cur, "")
        except Exception as exc:  # noqa: BLE001 — it then expires after the TTL
            log.warning("lease: not released (%s); it expires in at most %.0f s", type(exc).__name__, self.ttl)

    def refusal(self) -> str:
        h = self.holder
        if h is None:
            return f"another dispatcher may hold the lease ({self.store.path(LEASE)} not readable); not sending"
        return f"another dispatcher holds the lease: {h.describe()}; not sending"

    def _record(self, event: str, prev: Holder | None, detail: str) -> None:
        row = {"at": self.clock(), "event": event, "owner": self.owner, "host": self.host, "pid": self.pid,
               "epoch": self.epoch if event != "released" else (prev.epoch if prev else None),
               "previous_owner": prev.owner if prev else None, "previous_epoch": prev.epoch if prev else None,
               "detail": detail}
        try:
            self.store.append(LEASE_EVENTS, pa.Table.from_pylist([row], schema=arrow_schema(LEASE_EVENTS)))
        except Exception as exc:  # noqa: BLE001 — the log line above is the record then
            log.warning("lease: %s not recorded in %s (%s)", event, LEASE_EVENTS, type(exc).__name__)
