"""Reading event files: the real Kaggle monthly CSVs (plain, ``.gz`` or ``.zip``) or generated ones.

The real files are named ``2019-Oct.csv`` ... ``2020-Feb.csv`` and may be dropped, compressed or
not, into the data folder (``paths.data_dir``, default ``var/data/``); :func:`find_real_files`
finds them in month order. Every reader checks the header against the event contract and raises
:class:`DataFileError` with a one-line message when something is off.

Hostile input (docs/data.md "The loader"): files are read as **bytes**, one line = one record. A line
that is not valid UTF-8, is longer than ``MAX_RECORD_BYTES`` (64 KiB; real rows are ~200 B) or that
the csv module cannot parse never stops the file: :func:`iter_rows` yields it as a :class:`RawLine`
(its bytes, cut at ``LOADER_KEEP_BYTES``), which the replayer publishes as the raw Kafka value so the
rule table quarantines it (``invalid_encoding``, ``oversized_record``, ``unparsable_json``). A row
with the wrong number of fields is still a row (``unexpected_fields`` / ``missing_*`` downstream).
Only a bad header (or an unreadable file) refuses the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lib.limits import LOADER_KEEP_BYTES, MAX_RECORD_BYTES
from lib.schema import CSV_COLUMNS

REAL_FILE_RE = re.compile(r"^(20\d\d)-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\.csv(\.gz|\.zip)?$")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class DataFileError(ValueError):
    """A missing, unreadable or malformed event file; ``str(err)`` is one line."""


@dataclass(frozen=True)
class RawLine:
    """A line the loader could not turn into a row; published as its raw bytes, judged downstream."""

    line_no: int  # 1-based line number in the file (the header is line 1)
    data: bytes   # the line without its line end, at most LOADER_KEEP_BYTES
    size: int     # the line's full size in bytes (> len(data) when cut)
    reason: str   # invalid_encoding | oversized_record | malformed_csv (what the loader saw)


def open_binary(path: str | Path) -> BinaryIO:
    """Open a plain, gzip or zip (single CSV inside) file as a byte stream."""
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"no such file: {p}")
    try:
        if p.suffix == ".gz":
            fh = gzip.open(p, "rb")
            fh.peek(1)  # a file that is not gzip fails here, not in the middle of the rows
            return fh  # type: ignore[return-value]
        if p.suffix == ".zip":
            zf = zipfile.ZipFile(p)
            members = [n for n in zf.namelist() if n.endswith(".csv") and not n.startswith("__MACOSX")]
            if len(members) != 1:
                raise DataFileError(f"{p}: expected exactly one .csv inside the zip, found {len(members)}")
            return zf.open(members[0])  # type: ignore[return-value]
        return open(p, "rb")
    except (OSError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError) as exc:
        raise DataFileError(f"{p}: cannot read ({exc})") from None


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a plain, gzip or zip (single CSV inside) file as UTF-8 text; undecodable bytes become
    U+FFFD (for header checks and line counts: rows are read as bytes by :func:`iter_rows`)."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="replace", newline="")


_CHUNK = 1 << 20


def _lines(fh: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(line without its line end, at most LOADER_KEEP_BYTES; full size in bytes) per physical line.
    Reads in bounded chunks: a 1 GB line costs LOADER_KEEP_BYTES of memory, not 1 GB."""
    while True:
        chunk = fh.readline(_CHUNK)
        if not chunk:
            return
        parts, size = [chunk], len(chunk)
        while not chunk.endswith(b"\n"):
            chunk = fh.readline(_CHUNK)
            if not chunk:
                break
            if size < LOADER_KEEP_BYTES:
                parts.append(chunk[:LOADER_KEEP_BYTES - size])
            size += len(chunk)
        line = b"".join(parts)
        for end in (b"\r\n", b"\n"):
            if line.endswith(end):
                line, size = line[:-len(end)], size - len(end)
                break
        yield line, size


def check_header(header: list[str] | None, path: str | Path) -> None:
    if header is None:
        raise DataFileError(f"{path}: empty file (expected header {','.join(CSV_COLUMNS)})")
    got = [h.strip().lstrip("\ufeff") for h in header]
    if tuple(got) != CSV_COLUMNS:
        missing = [c for c in CSV_COLUMNS if c not in got]
        extra = [c for c in got if c not in CSV_COLUMNS]
        detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "wrong order"
        raise DataFileError(f"{path}: bad columns ({detail}); expected {','.join(CSV_COLUMNS)}")


def _header(lines: Iterator[tuple[bytes, int]], path: str | Path) -> None:
    first = next(lines, None)
    if first is None:
        check_header(None, path)
        return
    line, size = first
    try:
        if size > MAX_RECORD_BYTES:
            raise ValueError(f"header line of {size} bytes")
        header = next(csv.reader([line.decode("utf-8")]), [])
    except (csv.Error, UnicodeDecodeError, ValueError) as exc:
        raise DataFileError(f"{path}: not a CSV file ({str(exc).splitlines()[0][:200]})") from None
    check_header(header, path)


def iter_rows(path: str | Path) -> Iterator[dict[str, str] | RawLine]:
    """Rows of an event file as dicts of strings (the raw values; typing happens downstream), and
    :class:`RawLine` for lines that cannot be rows (not UTF-8, over ``MAX_RECORD_BYTES``, not CSV).

    A row with the wrong number of fields is still yielded (missing fields empty, extras under
    ``None``) so that the pipeline can quarantine it instead of losing it. Blank lines are skipped.
    One line is one record (quoted line breaks are not supported: neither the real files nor the
    generator have them, and a stray quote must not swallow the rows after it).
    """
    n = len(CSV_COLUMNS)
    with open_binary(path) as fh:
        lines = _lines(fh)
        _header(lines, path)
        for line_no, (line, size) in enumerate(lines, start=2):
            if size > MAX_RECORD_BYTES:
                yield RawLine(line_no, line, size, "oversized_record")
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                yield RawLine(line_no, line, size, "invalid_encoding")
                continue
            if not text.strip("\r"):
                continue
            try:
                fields = next(csv.reader([text], strict=True), [])
            except csv.Error:
                yield RawLine(line_no, line, size, "malformed_csv")
                continue
            if not fields:
                continue
            row = dict(zip(CSV_COLUMNS, fields + [""] * (n - len(fields))))
            if len(fields) > n:
                row[None] = fields[n:]  # type: ignore[index,assignment]  # csv.DictReader's shape: extras under None
            yield row


def count_rows(path: str | Path) -> int:
    """Records :func:`iter_rows` yields (rows and raw lines; blank lines not counted)."""
    with open_binary(path) as fh:
        return max(sum(1 for line, _ in _lines(fh) if line.strip(b"\r")) - 1, 0)


def find_real_files(data_dir: str | Path) -> list[Path]:
    """The real monthly files in ``data_dir`` in chronological order (one per month; a plain
    file wins over its compressed copies)."""
    d = Path(data_dir)
    if not d.is_dir():
        return []
    by_month: dict[tuple[int, int], Path] = {}
    for p in sorted(d.iterdir()):
        m = REAL_FILE_RE.match(p.name)
        if not m:
            continue
        key = (int(m.group(1)), _MONTHS.index(m.group(2)))
        if key not in by_month or p.suffix == ".csv":
            by_month[key] = p
    return [by_month[k] for k in sorted(by_month)]
