"""Link-signing keys from the command line: rotate them (docs/deploy.md) or count them (make rotate-signing-key).

    python -m jobs.ops.signing_keys rotate [--secret projects/P/secrets/S] [--only-new] [--env local]
    python -m jobs.ops.signing_keys count

The keys, their sources and the rotation are in lib/retarget/secrets.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402
from lib.retarget.secrets import local_keys, rotate_local_key, rotate_secret, signing_keys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Link-signing keys: rotate them (docs/deploy.md) or count them.")
    p.add_argument("command", choices=["rotate", "count"],
                   help="rotate: a new key that signs, the old ones keep verifying; count: how many keys verify")
    p.add_argument("--env", help="config environment (default local)")
    p.add_argument("--secret", help="rotate the key list of this Secret Manager secret (projects/P/secrets/S) "
                                    "instead of the local key file")
    p.add_argument("--only-new", action="store_true", help="--secret: keep only the new key (after a leak)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.env)
        if args.command == "count":
            print(len(signing_keys(cfg)))
        elif args.secret:
            version = rotate_secret(args.secret, cfg.retarget.signing_keys_max, args.only_new)
            print(f"{version}: the new key signs once the streaming job restarts; the unsubscribe service "
                  "picks it up by itself")
        elif cfg.env != "local" or os.environ.get(cfg.retarget.signing_key_env):
            print("error: without --secret, rotate manages the local key file only; with $UNSUBSCRIBE_SIGNING_KEY "
                  "append a key to its list (docs/deploy.md)", file=sys.stderr)
            return 2
        else:
            path = rotate_local_key(cfg)
            print(f"{path}: {len(local_keys(cfg))} keys, the new one signs once the dispatcher restarts")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
