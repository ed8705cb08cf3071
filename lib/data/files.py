"""Reading event files: the real Kaggle monthly CSVs (plain, ``.gz`` or ``.zip``) or generated ones.

The real files are named ``2019-Oct.csv`` ... ``2020-Feb.csv`` and may be dropped, compressed or
not, into the data folder (``paths.data_dir``, default ``var/data/``); :func:`find_real_files`
finds them in month order. Every reader checks the header against the event contract and raises
:class:`DataFileError` with a one-line message when something is off.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from lib.schema import CSV_COLUMNS

REAL_FILE_RE = re.compile(r"^(20\d\d)-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\.csv(\.gz|\.zip)?$")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class DataFileError(ValueError):
    """A missing, unreadable or malformed event file; ``str(err)`` is one line."""


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a plain, gzip or zip (single CSV inside) file as UTF-8 text."""
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"no such file: {p}")
    try:
        if p.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", newline="")
        if p.suffix == ".zip":
            zf = zipfile.ZipFile(p)
            members = [n for n in zf.namelist() if n.endswith(".csv") and not n.startswith("__MACOSX")]
            if len(members) != 1:
                raise DataFileError(f"{p}: expected exactly one .csv inside the zip, found {len(members)}")
            return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8", newline="")
        return open(p, encoding="utf-8", newline="")
    except (OSError, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise DataFileError(f"{p}: cannot read ({exc})") from None


def check_header(header: list[str] | None, path: str | Path) -> None:
    if header is None:
        raise DataFileError(f"{path}: empty file (expected header {','.join(CSV_COLUMNS)})")
    got = [h.strip().lstrip("\ufeff") for h in header]
    if tuple(got) != CSV_COLUMNS:
        missing = [c for c in CSV_COLUMNS if c not in got]
        extra = [c for c in got if c not in CSV_COLUMNS]
        detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "wrong order"
        raise DataFileError(f"{path}: bad columns ({detail}); expected {','.join(CSV_COLUMNS)}")


def iter_rows(path: str | Path) -> Iterator[dict[str, str]]:
    """Rows of an event file as dicts of strings (the raw values; typing happens downstream).

    A row with the wrong number of fields is still yielded (missing fields empty, extras under
    ``None``) so that the pipeline can quarantine it instead of losing it.
    """
    with open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataFileError(f"{path}: not a CSV file ({exc})") from None
        check_header(header, path)
        n = len(CSV_COLUMNS)
        for fields in reader:
            if not fields:
                continue
            row = dict(zip(CSV_COLUMNS, fields + [""] * (n - len(fields))))
            if len(fields) > n:
                row[None] = fields[n:]  # type: ignore[index]
            yield row


def count_rows(path: str | Path) -> int:
    with open_text(path) as fh:
        return max(sum(1 for line in fh if line.strip()) - 1, 0)


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
