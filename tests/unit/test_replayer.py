from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from lib.data.replayer import RateLimiter, replay
from tools.replay import main


class FakeClock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


class ListPublisher:
    def __init__(self):
        self.messages: list[tuple[bytes | None, dict]] = []

    def publish(self, key, value):
        self.messages.append((key, json.loads(value)))

    def flush(self, timeout: float = 60.0) -> int:
        return 0


def _row(t: str, user: str = "1", etype: str = "view") -> dict[str, str]:
    return {"event_time": t, "event_type": etype, "product_id": "10", "category_id": "1487580005134238553",
            "category_code": "", "brand": "", "price": "1.50", "user_id": user, "user_session": "s"}


ROWS = [_row("2019-10-01 00:00:00 UTC", "7"), _row("2019-10-01 00:00:10 UTC"), _row("2019-10-01 00:01:00 UTC")]


def test_paced_replay_waits_between_events_and_retimes_to_the_wall_clock():
    clock, pub = FakeClock(), ListPublisher()
    start = clock.t
    stats = replay(ROWS, pub, speedup=2.0, clock=clock, sleep=clock.sleep)
    assert stats.published == 3
    assert clock.t - start == pytest.approx(30.0)  # 60 s of event time at 2x
    times = [datetime.fromisoformat(m["event_time"].replace("Z", "+00:00")) for _, m in pub.messages]
    base = datetime.fromtimestamp(start, tz=timezone.utc).replace(microsecond=0)
    assert [(t - base).total_seconds() for t in times] == [0.0, 5.0, 30.0]
    assert pub.messages[0][0] == b"7"


def test_as_fast_as_possible_keeps_times_or_shifts_them():
    clock, pub = FakeClock(), ListPublisher()
    replay(ROWS, pub, speedup=0, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []
    assert [m["event_time"] for _, m in pub.messages] == ["2019-10-01T00:00:00Z", "2019-10-01T00:00:10Z", "2019-10-01T00:01:00Z"]
    pub2 = ListPublisher()
    replay(ROWS, pub2, speedup=0, shift=timedelta(days=1), clock=clock, sleep=clock.sleep)
    assert pub2.messages[-1][1]["event_time"] == "2019-10-02T00:01:00Z"


def test_rows_with_bad_times_are_published_raw_not_dropped():
    clock, pub = FakeClock(), ListPublisher()
    stats = replay([_row("garbage"), *ROWS], pub, speedup=1.0, clock=clock, sleep=clock.sleep)
    assert stats.published == 4 and stats.unparsable_time == 1
    assert pub.messages[0][1]["event_time"] == "garbage"


def test_rate_limiter_spaces_events():
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock, clock.sleep)
    start = clock.t
    for _ in range(21):
        limiter.wait()
    assert clock.t - start == pytest.approx(2.0)


@pytest.mark.parametrize("argv, message", [
    (["--speedup", "-1"], "--speedup must be >= 0"),
    (["--max-rate", "0"], "--max-rate must be > 0"),
    (["--shift-to-now"], "--shift-to-now only applies"),
])
def test_cli_argument_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_missing_file_is_one_line(capsys, tmp_path):
    assert main([str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: no such file: {tmp_path / 'nope.csv'}"


def test_cli_bad_columns_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,type\n1,2\n")
    assert main([str(bad)]) == 2
    assert "bad columns" in capsys.readouterr().err


def test_cli_unreachable_broker_is_one_line(capsys, tmp_path):
    ok = tmp_path / "ok.csv"
    ok.write_text("event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n")
    assert main([str(ok), "--bootstrap", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: Kafka broker at 127.0.0.1:1 is not reachable")


def test_cli_pubsub_target_needs_project_and_topic(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--target", "pubsub", "--pubsub-project", "p"])
    assert exit_.value.code == 2
    assert "--target pubsub needs --pubsub-project and --pubsub-topic" in capsys.readouterr().err


class BytesPublisher:
    def __init__(self):
        self.messages: list[tuple[bytes | None, bytes]] = []

    def publish(self, key, value):
        self.messages.append((key, value))

    def flush(self, timeout: float = 60.0) -> int:
        return 0


def test_raw_lines_are_published_as_their_bytes_without_a_key(tmp_path):
    """A line the loader cannot make a row of (not UTF-8, over 64 KiB, not CSV) goes out as raw bytes, in
    file order, for the rule table to quarantine; the rows around it are published as usual."""
    from lib.data.files import iter_rows
    from lib.schema import CSV_COLUMNS

    good = b"2019-10-01 00:00:00 UTC,view,10,1487580005134238553,,,1.50,7,s"
    lines = [good, good.replace(b"view", b"vi\xffew"), b"x" * 70_000, b'a,"b', good.replace(b",7,", b",8,")]
    path = tmp_path / "e.csv"
    path.write_bytes(b"\n".join([",".join(CSV_COLUMNS).encode(), *lines]) + b"\n")
    clock, pub = FakeClock(), BytesPublisher()
    stats = replay(iter_rows(path), pub, speedup=0, clock=clock, sleep=clock.sleep)
    assert stats.published == 5 and stats.raw_lines == 3 and stats.undelivered == 0
    assert [k for k, _ in pub.messages] == [b"7", None, None, None, b"8"]
    assert [v for _, v in pub.messages[1:4]] == lines[1:4]
    assert json.loads(pub.messages[0][1])["event_time"] == "2019-10-01T00:00:00Z"


def test_shift_to_now_anchors_on_the_newest_valid_row(tmp_path):
    from lib.data.replayer import last_event_time, last_valid_event_time
    from lib.schema import CSV_COLUMNS

    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    rows = ["2019-10-01 00:00:00 UTC,view,10,1487580005134238553,,,1.50,7,s",
            "2019-10-01 00:05:00 UTC,view,10,1487580005134238553,,,1.50,7,s",
            "9999-12-31 23:59:59 UTC,view,10,1487580005134238553,,,1.50,7,s",      # far future
            "2019-10-02 00:00:00 UTC,refund,10,1487580005134238553,,,1.50,7,s",    # unknown type
            "2019-10-03 00:00:00 UTC,view,10,1487580005134238553,,,NaN,7,s",       # price
            "2019-10-04 00:00:00 UTC,view,10,1487580005134238553,,evil\u202e,1.50,7,s",  # bidi override
            "2019-10-05 00:00:00 UTC,view,-1,1487580005134238553,,,1.50,7,s",      # id
            "2019-10-06 00:00:00 UTC,view,10,1487580005134238553,,,1.50,7,s,extra"]
    path = tmp_path / "e.csv"
    path.write_text("\n".join([",".join(CSV_COLUMNS), *rows]) + "\n")
    assert last_event_time(path) == datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert last_valid_event_time(path, now) == datetime(2019, 10, 1, 0, 5, tzinfo=timezone.utc)
