"""Secrets of the email flow, from the environment (Secret Manager on GCP) — never from config files.

The signing key (unsubscribe tokens, offer codes) comes from ``$SHOP_SIGNING_KEY`` (name configurable);
locally, when it is not set, a random key is created once in ``<run_dir>/signing.key`` (mode 0600) so
the dispatcher and the dashboard agree without any setup.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from lib.config import Config, ConfigError


def signing_key(cfg: Config, environ=os.environ) -> bytes:
    value = environ.get(cfg.retarget.signing_key_env, "")
    if value:
        if len(value) < 16:
            raise ConfigError(f"config error: ${cfg.retarget.signing_key_env} must be at least 16 characters")
        return value.encode()
    if cfg.env != "local":
        raise ConfigError(f"config error: ${cfg.retarget.signing_key_env} is not set (the signing key; "
                          "from Secret Manager on GCP)")
    path = Path(cfg.paths.run_dir) / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def sendgrid_api_key(cfg: Config, environ=os.environ) -> str:
    key = environ.get(cfg.retarget.sendgrid_api_key_env, "")
    if not key:
        raise ConfigError(f"config error: retarget.sender=sendgrid needs the API key in ${cfg.retarget.sendgrid_api_key_env}")
    return key
