"""Personal data in ``retarget/*`` (issue #14): history retention, erasing one user, and a scanner
that proves where an address or a user id is stored — on disk, not only in the current version.

* :func:`prune_history` — VACUUM each retarget table (files no longer in the current version and
  older than the retention are deleted, ``full`` mode: also files the log does not know) and cut its
  Delta log: a checkpoint at the current version, then every log file (commit JSON, ``.crc``, older
  checkpoints) *before* the newest checkpoint whose commit is older than the retention is deleted.
  Old log entries matter: ``add`` actions carry per-file min/max statistics (an address can be the
  min of ``email``), ``commitInfo`` carries DELETE predicates (``user_id = …``).
* :func:`erase_user` — delete one user's rows from every retarget table (delta-rs DELETE), then
  :func:`prune_history` with retention 0: the rows are gone from the files and from the log.
* :func:`scan` — every file under a folder (parquet read value by value, nested columns included;
  any other file as bytes) searched for addresses, integers (user ids) and strings (session ids).

No Spark: delta-rs and pyarrow's filesystems, so it works on the local lake and on ``gs://``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from lib.delta_io import open_table, open_table_or_none
from lib.retarget.store import ATTEMPTS, DECISIONS, OFFERS, OUTBOX, SUBSCRIBERS, UNSUBSCRIBES, RetargetStore

TABLES = (SUBSCRIBERS, UNSUBSCRIBES, OUTBOX, DECISIONS, OFFERS, ATTEMPTS)
# the only lake tables whose purpose is to hold addresses (who to mail, who must never be mailed)
ADDRESS_TABLES = (SUBSCRIBERS, UNSUBSCRIBES)

# commit, checksum and checkpoint files of one version (and Hadoop's hidden ``.<name>.crc`` of each)
_LOG_FILE = re.compile(r"^\.?(\d{20})\.(?:json|crc|checkpoint(?:\.[^/]*)?\.parquet)(?:\.crc)?$")


# --- filesystem helpers (local or remote, pyarrow.fs) ---------------------------------------------------
def _fs(path: str):
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def _files(path: str) -> list:
    filesystem, base = _fs(path)
    info = filesystem.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        return [info]
    return [i for i in filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
            if i.type == pafs.FileType.File]


# --- retention --------------------------------------------------------------------------------------------
@dataclass
class Pruned:
    table: str
    files_deleted: int = 0
    log_files_deleted: int = 0
    version: int | None = None


def _prune_log(table_path: str, cutoff_s: float) -> int:
    """Delete log files of versions before the newest checkpoint whose commit is older than
    ``cutoff_s`` (epoch seconds). The table stays readable from that checkpoint on; versions before it
    cannot be time-travelled to any more (their data files are vacuumed anyway)."""
    filesystem, base = _fs(table_path.rstrip("/") + "/_delta_log")
    entries = [i for i in filesystem.get_file_info(pafs.FileSelector(base, recursive=False))
               if i.type == pafs.FileType.File]
    by_version: dict[int, list] = {}
    for e in entries:
        m = _LOG_FILE.match(e.base_name)
        if m:
            by_version.setdefault(int(m.group(1)), []).append(e)
    checkpoints = sorted(v for v, files in by_version.items()
                         if any(".checkpoint" in f.base_name and f.base_name.endswith(".parquet") for f in files))
    keep_from = None
    for v in checkpoints:  # newest checkpoint whose commit is older than the cutoff
        commit = next((f for f in by_version[v] if f.base_name.endswith(".json")), None)
        stamp = (commit or next(f for f in by_version[v] if f.base_name.endswith(".parquet"))).mtime
        if stamp is not None and stamp.timestamp() <= cutoff_s:
            keep_from = v
    # Hadoop's checksum of _last_checkpoint (Spark writes one on a local disk) no longer matches the
    # file delta-rs just rewrote: gone with it, Spark reads _last_checkpoint without a checksum warning
    stale = [e for e in entries if e.base_name == "._last_checkpoint.crc"]
    if keep_from is None:
        for f in stale:
            filesystem.delete_file(f.path)
        return len(stale)
    doomed = stale + [f for v, files in by_version.items() if v < keep_from for f in files]
    for f in doomed:
        filesystem.delete_file(f.path)
    return len(doomed)


def prune_table(store: RetargetStore, name: str, retention_hours: float, now: float | None = None) -> Pruned:
    """VACUUM (full) with ``retention_hours``, checkpoint, cut the log older than the retention."""
    out = Pruned(name)
    table = open_table_or_none(store.path(name), store.storage_options)
    if table is None:
        return out
    deleted = table.vacuum(retention_hours=int(retention_hours), dry_run=False, enforce_retention_duration=False,
                           full=True)
    out.files_deleted = len(deleted)
    table = open_table(store.path(name), store.storage_options)  # after VACUUM's own commits
    table.create_checkpoint()
    out.version = table.version()
    now = time.time() if now is None else now
    out.log_files_deleted = _prune_log(store.path(name), now - retention_hours * 3600)
    return out


def prune_history(store: RetargetStore, retention_hours: float, tables: Iterable[str] = TABLES,
                  now: float | None = None) -> list[Pruned]:
    """:func:`prune_table` for each retarget table that exists."""
    return [prune_table(store, name, retention_hours, now) for name in tables]


# --- erasure ----------------------------------------------------------------------------------------------
class EraseError(ValueError):
    pass


_EMAIL_ARG = re.compile(r"^[^\s'\"\\@]{1,64}@[^\s'\"\\@]{1,253}$")


def check_user_id(value: str) -> int:
    value = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise EraseError(f"USER_ID must be a positive integer (a user id of the events), got {value[:40]!r}")
    return int(value)


def check_email(value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if not _EMAIL_ARG.match(value):
        raise EraseError("EMAIL must be one plain address (no spaces or quotes)")
    return value


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _delete(store: RetargetStore, name: str, predicate: str) -> int:
    table = open_table_or_none(store.path(name), store.storage_options)
    if table is None:
        return 0
    return int(table.delete(predicate).get("num_deleted_rows", 0) or 0)


def user_footprint(store: RetargetStore, user_id: int, email: str | None = None) -> tuple[set[str], set[str]]:
    """(addresses, session ids) of one user in the retarget tables: the subscriber rows' addresses
    (plus ``email``), the sessions of their carts, decisions and offers."""
    emails = {email.lower()} if email else set()
    subs = store.read(SUBSCRIBERS, ["user_id", "email"], where=pc.field("user_id") == user_id)
    unsub = store.read(UNSUBSCRIBES, ["user_id", "email"], where=pc.field("user_id") == user_id)
    emails |= {e.lower() for e in subs.column("email").to_pylist() + unsub.column("email").to_pylist() if e}
    sessions: set[str] = set()
    for name in (OUTBOX, DECISIONS, OFFERS):
        rows = store.read(name, ["user_id", "user_session"], where=pc.field("user_id") == user_id)
        sessions |= {s for s in rows.column("user_session").to_pylist() if s}
    return emails, sessions


def erase_user(store: RetargetStore, user_id: int, email: str | None = None) -> tuple[dict[str, int], list[Pruned]]:
    """Delete every row of ``user_id`` (and of ``email``) from the retarget tables, then vacuum them
    and cut their logs with retention 0. Returns (rows deleted per table, what the pruning removed).

    Run it with the writers of these tables stopped (streaming app and its dispatcher, a standalone
    dispatcher, the dashboard's /unsubscribe): a retention-0 VACUUM deletes the files of a write not
    committed yet, and a DELETE racing an append fails one of them."""
    emails, sessions = user_footprint(store, user_id, email)
    by_email = f" OR lower(email) IN ({', '.join(_quote(e) for e in sorted(emails))})" if emails else ""
    removed = {
        SUBSCRIBERS: _delete(store, SUBSCRIBERS, f"user_id = {int(user_id)}{by_email}"),
        UNSUBSCRIBES: _delete(store, UNSUBSCRIBES, f"user_id = {int(user_id)}{by_email}"),
        OUTBOX: _delete(store, OUTBOX, f"user_id = {int(user_id)}"),
        DECISIONS: _delete(store, DECISIONS, f"user_id = {int(user_id)}"),
        OFFERS: _delete(store, OFFERS, f"user_id = {int(user_id)}"),
        ATTEMPTS: (_delete(store, ATTEMPTS, f"user_session IN ({', '.join(_quote(s) for s in sorted(sessions))})")
                   if sessions else 0),
    }
    # the DELETE commits name the user in their predicates, and the removed files still hold the rows:
    # both go with a retention-0 prune of every table (older history of these tables goes too)
    return removed, prune_history(store, 0)


# --- scanning ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    path: str
    kind: str  # "address" | "int" | "string"
    value: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} {self.value}"


class Needles:
    """What to look for: addresses (case-insensitive, matched around each '@' — any character, no
    pattern involved), integers (whole numbers in text, equal values in integer columns) and strings."""

    def __init__(self, addresses: Iterable[str] = (), ints: Iterable[int] = (), strings: Iterable[str] = ()):
        self.addresses = {a.lower() for a in addresses if a and "@" in a}
        self.ints = {int(i) for i in ints}
        self.strings = {s.lower() for s in strings if s}
        self._by_domain: dict[str, set[int]] = {}
        for a in self.addresses:
            local, _, domain = a.rpartition("@")
            self._by_domain.setdefault(domain, set()).add(len(local))

    def in_text(self, text: str) -> list[tuple[str, str]]:
        low = text.lower()
        found: list[tuple[str, str]] = []
        if self.addresses:
            at = low.find("@")
            while at >= 0:
                for domain, lengths in self._by_domain.items():
                    if low.startswith(domain, at + 1):
                        for n in lengths:
                            cand = low[at - n: at + 1 + len(domain)] if at >= n else ""
                            if cand in self.addresses:
                                found.append(("address", cand))
                at = low.find("@", at + 1)
        if self.ints:
            found += [("int", t) for t in re.findall(r"(?<![0-9])[0-9]{1,19}(?![0-9])", low) if int(t) in self.ints]
        found += [("string", s) for s in self.strings if s in low]
        return found

    def in_ints(self, values: Iterable) -> list[tuple[str, str]]:
        return [("int", str(v)) for v in values if v is not None and int(v) in self.ints]


def _leaves(array):
    """The leaf arrays of a (possibly nested) pyarrow array."""
    t = array.type
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _leaves(array.field(i))
    elif pa.types.is_map(t):
        yield from _leaves(array.keys)
        yield from _leaves(array.items)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        yield from _leaves(array.flatten())
    elif pa.types.is_dictionary(t):
        yield from _leaves(array.dictionary)
    else:
        yield array


def _scan_parquet(path: str, filesystem, needles: Needles) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    table = pq.read_table(path, filesystem=filesystem)
    for column in table.columns:
        for chunk in column.chunks:
            for leaf in _leaves(chunk):
                t = leaf.type
                if pa.types.is_string(t) or pa.types.is_large_string(t):
                    found += needles.in_text("\n".join(v for v in leaf.to_pylist() if v is not None))
                elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
                    found += needles.in_text("\n".join(v.decode("latin-1") for v in leaf.to_pylist() if v))
                elif pa.types.is_integer(t) and needles.ints:
                    found += needles.in_ints(leaf.to_pylist())
    return found


def scan(root: str | Path, needles: Needles, *, exclude: Iterable[str | Path] = ()) -> list[Finding]:
    """Every file under ``root`` (a folder or one file), except those under ``exclude``: parquet files
    value by value (the data files of every version still on disk, and Delta checkpoints), anything
    else as bytes (Delta log JSON, logs, Maildir, broker and state-store files)."""
    skip = [str(Path(e).resolve()) if "://" not in str(e) else str(e) for e in exclude]
    findings: list[Finding] = []
    filesystem, _ = _fs(str(root))
    for info in _files(str(root)):
        if any(info.path == s or info.path.startswith(s.rstrip("/") + "/") for s in skip):
            continue
        hits: list[tuple[str, str]] = []
        if info.base_name.endswith(".parquet"):
            try:
                hits = _scan_parquet(info.path, filesystem, needles)
            except Exception:  # noqa: BLE001 — not readable as parquet: searched as bytes below
                hits = []
        with filesystem.open_input_stream(info.path) as f:
            raw = f.read().decode("latin-1")
        if info.base_name.endswith(".parquet"):  # the bytes too (footer metadata), but no digit runs:
            hits += [h for h in needles.in_text(raw) if h[0] != "int"]  # compressed pages are full of them
        else:
            hits = needles.in_text(raw)
        findings += [Finding(info.path, k, v) for k, v in sorted(set(hits))]
    return findings
