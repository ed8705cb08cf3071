from __future__ import annotations

import gzip
import zipfile

import pytest

from lib.data.files import DataFileError, count_rows, find_real_files, iter_rows
from lib.schema import CSV_COLUMNS

HEADER = ",".join(CSV_COLUMNS)
LINE = "2019-10-01 00:00:00 UTC,view,5802432,1487580009286598681,,,0.32,562076640,09fafd6c-6c99-46b1-834f-33527f4de241"


def _write(path, text):
    path.write_text(text)
    return path


def test_plain_gzip_and_zip_read_the_same(tmp_path):
    text = f"{HEADER}\n{LINE}\n{LINE}\n"
    plain = _write(tmp_path / "2019-Oct.csv", text)
    gz = tmp_path / "2019-Nov.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    zp = tmp_path / "2019-Dec.csv.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        zf.writestr("2019-Dec.csv", text)
    rows = [list(iter_rows(p)) for p in (plain, gz, zp)]
    assert rows[0] == rows[1] == rows[2]
    assert len(rows[0]) == 2 and rows[0][0]["price"] == "0.32" and rows[0][0]["brand"] == ""
    assert count_rows(gz) == 2


def test_real_files_are_found_in_month_order(tmp_path):
    for name in ["2020-Feb.csv.gz", "2019-Oct.csv", "2019-Nov.csv.zip", "2019-Oct.csv.gz", "notes.txt", "2020-Jan.csv"]:
        (tmp_path / name).write_text("")
    assert [p.name for p in find_real_files(tmp_path)] == ["2019-Oct.csv", "2019-Nov.csv.zip", "2020-Jan.csv", "2020-Feb.csv.gz"]
    assert find_real_files(tmp_path / "missing") == []


@pytest.mark.parametrize("text, match", [
    ("", "empty file"),
    ("a,b,c\n1,2,3\n", "bad columns"),
    (HEADER.replace("price,", "") + "\n", r"missing \['price'\]"),
    (HEADER + ",extra\n", r"unexpected \['extra'\]"),
])
def test_bad_headers_are_one_line_errors(tmp_path, text, match):
    path = _write(tmp_path / "x.csv", text)
    with pytest.raises(DataFileError, match=match) as err:
        list(iter_rows(path))
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_zip(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        list(iter_rows(tmp_path / "nope.csv"))
    bad = _write(tmp_path / "x.csv.zip", "not a zip")
    with pytest.raises(DataFileError, match="cannot read"):
        list(iter_rows(bad))


def test_short_and_long_rows_are_kept_not_dropped(tmp_path):
    path = _write(tmp_path / "x.csv", f"{HEADER}\n2019-10-01 00:00:00 UTC,view\n{LINE},surplus\n")
    rows = list(iter_rows(path))
    assert len(rows) == 2
    assert rows[0]["event_type"] == "view" and rows[0]["user_session"] == ""
    assert rows[1][None] == ["surplus"]
