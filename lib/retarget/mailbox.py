"""List the messages in a Maildir (the local SMTP server's): ``python -m lib.retarget.mailbox var/mail``."""

from __future__ import annotations

import mailbox
import sys
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


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    folder = args[0] if args else "var/mail"
    msgs = messages(folder)
    for m in msgs:
        print(f"{m['X-Received-At']}  {m['To']}  session {m['X-Session-Id']}  {m['Subject']}")
    print(f"{len(msgs)} messages in {folder}/new", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
