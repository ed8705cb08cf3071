"""The messages in a Maildir (the local SMTP server's); listed by ``python -m jobs.ops.mailbox var/mail``."""

from __future__ import annotations

import mailbox
from email import message_from_bytes
from email.policy import default
from pathlib import Path


def messages(maildir: str | Path) -> list:
    maildir = Path(maildir)
    if not (maildir / "new").is_dir():
        return []
    box = mailbox.Maildir(str(maildir), create=False)
    msgs = [message_from_bytes(box.get_bytes(k), policy=default) for k in box.keys()]
    return sorted(msgs, key=lambda m: str(m["X-Received-At"] or ""))
