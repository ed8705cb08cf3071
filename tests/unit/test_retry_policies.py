"""The retry, reconnect and wait policies (tenacity): how many tries, which errors are retried, what is raised
in the end."""

from __future__ import annotations

import smtplib
import time

import pytest

from lib.retarget import senders
from lib.retarget.message import Email
from lib.retarget.senders import AmbiguousSendError, SmtpSender, TransientSendError


class _Conn:
    """An smtplib.SMTP stand-in whose server drops the connection at ``drop_at`` (MAIL or DATA), ``drops`` times."""

    made = 0

    def __init__(self, plan: list[str | None]):
        self.plan = plan
        _Conn.made += 1

    def ehlo_or_helo_if_needed(self):
        pass

    def mail(self, _addr):
        if self.plan and self.plan[0] == "MAIL":
            self.plan.pop(0)
            raise smtplib.SMTPServerDisconnected("gone")
        return 250, b"ok"

    def rcpt(self, _addr):
        return 250, b"ok"

    def data(self, _data):
        if self.plan and self.plan[0] == "DATA":
            self.plan.pop(0)
            raise smtplib.SMTPServerDisconnected("gone")
        return 250, b"queued"

    def quit(self):
        pass

    def close(self):
        pass


def _sender(monkeypatch, plan: list[str | None]) -> SmtpSender:
    _Conn.made = 0
    monkeypatch.setattr(senders.smtplib, "SMTP", lambda *a, **kw: _Conn(plan))
    return SmtpSender("127.0.0.1", 25)


MSG = Email("Shop", "offers@shop.example", "Ann", "ann@example.com", "x", (("Message-ID", "<m1@shop.example>"),),
            "hi", "<p>hi</p>")


def test_a_dropped_pooled_connection_is_reconnected_once(monkeypatch):
    assert _sender(monkeypatch, ["MAIL"]).send(MSG) == "<m1@shop.example>"
    assert _Conn.made == 2


def test_a_second_drop_is_transient_and_nothing_more_is_tried(monkeypatch):
    with pytest.raises(TransientSendError, match="^SMTP server disconnected$") as err:
        _sender(monkeypatch, ["MAIL", "MAIL", "MAIL"]).send(MSG)
    assert type(err.value) is TransientSendError and _Conn.made == 2


def test_a_drop_during_data_is_ambiguous_and_never_retried(monkeypatch):
    with pytest.raises(AmbiguousSendError, match="during DATA"):
        _sender(monkeypatch, ["DATA"]).send(MSG)
    assert _Conn.made == 1


class _Optimize:
    """DeltaTable.forPath(...).optimize().executeCompaction() that loses ``races`` commit races first."""

    def __init__(self, races: int, error: Exception):
        self.races, self.error, self.calls = races, error, 0

    def forPath(self, _spark, _location):  # noqa: N802 — delta-spark's name
        return self

    def optimize(self):
        return self

    def executeCompaction(self):  # noqa: N802 — delta-spark's name
        self.calls += 1
        if self.calls <= self.races:
            raise self.error


CONFLICT = RuntimeError("[DELTA_CONCURRENT_DELETE_READ] ConcurrentDeleteReadException: files were removed")


@pytest.mark.parametrize("races", [0, 1, 3])
def test_compaction_retries_a_lost_race_with_a_growing_pause_and_counts_them(monkeypatch, races):
    import delta.tables

    from lib.batch import maintain

    opt, waits = _Optimize(races, CONFLICT), []
    monkeypatch.setattr(delta.tables, "DeltaTable", opt)
    monkeypatch.setattr(time, "sleep", waits.append)
    assert maintain._compact(None, "/lake/t") == races and opt.calls == races + 1
    assert waits == [0.5, 1.0, 1.5][:races]


def test_compaction_gives_up_after_four_attempts_and_other_errors_are_not_retried(monkeypatch):
    import delta.tables

    from lib.batch import maintain

    monkeypatch.setattr(time, "sleep", lambda s: None)
    opt = _Optimize(9, CONFLICT)
    monkeypatch.setattr(delta.tables, "DeltaTable", opt)
    with pytest.raises(RuntimeError, match="DELTA_CONCURRENT"):
        maintain._compact(None, "/lake/t")
    assert opt.calls == maintain.OPTIMIZE_ATTEMPTS == 4
    opt = _Optimize(9, ValueError("disk full"))
    monkeypatch.setattr(delta.tables, "DeltaTable", opt)
    with pytest.raises(ValueError, match="disk full"):
        maintain._compact(None, "/lake/t")
    assert opt.calls == 1


class _App:
    def __init__(self, code: int | None = None):
        self.code = code

    def poll(self) -> int | None:
        return self.code


def test_run_once_waits_for_its_stages_and_stops_on_a_dead_app_a_signal_or_the_timeout(monkeypatch):
    from tools import run_once

    monkeypatch.setattr(time, "sleep", lambda s: None)
    calls = []
    run_once._wait("x", lambda: calls.append(1) or len(calls) == 3, 60, _App())
    assert len(calls) == 3
    with pytest.raises(run_once.RunError, match="^the streaming app exited while waiting for the lake$"):
        run_once._wait("the lake", lambda: False, 60, _App(1))
    monkeypatch.setattr(run_once._STOP, "is_set", lambda: True)
    with pytest.raises(KeyboardInterrupt):
        run_once._wait("the lake", lambda: False, 60, _App())


def test_the_wait_gives_up_with_the_callers_error_and_starts_no_call_after_the_timeout():
    from tools.wait import wait_until

    calls, t0 = [], time.monotonic()
    with pytest.raises(LookupError, match="^timed out after 0 s waiting for the thing$"):
        wait_until(lambda: calls.append(time.monotonic() - t0), 0.25, 0.1, "the thing", error=LookupError)
    assert 1 <= len(calls) <= 3  # at 0, 0.1, 0.2 s on an idle machine; none planned past 0.25 s
    assert wait_until(lambda: "here", 1) == "here"


@pytest.mark.parametrize("conflicts", [0, 1, 8])
def test_the_streams_delta_writes_retry_a_commit_conflict_with_a_growing_pause(monkeypatch, conflicts):
    from deltalake.exceptions import CommitFailedError

    from lib import delta_io

    waits, calls = [], []
    monkeypatch.setattr(time, "sleep", waits.append)

    def write() -> None:
        calls.append(1)
        if len(calls) <= conflicts:
            raise CommitFailedError("Commit failed: a concurrent transaction deleted data this operation read.\nmore")

    before = delta_io.conflict_retries
    delta_io.with_conflict_retry("merge into t", write)
    assert len(calls) == conflicts + 1 and delta_io.conflict_retries == before + conflicts
    assert waits == pytest.approx([0.2 * n for n in range(1, conflicts + 1)])


def test_the_ninth_conflict_raises_and_other_errors_are_not_retried(monkeypatch):
    from deltalake.exceptions import CommitFailedError

    from lib import delta_io

    monkeypatch.setattr(time, "sleep", lambda s: None)
    calls = []

    def conflict() -> None:
        calls.append(1)
        raise CommitFailedError("Commit failed")

    with pytest.raises(CommitFailedError):
        delta_io.with_conflict_retry("merge into t", conflict)
    assert len(calls) == delta_io.CONFLICT_RETRIES + 1 == 9
    calls.clear()

    def broken() -> None:
        calls.append(1)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        delta_io.with_conflict_retry("merge into t", broken)
    assert len(calls) == 1


def test_the_local_stacks_waits_keep_their_messages(monkeypatch, tmp_path):
    from tools.local_stack import Stack

    stack = Stack.__new__(Stack)  # no services: only the waits
    stack.work, stack.app = tmp_path, _App()
    monkeypatch.setattr(Stack, "app_started", lambda self: False)
    with pytest.raises(RuntimeError, match="^streaming app did not start within 0 s$"):
        stack.wait_app_started(timeout=0.2)
    stack.app = _App(1)
    with pytest.raises(RuntimeError, match="^streaming app exited, see .*streaming.log$"):
        stack.wait_app_started(timeout=5)
    answers = iter([OSError("refused"), OSError("refused"), {"ok": True}])

    def api(self, path):
        a = next(answers)
        if isinstance(a, OSError):
            raise a
        return a

    monkeypatch.setattr(Stack, "api", api)
    stack.wait_http("/api/health", timeout=5)
    monkeypatch.setattr(Stack, "api", lambda self, path: (_ for _ in ()).throw(OSError("refused")))
    with pytest.raises(RuntimeError, match=r"^dashboard did not answer /api/health within 0.2 s$"):
        stack.wait_http("/api/health", timeout=0.2)
