"""A real SMTP server for local runs and tests: aiosmtpd on 127.0.0.1, every message stored in a
Maildir (``<maildir>/new/``), each stamped with ``X-Received-At`` (UTC, microseconds) when accepted.

    .venv/bin/python scripts/smtp_server.py --port 8025 --maildir var/mail

Prints ``listening on 127.0.0.1:<port>`` once ready; SIGTERM/SIGINT stop it.

Like a real MTA it refuses recipients it cannot deliver to: any address in the ``.invalid`` top-level
domain (RFC 2606: reserved, never resolves) gets Postfix's ``550 5.1.1 <address>: Recipient address
rejected`` — quoting the address, as real servers do, so the dispatcher's redaction of refused
recipients is exercised locally. No other address is refused.

Its own log (``var/log/smtp.log``: aiosmtpd's warnings and tracebacks) holds no address: the
``mail.log`` logger redacts each record (``lib.retarget.redact``). The Maildir is the recipient side
and keeps every message as received (addresses included), like any mailbox.
"""

from __future__ import annotations

import argparse
import mailbox
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable (the redaction of the log)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _one_line(text: str | None) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in (text or ""))


class MaildirHandler:
    def __init__(self, maildir: Path):
        for sub in ("tmp", "new", "cur"):  # a Maildir, even if the folder already existed
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(maildir), create=False)
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 — aiosmtpd's hook
        if address.rstrip(">").lower().endswith(".invalid"):
            return f"550 5.1.1 <{_one_line(address)}>: Recipient address rejected: domain does not exist"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's hook name
        received = datetime.now(UTC).isoformat(timespec="microseconds")
        # trace headers go on top as bytes, the way an MTA prepends its Received: line — the message
        # itself is stored exactly as received (parsing and re-serialising it cost ~5 ms a message)
        trace = (f"X-Received-At: {received}\r\nX-MailFrom: {_one_line(envelope.mail_from)}\r\n"
                 f"X-RcptTo: {_one_line(', '.join(envelope.rcpt_tos))}\r\n").encode()
        with self.lock:
            self.box.add(trace + (envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


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
    args = p.parse_args(argv)
    try:
        controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
        controller.start()
    except (OSError, RuntimeError) as exc:
        print(f"smtp: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"listening on {args.host}:{args.port}, Maildir {args.maildir}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
