"""Secrets of the email flow — never from config files, never logged.

Each secret ``NAME`` (``retarget.sendgrid_api_key_env``, ``retarget.signing_key_env``) is read from the
environment variable ``NAME``, else from Secret Manager when ``NAME_SECRET`` names a secret
(``projects/…/secrets/…``, optionally ``/versions/latest``; Terraform sets these for the jobs, which read
the value with their own service account).

**Link-signing keys** (unsubscribe tokens; offer codes are derived with the newest) are a *list*, so a
key can be rotated without breaking the links already mailed: the newest key signs, every key of the
list verifies (:func:`signing_keys`, oldest first, newest last):

* ``$UNSUBSCRIBE_SIGNING_KEY``: one key, or several separated by commas (oldest first, the last signs);
* ``$UNSUBSCRIBE_SIGNING_KEY_SECRET``: a Secret Manager secret — each *enabled version* is one key, the
  highest version number signs, the newest ``retarget.signing_keys_max`` (5) verify. Rotate with
  ``gcloud secrets versions add``; retire a key with ``gcloud secrets versions disable`` (docs/deploy.md).
  A name pinned to one version number (``…/versions/7``) is that single key. Listing versions needs
  ``secretmanager.versions.list`` (Terraform grants ``roles/secretmanager.viewer`` on the secret); without
  it the reader falls back to ``latest`` alone and says so on stderr.
* locally, without either: ``<run_dir>/signing.key`` (mode 0600), one key per line, the last signs;
  created with one random key on first use, shared by the dispatcher and the dashboard.
  ``python -m lib.retarget.secrets rotate`` appends a new key (restart the dispatcher to sign with it).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from lib.config import Config, ConfigError

MIN_KEY_LENGTH = 16
_SECRET_NAME = re.compile(r"^(projects/[^/]+/secrets/[^/]+)(?:/versions/([^/]+))?$")


def _access(version: str, get) -> str:
    import base64

    resp = get(f"https://secretmanager.googleapis.com/v1/{version}:access")
    if resp.status_code != 200:
        raise ConfigError(f"config error: cannot read secret {version}: HTTP {resp.status_code}")
    return base64.b64decode(resp.json()["payload"]["data"]).decode().strip()


def _authorized_get() -> Callable:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    session = AuthorizedSession(creds)
    return lambda url, **kw: session.get(url, timeout=30, **kw)


def secret_manager_value(version: str, get: Callable | None = None) -> str:
    """The payload of a Secret Manager secret version (Application Default Credentials)."""
    return _access(version, get or _authorized_get())


def secret_manager_keys(name: str, limit: int, get: Callable | None = None) -> list[str]:
    """The payloads of the newest ``limit`` enabled versions of secret ``name``, oldest first (the
    last is the newest: the one that signs). ``name`` pinned to a version number: that version only."""
    m = _SECRET_NAME.match(name)
    if not m:
        raise ConfigError(f"config error: {name!r} is not a Secret Manager name (projects/P/secrets/S[/versions/V])")
    secret, version = m.groups()
    get = get or _authorized_get()
    if version and version != "latest":
        return [_access(name, get)]
    numbers: list[int] = []
    token = ""
    while True:
        params = {"filter": "state:ENABLED", "pageSize": 100, **({"pageToken": token} if token else {})}
        resp = get(f"https://secretmanager.googleapis.com/v1/{secret}/versions", params=params)
        if resp.status_code == 403:  # no versions.list permission: the latest version alone
            print(f"[secrets] cannot list the versions of {secret} (HTTP 403): verifying with the latest key "
                  "only; grant roles/secretmanager.viewer on the secret to keep older links working",
                  file=sys.stderr)
            return [_access(f"{secret}/versions/latest", get)]
        if resp.status_code != 200:
            raise ConfigError(f"config error: cannot list the versions of {secret}: HTTP {resp.status_code}")
        body = resp.json()
        numbers += [int(v["name"].rsplit("/", 1)[1]) for v in body.get("versions", [])
                    if v.get("state", "ENABLED") == "ENABLED"]
        token = body.get("nextPageToken", "")
        if not token:
            break
    if not numbers:
        raise ConfigError(f"config error: secret {secret} has no enabled version")
    return [_access(f"{secret}/versions/{n}", get) for n in sorted(numbers)[-limit:]]


def _lookup(name: str, environ) -> str:
    if environ.get(name):
        return environ[name]
    version = environ.get(f"{name}_SECRET", "")
    return secret_manager_value(version) if version else ""


def _checked(keys: list[str], name: str) -> list[bytes]:
    keys = [k.strip() for k in keys if k.strip()]
    if any(len(k) < MIN_KEY_LENGTH for k in keys):
        raise ConfigError(f"config error: every key in ${name} must be at least {MIN_KEY_LENGTH} characters")
    return [k.encode() for k in keys]


def local_key_file(cfg: Config) -> Path:
    return Path(cfg.paths.run_dir) / "signing.key"


def _local_keys(cfg: Config) -> list[str]:
    path = local_key_file(cfg)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().split()


def signing_keys(cfg: Config, environ=os.environ, get: Callable | None = None) -> list[bytes]:
    """Every link-signing key, oldest first; the last one signs. See the module docstring."""
    name = cfg.retarget.signing_key_env
    if environ.get(name):
        keys = environ[name].split(",")
    elif environ.get(f"{name}_SECRET"):
        keys = secret_manager_keys(environ[f"{name}_SECRET"], cfg.retarget.signing_keys_max, get)
    elif cfg.env != "local":
        raise ConfigError(f"config error: ${name} (or ${name}_SECRET, a Secret Manager secret) is not set: "
                          "the key that signs unsubscribe links")
    else:
        keys = _local_keys(cfg)
    out = _checked(keys, name)
    if not out:
        raise ConfigError(f"config error: ${name} holds no key")
    return out[-cfg.retarget.signing_keys_max:]


def signing_key(cfg: Config, environ=os.environ) -> bytes:
    """The key that signs new links and derives new offer codes: the newest of :func:`signing_keys`."""
    return signing_keys(cfg, environ)[-1]


def rotate_local_key(cfg: Config) -> Path:
    """Append a new random key to the local key file (it signs from the dispatcher's next start)."""
    _local_keys(cfg)
    path = local_key_file(cfg)
    lead = "" if path.read_text().endswith("\n") else "\n"  # files of the one-key era have no final newline
    with path.open("a") as f:
        f.write(lead + secrets.token_urlsafe(32) + "\n")
    return path


def sendgrid_api_key(cfg: Config, environ=os.environ) -> str:
    key = _lookup(cfg.retarget.sendgrid_api_key_env, environ)
    if not key:
        name = cfg.retarget.sendgrid_api_key_env
        raise ConfigError(f"config error: retarget.sender=sendgrid needs the API key in ${name} (or ${name}_SECRET)")
    return key


def main(argv: list[str] | None = None) -> int:
    import argparse

    from lib.config import load_config

    p = argparse.ArgumentParser(description="Local link-signing keys (on Google Cloud: docs/deploy.md).")
    p.add_argument("command", choices=["rotate", "count"],
                   help="rotate: append a new key to <run_dir>/signing.key; count: how many keys verify")
    p.add_argument("--env", help="config environment (default local)")
    args = p.parse_args(argv)
    cfg = load_config(args.env)
    try:
        if args.command == "rotate":
            if cfg.env != "local" or os.environ.get(cfg.retarget.signing_key_env):
                print("error: rotate only manages the local key file; with $UNSUBSCRIBE_SIGNING_KEY append a key "
                      "to the list, on Google Cloud add a secret version (docs/deploy.md)", file=sys.stderr)
                return 2
            path = rotate_local_key(cfg)
            print(f"{path}: {len(_local_keys(cfg))} keys, the new one signs once the dispatcher restarts")
        else:
            print(len(signing_keys(cfg)))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
