"""List the messages in a Maildir (the local SMTP server's): ``python -m jobs.ops.mailbox var/mail`` (make mail)."""

from __future__ import annotations

import sys

from lib.retarget.mailbox import messages


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
