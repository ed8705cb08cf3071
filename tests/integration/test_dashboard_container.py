"""The Cloud Run image's entry point (terraform/dashboard/entrypoint.sh), run here as Cloud Run runs it:
``$PORT``, ``SHOP_ENV=gcp``, the lake given as a URI, the role from ``DASHBOARD_ROLE`` — and with
Spark, MLflow and the Kafka client made unimportable, as they are in the image (requirements/dashboard.txt).

* role ``dashboard``: the page and the API over the lake, no ``/unsubscribe`` (read-only identity);
* role ``unsubscribe``: ``/unsubscribe`` and the offer-code check only — no other API, no page, no
  OpenAPI — and a valid signed link records the unsubscribe in the lake; a forged one is refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lib.config import PROJECT_ROOT
from tests.dashboard_data import GoldSales
from tests.helpers import wait_for
from tools.local_stack import free_port

pytestmark = pytest.mark.integration

ENTRYPOINT = PROJECT_ROOT / "terraform" / "dashboard" / "entrypoint.sh"
NOT_IN_IMAGE = ("pyspark", "delta", "mlflow", "confluent_kafka", "sklearn", "pymc", "matplotlib", "sendgrid",
                "aiosmtpd", "tqdm")
KEY = "k" * 32


def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (PROJECT_ROOT / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pkg, version = line.split("==")
            out[pkg.lower()] = version
    return out


def test_image_requirements_pin_what_the_project_pins():
    image = _pins("dashboard.txt")
    project = {**_pins("dataproc.txt"), **_pins("base.txt")}
    assert image, "requirements/dashboard.txt pins nothing"
    for pkg, version in image.items():
        assert project.get(pkg) == version, f"{pkg}=={version} in dashboard.txt, {project.get(pkg)} elsewhere"


def test_dockerfile_copies_what_exists_and_dockerignore_lets_it_through():
    dockerfile = (PROJECT_ROOT / "terraform" / "dashboard" / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+) ", dockerfile, re.M)
    assert copied
    allowed = [line[1:] for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for src in copied:
        assert (PROJECT_ROOT / src).exists(), src
        assert any(src.rstrip("/") == a.rstrip("/") for a in allowed), f"{src} is excluded by .dockerignore"
    assert "ENTRYPOINT" in dockerfile and "USER " in dockerfile  # not root


class Service:
    def __init__(self, role: str, lake_uri: str, tmp: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        block = tmp / f"block-{role}"
        block.mkdir(exist_ok=True)
        (block / "sitecustomize.py").write_text(
            "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in NOT_IN_IMAGE))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "UNSUBSCRIBE_"))}
        env.update({"PYTHON": sys.executable, "PORT": str(self.port), "SHOP_ENV": "gcp", "DASHBOARD_ROLE": role,
                    "SHOP__LAKE__ROOT": lake_uri, "PYTHONPATH": f"{block}{os.pathsep}{PROJECT_ROOT}",
                    "K_SERVICE": f"shop-dev-{role}", **(extra_env or {})})
        self.proc = subprocess.Popen([str(ENTRYPOINT)], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "[dashboard] serving http://0.0.0.0:PORT/ ..." once listening
        assert "[dashboard] serving" in line, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, data: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture
def lake(tmp_path) -> Path:
    lake = tmp_path / "lake"
    GoldSales(lake).add(1001, datetime.now(UTC), units=2, revenue=19.8, brand="rosa").flush()
    return lake


def test_dashboard_role_serves_the_page_and_api_from_a_lake_uri(lake, tmp_path):
    svc = Service("dashboard", lake.as_uri(), tmp_path)
    try:
        status, body = svc.get("/api/health")
        assert status == 200
        health = json.loads(body)
        assert health["lake_root"] == lake.as_uri()
        assert {t["table"] for t in health["tables"] if t["exists"]} >= {"gold/sales_per_minute", "gold/sales_daily"}
        status, body = svc.get("/api/sales/summary")
        assert status == 200 and json.loads(body)["units"] == 2
        status, body = svc.get("/")
        assert status == 200 and b"<html" in body.lower()
        # read-only: the unsubscribe routes live in the other service
        assert svc.get("/unsubscribe?token=x")[0] == 404
        assert svc.get("/unsubscribe", data=b"token=x")[0] in (404, 405)
    finally:
        err = svc.stop()
    assert "Traceback" not in err, err


def test_unsubscribe_role_does_nothing_else_and_records_a_valid_link(lake, tmp_path):
    import pyarrow as pa
    from deltalake import DeltaTable

    from lib.retarget.message import offer_code, unsubscribe_token
    from lib.retarget.store import OFFERS, RetargetStore
    from lib.schema import arrow_schema

    svc = Service("unsubscribe", lake.as_uri(), tmp_path, {"UNSUBSCRIBE_SIGNING_KEY": KEY})
    try:
        for path in ("/", "/api/health", "/api/sales/summary", "/openapi.json", "/docs", "/static/dashboard.js"):
            assert svc.get(path)[0] == 404, path
        assert svc.get("/healthz")[0] == 200
        token = unsubscribe_token(KEY.encode(), 4242, "ana@example.com")
        status, body = svc.get("/unsubscribe?" + urllib.parse.urlencode({"token": token}))
        assert status == 200 and b"unsubscribe-confirm" in body
        assert svc.get("/unsubscribe", data=b"token=forged.token")[0] == 400
        forged = unsubscribe_token(b"another-key-another-key-1234", 4242, "ana@example.com")
        assert svc.get("/unsubscribe", data=urllib.parse.urlencode({"token": forged}).encode())[0] == 400
        status, body = svc.get("/unsubscribe", data=urllib.parse.urlencode({"token": token}).encode())
        assert status == 200 and b"You are unsubscribed" in body
        rows = DeltaTable(str(lake / "retarget" / "unsubscribes")).to_pyarrow_table().to_pylist()
        assert [r["user_id"] for r in rows] == [4242]
        # the offer-code check a checkout calls: read from the lake URI, nothing personal in the answer
        code = offer_code(KEY.encode(), "sess-1")
        assert json.loads(svc.get(f"/api/offers/{code}")[1])["status"] == "unknown"  # no table yet
        now = datetime.now(UTC)
        RetargetStore(str(lake)).append(OFFERS, pa.Table.from_pylist(
            [{"code": code, "user_id": 4242, "user_session": "sess-1", "issued_at": now,
              "expires_at": now + timedelta(days=7), "status": "issued"}], schema=arrow_schema(OFFERS)))
        # a remote lake's log is looked at again at most once a second
        wait_for(lambda: json.loads(svc.get(f"/api/offers/{code}")[1])["status"] != "unknown", 10, 0.2,
                 what="the new offer to be seen")
        status, body = svc.get(f"/api/offers/{code}")
        assert status == 200 and set(json.loads(body)) == {"code", "status", "expires_at"}
        assert json.loads(body)["status"] == "valid" and b"4242" not in body and b"sess-1" not in body
        assert svc.get("/api/offers/not-a-code")[0] == 422
    finally:
        err = svc.stop()
    assert "Traceback" not in err, err


def test_unsubscribe_role_without_a_signing_key_stops_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "UNSUBSCRIBE_"))}
    env.update({"PYTHON": sys.executable, "PORT": str(free_port()), "SHOP_ENV": "gcp",
                "DASHBOARD_ROLE": "unsubscribe", "SHOP__LAKE__ROOT": (tmp_path / "lake").as_uri()})
    started = time.monotonic()
    proc = subprocess.run([str(ENTRYPOINT)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and time.monotonic() - started < 60
    assert proc.stderr.strip().count("\n") == 0 and "UNSUBSCRIBE_SIGNING_KEY" in proc.stderr
