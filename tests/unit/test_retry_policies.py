"""The retry, reconnect and wait policies (tenacity): how many tries, which errors are retried, what is raised
in the end."""

from __future__ import annotations

import smtplib

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
