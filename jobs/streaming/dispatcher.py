"""The email dispatcher on its own (make dispatcher): ``python -m jobs.streaming.dispatcher [--once] [--env local]``.

The streaming app (jobs/streaming/app.py) runs one already; this one takes the lease only when no other
dispatcher holds it (exit 3 otherwise). The dispatcher itself is lib/retarget/dispatcher.py.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402
from lib.delta_io import exit_without_teardown  # noqa: E402
from lib.retarget.dispatcher import Dispatcher  # noqa: E402

REFUSED = 3  # exit code: another dispatcher holds the lease


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Decide and send the cart-recovery emails of the outbox.")
    p.add_argument("--env", help="config environment (default local)")
    p.add_argument("--once", action="store_true", help="one cycle (decide + send what is due), then exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    try:
        cfg = load_config(args.env)
        disp = Dispatcher.from_config(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if disp.lease is not None and not disp.lease.held:  # e.g. the streaming app's dispatcher runs
        print(f"dispatcher: {disp.lease.refusal()}", file=sys.stderr)
        return REFUSED
    if args.once:
        try:
            res = disp.run_once()
        finally:
            if disp.lease is not None:  # always one from from_config
                disp.lease.release()
        print(f"decided {dict(res.decided)}, attempted {res.attempted}, failed {res.failed_attempts}, "
              f"pending {res.pending}")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    disp.run_forever(stop, poll=cfg.retarget.poll_seconds)
    return 0


if __name__ == "__main__":
    code = main()
    if code == REFUSED:  # skip teardown: delta-rs' runtime sometimes aborts it (SIGABRT instead of this code)
        exit_without_teardown(code)
    sys.exit(code)
