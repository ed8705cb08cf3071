"""Erase one user from the retargeting tables (right to erasure; docs/retarget.md, "Personal data").

    make erase-user USER_ID=<id> [EMAIL=<address>]
    python jobs/ops/erase_user.py --user-id <id> [--email <address>] [--env local|gcp]

Deletes the user's rows from ``retarget/subscribers``, ``unsubscribes`` (by user id, and by the
address the subscriber rows hold or ``--email`` names), ``outbox``, ``decisions``, ``offers`` and the
``attempts`` of their sessions (delta-rs DELETE), then VACUUMs every retarget table with retention 0
and cuts its Delta log to one checkpoint: the rows are gone from the files *and* from the history
(which, for these tables, starts again now). Prints one summary line; exit 0.

Run it with the writers of these tables stopped (the streaming app and its dispatcher, a standalone
``make dispatcher``, the dashboard): a retention-0 VACUUM would delete the files of a concurrent write
that has not committed yet. Locally it refuses while the streaming app or the dashboard started by
``scripts/*.sh`` is running; on Google Cloud, stop the streaming job (and the dispatcher with it)
yourself first — the command cannot see it.

Exit codes: 0 done, 2 a bad argument or a writer still running (one line on stderr), 1 a failure.
Not covered: events in bronze/silver/quarantine and the gold/feature tables carry the user id (not
the address) — they are pseudonymous, and this command leaves them as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402
from lib.retarget import personal_data as pd  # noqa: E402
from lib.retarget.store import RetargetStore  # noqa: E402


def _running_writers(run_dir: str) -> list[str]:
    """Local writers of the retarget tables started by the project's scripts (pid files in run_dir)."""
    out = []
    for name in ("streaming", "dashboard"):
        pidfile = Path(run_dir) / f"{name}.pid"
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        out.append(f"{name} (pid {pid})")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Erase one user from the retarget tables (rows, then their history).")
    p.add_argument("--user-id", required=True, help="the user id (as in the events and retarget/subscribers)")
    p.add_argument("--email", help="also erase rows holding this address (unsubscribes, subscribers)")
    p.add_argument("--env", help="config environment (default local)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse's own message is already on stderr (one usage line + error)
        return 2 if exc.code else 0
    try:
        user_id = pd.check_user_id(args.user_id)
        email = pd.check_email(args.email)
        cfg = load_config(args.env)
    except (pd.EraseError, ConfigError) as exc:
        print(f"erase-user: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if "://" not in cfg.lake.root:
        busy = _running_writers(cfg.paths.run_dir)
        if busy:
            print(f"erase-user: stop the writers of retarget/* first ({', '.join(busy)} running; make stop)",
                  file=sys.stderr)
            return 2
    store = RetargetStore(cfg.lake.root)
    removed, pruned = pd.erase_user(store, user_id, email)
    rows = ", ".join(f"{name.split('/')[1]} {n}" for name, n in removed.items())
    print(f"erased user {user_id}: rows removed: {rows} (total {sum(removed.values())}); "
          f"then vacuumed retarget/*: {sum(x.files_deleted for x in pruned)} data files and "
          f"{sum(x.log_files_deleted for x in pruned)} log files deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
