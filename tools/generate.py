"""Write synthetic REES46 cosmetics-shop events (and newsletter subscribers) as CSV.

    python -m tools.generate --rows 1000000 --out var/data/events.csv
    python -m tools.generate --rows 60000 --minutes 30 --seed 7 --out var/data/stream.csv

The events come from ``lib.data.generator.writers.write_csv``, the subscribers (by default
``<out stem>_subscribers.csv`` beside ``--out``) from ``lib.data.generator.subscribers``. Bad
arguments or an unwritable path exit 2 with one line on stderr (no usage dump, no traceback).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from lib.data.generator.calibration import DEFAULT_SEED, DEFAULT_START, EVENTS_PER_DAY
from lib.data.generator.simulation import parse_window
from lib.data.generator.subscribers import (
    DEFAULT_CONSENT_SHARE,
    DEFAULT_SUBSCRIBER_SHARE,
    generate_subscribers,
    write_subscribers_csv,
)
from lib.data.generator.writers import temp_path, write_csv


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise _ArgumentError(message)


def _count(text: str) -> int:
    try:
        value = float(text.replace("_", "")) if any(c in text for c in ".eE") else int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value != int(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m tools.generate",
        description="Write synthetic REES46 cosmetics-shop events (and newsletter subscribers) as CSV.",
    )
    p.add_argument("--rows", type=_count, required=True, help="number of events to write")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--start", default=DEFAULT_START,
                   help=f"first day/time, UTC (default {DEFAULT_START})")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--days", type=_positive,
                        help=f"window length in days (default rows / {EVENTS_PER_DAY:,}, at least 1)")
    window.add_argument("--minutes", type=_positive, help="window length in minutes (instead of --days)")
    p.add_argument("--out", required=True, help="events CSV to write")
    subs = p.add_mutually_exclusive_group()
    subs.add_argument("--subscribers", help="subscribers CSV (default: <out stem>_subscribers.csv beside --out)")
    subs.add_argument("--no-subscribers", action="store_true", help="do not write a subscribers file")
    p.add_argument("--subscriber-share", type=_share, default=DEFAULT_SUBSCRIBER_SHARE,
                   help=f"share of users who subscribed (default {DEFAULT_SUBSCRIBER_SHARE})")
    p.add_argument("--consent-share", type=_share, default=DEFAULT_CONSENT_SHARE,
                   help=f"share of subscribers with marketing consent (default {DEFAULT_CONSENT_SHARE})")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def _check_writable(path: Path, what: str) -> None:
    if path.exists() and path.is_dir():
        raise _ArgumentError(f"{what} {str(path)!r} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = temp_path(path)
        with open(probe, "w", encoding="utf-8"):
            pass
        probe.unlink()
    except OSError as exc:
        raise _ArgumentError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 with a one-line message on bad arguments)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        days = args.minutes / 1440.0 if args.minutes is not None else args.days
        try:
            parse_window(args.rows, args.start, days)
        except ValueError as exc:
            raise _ArgumentError(str(exc)) from None
        out = Path(args.out)
        subs_path = None
        if not args.no_subscribers:
            subs_path = Path(args.subscribers) if args.subscribers else out.with_name(f"{out.stem}_subscribers.csv")
            if subs_path.resolve() == out.resolve():
                raise _ArgumentError("--subscribers must differ from --out")
        _check_writable(out, "--out")
        if subs_path is not None:
            _check_writable(subs_path, "--subscribers")
    except _ArgumentError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)

    try:
        summary = write_csv(out, args.rows, seed=args.seed, start=args.start, days=days)
        n_subs = 0
        if subs_path is not None:
            subscribers = generate_subscribers(summary.user_ids, seed=args.seed, share=args.subscriber_share,
                                               consent_share=args.consent_share)
            write_subscribers_csv(subscribers, subs_path)
            n_subs = len(subscribers)
    except OSError as exc:
        print(f"{parser.prog}: error: cannot write output: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        subs_note = f"; {n_subs:,} subscribers -> {subs_path}" if subs_path is not None else ""
        print(f"wrote {summary.rows:,} events ({summary.users:,} users, {summary.sessions:,} sessions, "
              f"{summary.first_event_time} .. {summary.last_event_time}) -> {summary.path} "
              f"in {summary.seconds:.1f}s{subs_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
