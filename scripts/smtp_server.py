"""A real SMTP server for local runs and tests: aiosmtpd on 127.0.0.1, every message stored in a
Maildir (``<maildir>/new/``), each stamped with ``X-Received-At`` (UTC, microseconds) when accepted.

    .venv/bin/python scripts/smtp_server.py --port 8025 --maildir var/mail

Prints ``listening on 127.0.0.1:<port>`` once ready; SIGTERM/SIGINT stop it.

Like a real MTA it refuses recipients it cannot deliver to: any address in the ``.invalid`` top-level
domain (RFC 2606: reserved, never resolves) gets Postfix's ``550 5.1.1 <address>: Recipient address
rejected`` — quoting the address, as real servers do, so the dispatcher's redaction of refused
recipients is exercised locally. An address at ``mailbox-full.test`` (RFC 2606's ``.test``) gets a lasting
``452 4.2.2 Mailbox full`` — a recipient-level temporary refusal, the "stuck recipient" of the dispatcher's
tests. No other address is refused.

Two extensions serve the fault tests and ``make chaos``:

* ``XHAS <message-id>``: ``250`` when the Maildir holds a message with that ``Message-ID`` header, ``550``
  when it does not — how the dispatcher reconciles a send whose outcome it did not see (a crash or a
  timeout after DATA; ``lib.retarget.senders.SmtpSender.reconcile``). A server without it answers
  ``500``/``502`` and the dispatcher records such a send ``uncertain``.
* slow mode, toggled by ``SIGUSR1``: each DATA reply comes ``--slow-seconds`` late, *after* the message
  is stored (the worst case for a client whose timeout is shorter: the mail is there, the reply is not).

Its own log (``var/log/smtp.log``: aiosmtpd's warnings and tracebacks) holds no address: the
``mail.log`` logger redacts each record (``lib.retarget.redact``). The Maildir is the recipient side
and keeps every message as received (addresses included), like any mailbox.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import re
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable (the redaction of the log)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _one_line(text: str | None) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in (text or ""))


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


def message_id_of(data: bytes) -> str | None:
    """The ``Message-ID`` of a raw message (header block only), or None."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = _MESSAGE_ID.search(head)
    return m.group(1).decode("ascii", "replace") if m else None


class MaildirHandler:
    def __init__(self, maildir: Path, slow_seconds: float = 5.0):
        for sub in ("tmp", "new", "cur"):  # a Maildir, even if the folder already existed
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(maildir), create=False)
        self.lock = threading.Lock()
        # Message-ID -> Maildir key (XHAS), also of the messages stored before a restart
        self.ids = {mid: key for key in self.box.keys() if (mid := message_id_of(self.box.get_bytes(key)))}
        self.slow_seconds = slow_seconds
        self.slow = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 — aiosmtpd's hook
        if address.rstrip(">").lower().endswith(".invalid"):
            return f"550 5.1.1 <{_one_line(address)}>: Recipient address rejected: domain does not exist"
        if address.rstrip(">").lower().endswith("@mailbox-full.test"):
            return f"452 4.2.2 <{_one_line(address)}>: Mailbox full, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's hook name
        received = datetime.now(UTC).isoformat(timespec="microseconds")
        # trace headers go on top as bytes, the way an MTA prepends its Received: line — the message
        # itself is stored exactly as received (parsing and re-serialising it cost ~5 ms a message)
        trace = (f"X-Received-At: {received}\r\nX-MailFrom: {_one_line(envelope.mail_from)}\r\n"
                 f"X-RcptTo: {_one_line(', '.join(envelope.rcpt_tos))}\r\n").encode()
        data = envelope.original_content or envelope.content
        with self.lock:
            key = self.box.add(trace + data)
            if mid := message_id_of(data):
                self.ids[mid] = key
        if self.slow:
            await asyncio.sleep(self.slow_seconds)
        return "250 Message accepted for delivery"


def server_class():
    """aiosmtpd's SMTP with the ``XHAS`` verb (imported late: the module docstring runs without it)."""
    from aiosmtpd.smtp import SMTP, syntax

    class ReconcilingSMTP(SMTP):
        @syntax("XHAS <message-id>")
        async def smtp_XHAS(self, arg: str):  # noqa: N802 — aiosmtpd's command hook naming
            if not arg or not arg.strip():
                await self.push("501 Syntax: XHAS <message-id>")
                return
            found = holds(self.event_handler, arg.strip())
            await self.push("250 2.0.0 present" if found else "550 5.1.0 no such message")

    return ReconcilingSMTP


def holds(handler: MaildirHandler, message_id: str) -> bool:
    """Is a message with this Message-ID in the Maildir? (still on disk: a mailbox user may delete it)"""
    with handler.lock:
        key = handler.ids.get(message_id)
        if key is None:
            return False
        try:
            handler.box.get_file(key).close()  # the file, not a cached table of contents
        except KeyError:
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    import logging

    from aiosmtpd.controller import Controller

    from lib.retarget.redact import install

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install("mail.log")  # aiosmtpd's logger: its tracebacks may quote a recipient

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8025)
    p.add_argument("--maildir", type=Path, required=True)
    p.add_argument("--slow-seconds", type=float, default=5.0, help="delay of each DATA reply in slow mode (SIGUSR1)")
    args = p.parse_args(argv)
    handler = MaildirHandler(args.maildir, args.slow_seconds)
    smtp_class = server_class()

    class ReconcilingController(Controller):
        def factory(self):
            return smtp_class(self.handler, **self.SMTP_kwargs)

    try:
        controller = ReconcilingController(handler, hostname=args.host, port=args.port)
        controller.start()
    except (OSError, RuntimeError) as exc:
        print(f"smtp: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def toggle_slow(*_):
        handler.slow = not handler.slow
        print(f"slow mode {'on' if handler.slow else 'off'} ({handler.slow_seconds:g} s per DATA reply)", flush=True)

    signal.signal(signal.SIGUSR1, toggle_slow)  # before "listening": whoever waits for it may signal at once
    print(f"listening on {args.host}:{args.port}, Maildir {args.maildir}", flush=True)
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
