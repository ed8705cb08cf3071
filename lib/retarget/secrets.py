"""Secrets of the email flow — never from config files, never logged.

Each secret ``NAME`` (``retarget.sendgrid_api_key_env``, ``retarget.signing_key_env``) is read from the
environment variable ``NAME``, else from Secret Manager when ``NAME_SECRET`` names a secret
(``projects/…/secrets/…``, optionally ``/versions/latest``; Terraform sets these for the jobs, which read
the value with their own service account).

**Link-signing keys** (unsubscribe tokens; offer codes are derived with the newest) are a *list*, so a
key can be rotated without breaking the links already mailed: the newest key signs, every key of the
list verifies (:func:`signing_keys`, oldest first, newest last; at most ``retarget.signing_keys_max``):

* ``$UNSUBSCRIBE_SIGNING_KEY``: one key, several separated by commas, or a JSON list (oldest first, the
  last signs);
* ``$UNSUBSCRIBE_SIGNING_KEY_SECRET``: a Secret Manager secret version (``…/versions/latest``) whose
  payload is the same: a JSON list of keys (or one key, the form of the first deployments). One
  version holds the whole list, so readers need nothing but ``secretAccessor`` and a rotation is one
  atomic new version: ``python -m jobs.ops.signing_keys rotate --secret projects/P/secrets/S`` (reads
  the latest version, appends a new random key, keeps the newest ``signing_keys_max``, adds the version;
  ``--only-new`` drops the old keys after a leak). docs/deploy.md has the procedure.
* locally, without either: ``<run_dir>/signing.key`` (mode 0600), one key per line, the last signs;
  created with one random key on first use, shared by the dispatcher and the dashboard.
  ``python -m jobs.ops.signing_keys rotate`` appends a new key (restart the dispatcher to sign with it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from lib.config import Config, ConfigError

MIN_KEY_LENGTH = 16
_SECRET_NAME = re.compile(r"^(projects/[^/]+/secrets/[^/]+)(?:/versions/[^/]+)?$")


def secret_manager_client(endpoint: str | None = None):
    """Secret Manager's client (``google-cloud-secret-manager``, REST transport) with Application Default
    Credentials; ``endpoint`` (``http://127.0.0.1:PORT``, the tests' fake) with anonymous ones. Imported
    here, not at the top: the client library loads gRPC and protobuf, which local runs never need."""
    # deferred: Google client libraries (~0.5 s, gRPC/protobuf) that local runs and dashboard startup skip
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud.secretmanager import SecretManagerServiceClient

    if endpoint:
        return SecretManagerServiceClient(transport="rest", credentials=AnonymousCredentials(),
                                          client_options=ClientOptions(api_endpoint=endpoint))
    try:
        return SecretManagerServiceClient(transport="rest")
    except DefaultCredentialsError:
        raise ConfigError("config error: no Google credentials to read Secret Manager (run gcloud auth "
                          "application-default login, or run as a service account)") from None


def _access(client, version: str, missing_ok: bool = False) -> str:
    from google.api_core.exceptions import GoogleAPICallError, NotFound  # deferred: see secret_manager_client

    try:
        return client.access_secret_version(name=version, timeout=30).payload.data.decode().strip()
    except NotFound:
        if missing_ok:  # a new secret has no version yet
            return ""
        raise ConfigError(f"config error: cannot read secret {version}: HTTP 404") from None
    except GoogleAPICallError as exc:
        raise ConfigError(f"config error: cannot read secret {version}: HTTP {exc.code}") from None


def secret_manager_value(version: str, client=None) -> str:
    """The payload of a Secret Manager secret version (Application Default Credentials)."""
    return _access(client or secret_manager_client(), version)


def parse_keys(text: str) -> list[str]:
    """Keys from a JSON list (``["old", "new"]``), or one key / keys separated by commas; oldest first."""
    text = text.strip()
    if text.startswith("["):
        try:
            keys = json.loads(text)
        except ValueError:
            raise ConfigError("config error: the signing-key list is not valid JSON") from None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError("config error: the signing-key list must be a JSON list of strings")
        return keys
    return text.split(",")


def rotated(payload: str, limit: int, only_new: bool = False) -> str:
    """The next payload of the signing-key secret: its keys plus a new random one (the newest
    ``limit``), or the new one alone with ``only_new`` (after a leak: every older link stops working)."""
    keys = [] if only_new else [k.strip() for k in parse_keys(payload) if k.strip()]
    return json.dumps([*keys, secrets.token_urlsafe(32)][-limit:])


def rotate_secret(name: str, limit: int, only_new: bool = False, client=None) -> str:
    """Add a version to the Secret Manager secret ``name`` holding the rotated key list (the
    caller's credentials: ``secretmanager.versions.access`` and ``.add``). Returns the new version's name."""
    from google.api_core.exceptions import GoogleAPICallError  # deferred: see secret_manager_client

    m = _SECRET_NAME.match(name)
    if not m:
        raise ConfigError(f"config error: {name!r} is not a Secret Manager name (projects/P/secrets/S)")
    secret = m.group(1)
    client = client or secret_manager_client()
    current = "" if only_new else _access(client, f"{secret}/versions/latest", missing_ok=True)
    try:
        version = client.add_secret_version(parent=secret, payload={"data": rotated(current, limit, only_new).encode()},
                                            timeout=30)
    except GoogleAPICallError as exc:
        raise ConfigError(f"config error: cannot add a version to {secret}: HTTP {exc.code}") from None
    return version.name


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


def local_keys(cfg: Config) -> list[str]:
    """The keys of the local key file (created with one new key when missing), oldest first."""
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


def signing_keys(cfg: Config, environ=os.environ, client=None) -> list[bytes]:
    """Every link-signing key, oldest first; the last one signs. See the module docstring."""
    name = cfg.retarget.signing_key_env
    if environ.get(name):
        keys = parse_keys(environ[name])
    elif environ.get(f"{name}_SECRET"):
        keys = parse_keys(secret_manager_value(environ[f"{name}_SECRET"], client))
    elif cfg.env != "local":
        raise ConfigError(f"config error: ${name} (or ${name}_SECRET, a Secret Manager secret) is not set: "
                          "the key that signs unsubscribe links")
    else:
        keys = local_keys(cfg)
    out = _checked(keys, name)
    if not out:
        raise ConfigError(f"config error: ${name} holds no key")
    return out[-cfg.retarget.signing_keys_max:]


def signing_key(cfg: Config, environ=os.environ) -> bytes:
    """The key that signs new links and derives new offer codes: the newest of :func:`signing_keys`."""
    return signing_keys(cfg, environ)[-1]


def rotate_local_key(cfg: Config) -> Path:
    """Append a new random key to the local key file (it signs from the dispatcher's next start)."""
    local_keys(cfg)
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
