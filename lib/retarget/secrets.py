"""Secrets of the email flow — never from config files, never logged.

Each secret ``NAME`` (``retarget.sendgrid_api_key_env``, ``retarget.signing_key_env``) is read from the
environment variable ``NAME``, else from Secret Manager when ``NAME_SECRET`` holds a secret version
(``projects/…/secrets/…/versions/latest``; Terraform sets these for the jobs, which read the value with
their own service account). Locally, without either, the signing key (unsubscribe tokens, offer codes)
is a random key created once in ``<run_dir>/signing.key`` (mode 0600), shared by the dispatcher and
the dashboard.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from lib.config import Config, ConfigError


def secret_manager_value(version: str) -> str:
    """The payload of a Secret Manager secret version (Application Default Credentials)."""
    import base64

    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    resp = AuthorizedSession(creds).get(f"https://secretmanager.googleapis.com/v1/{version}:access", timeout=30)
    if resp.status_code != 200:
        raise ConfigError(f"config error: cannot read secret {version}: HTTP {resp.status_code}")
    return base64.b64decode(resp.json()["payload"]["data"]).decode().strip()


def _lookup(name: str, environ) -> str:
    if environ.get(name):
        return environ[name]
    version = environ.get(f"{name}_SECRET", "")
    return secret_manager_value(version) if version else ""


def signing_key(cfg: Config, environ=os.environ) -> bytes:
    value = _lookup(cfg.retarget.signing_key_env, environ)
    if value:
        if len(value) < 16:
            raise ConfigError(f"config error: ${cfg.retarget.signing_key_env} must be at least 16 characters")
        return value.encode()
    if cfg.env != "local":
        name = cfg.retarget.signing_key_env
        raise ConfigError(f"config error: ${name} (or ${name}_SECRET, a Secret Manager version) is not set: "
                          "the key that signs unsubscribe links")
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
    key = _lookup(cfg.retarget.sendgrid_api_key_env, environ)
    if not key:
        name = cfg.retarget.sendgrid_api_key_env
        raise ConfigError(f"config error: retarget.sender=sendgrid needs the API key in ${name} (or ${name}_SECRET)")
    return key
