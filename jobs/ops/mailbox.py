"""List the messages in a Maildir (the local SMTP server's): ``python -m jobs.ops.mailbox var/mail`` (make mail)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: lib/ importable, this folder not (this file would shadow stdlib mailbox)
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from lib.retarget.mailbox import messages  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.ops.mailbox", description=__doc__)
    p.add_argument("folder", nargs="?", default="var/mail", help="the Maildir (default var/mail)")
    folder = p.parse_args(argv).folder
    msgs = messages(folder)
    for m in msgs:
        print(f"{m['X-Received-At']}  {m['To']}  session {m['X-Session-Id']}  {m['Subject']}")
    print(f"{len(msgs)} messages in {folder}/new", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
