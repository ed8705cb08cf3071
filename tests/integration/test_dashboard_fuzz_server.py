"""Schemathesis's command line (``st run``) against the real server (``python -m jobs.serving.dashboard --port 0``,
role ``all``) over a small populated lake: every operation of ``openapi_document`` (``/openapi.json``
plus the page, ``/docs`` and ``/unsubscribe`` GET/POST), through uvicorn's HTTP stack, with the
coverage phase (boundary values of every parameter) as well as random data, positive and negative.
The in-process fuzz test is ``tests/unit/test_dashboard_fuzz.py``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")

from lib.dashboard import create_app  # noqa: E402
from lib.dashboard.app import openapi_document  # noqa: E402
from tests.browser import dashboard_server  # noqa: E402
from tests.unit.test_dashboard_fuzz import CONFIG_TOML, KEY, populate  # noqa: E402

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,negative_data_rejection")


@pytest.mark.timeout(300)
def test_schemathesis_cli_against_the_running_dashboard(tmp_path):
    lake = tmp_path / "lake"
    populate(lake)
    spec = tmp_path / "openapi-all.json"
    spec.write_text(json.dumps(openapi_document(create_app(str(lake), unsubscribe_handler=lambda _t: False))))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG_TOML)
    st = Path(sys.executable).parent / "st"
    env = {"UNSUBSCRIBE_SIGNING_KEY": KEY.decode(), "SHOP__PATHS__RUN_DIR": str(tmp_path / "run")}
    with dashboard_server(lake, env=env, log=tmp_path / "server.log") as url:
        run = subprocess.run([str(st), "--config-file", str(config), "run", str(spec), "--url", url, "--checks", CHECKS, "--mode", "all",
                              "--phases", "coverage,fuzzing", "--max-examples", "30", "--seed", "1", "--no-color"],
                             capture_output=True, text=True, timeout=280, cwd=tmp_path)
    out = run.stdout + run.stderr
    print(out[-3000:])
    assert run.returncode == 0, out[-6000:]
    operations = re.search(r"Tested:\s+(\d+)", out)
    cases = re.search(r"(\d+) generated, (\d+) passed", out)
    assert operations and int(operations.group(1)) == len([m for p in json.loads(spec.read_text())["paths"].values()
                                                           for m in p])
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) > 300
