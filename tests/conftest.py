"""Shared fixtures: one Spark session per test process, a local Kafka broker for integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import lib.delta_io  # noqa: F401 - sets deltalake's RUST_LOG default before any test module imports deltalake
from lib.config import PROJECT_ROOT, Config, load_config
from tools.local_stack import free_port

TEST_KAFKA_PORT = int(os.environ.get("SHOP_TEST_KAFKA_PORT", "19092"))


@pytest.fixture(scope="session")
def test_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shop")


@pytest.fixture(scope="session")
def cfg(test_root) -> Config:
    """Local config with the lake, checkpoints and broker of this test session."""
    return load_config("local", environ={
        "SHOP__LAKE__ROOT": str(test_root / "lake"),
        "SHOP__LAKE__CHECKPOINTS": str(test_root / "checkpoints"),
        "SHOP__PATHS__RUN_DIR": str(test_root / "run"),
        "SHOP__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{TEST_KAFKA_PORT}",
        "SHOP__SPARK__SHUFFLE_PARTITIONS": "2",
        "SHOP__STREAMING__TRIGGER_SECONDS": "0.5",
    })


@pytest.fixture(scope="session")
def spark(cfg):
    """The one SparkSession of this test process (local[2], 2 shuffle partitions, UTC, UI off, Delta)."""
    from lib.spark import build_session

    session = build_session(cfg, app_name="shop-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def empty_lake(cfg, test_root):
    """``new_lake(root)``: a fresh lake at ``root`` holding every table of ``lib.lakehouse.Lakehouse``,
    empty. The tables are created once per test session (``ensure_tables``, delta-rs) and copied for
    each caller (path-based Delta tables: their logs hold no absolute path)."""
    from lib import lakehouse

    template = test_root / "empty-lake"
    lakehouse.Lakehouse(cfg.model_copy(update={"lake": cfg.lake.model_copy(update={"root": str(template)})})) \
        .ensure_tables()

    def new_lake(root: Path) -> Path:
        shutil.copytree(template, root)
        return root

    return new_lake


@pytest.fixture(scope="session")
def kafka_broker(test_root) -> str:
    """A real single-node KRaft broker on 127.0.0.1, started by the project's script."""
    env = dict(os.environ, KAFKA_PORT=str(TEST_KAFKA_PORT), KAFKA_DIR=str(test_root / "kafka"))
    script = str(PROJECT_ROOT / "scripts" / "kafka.sh")
    subprocess.run([script, "start"], env=env, check=True, timeout=180)
    try:
        yield f"127.0.0.1:{TEST_KAFKA_PORT}"
    finally:
        subprocess.run([script, "stop"], env=env, check=False, timeout=60)
        shutil.rmtree(test_root / "kafka", ignore_errors=True)


@pytest.fixture
def topic(kafka_broker) -> str:
    """A fresh topic per test (created by the code under test or by the test itself)."""
    return f"t-{uuid.uuid4().hex[:10]}"


TEST_SMTP_PORT = int(os.environ.get("SHOP_TEST_SMTP_PORT", "18025"))


class SmtpServer:
    """The project's SMTP server (scripts/smtp.sh) for a test session; mail lands in ``maildir/new``."""

    def __init__(self, root: Path):
        self.port = TEST_SMTP_PORT
        self.maildir = root / "mail"
        self.env = dict(os.environ, SMTP_PORT=str(self.port), MAILDIR=str(self.maildir), SMTP_STATE=str(root))
        self.script = str(PROJECT_ROOT / "scripts" / "smtp.sh")

    def start(self) -> None:
        subprocess.run([self.script, "start"], env=self.env, check=True, timeout=60, capture_output=True)

    def stop(self) -> None:
        subprocess.run([self.script, "stop"], env=self.env, check=False, timeout=60, capture_output=True)

    def messages(self):
        """Every stored message, parsed (email.message.EmailMessage), oldest first."""
        from lib.retarget.mailbox import messages

        return messages(self.maildir)

    def clear(self) -> None:
        import mailbox

        if not (self.maildir / "new").is_dir():
            return
        box = mailbox.Maildir(str(self.maildir), create=False)
        for k in list(box.keys()):
            box.remove(k)


@pytest.fixture(scope="session")
def smtp_server(test_root) -> SmtpServer:
    """A real SMTP server on 127.0.0.1 storing a Maildir, started by the project's script."""
    server = SmtpServer(test_root / "smtp")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp(smtp_server) -> SmtpServer:
    smtp_server.start()  # a test may have stopped it (mail server down); no-op when running
    smtp_server.clear()
    return smtp_server

# -- batch / ML (issue #5) ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mlflow_server(test_root):
    """A real MLflow tracking server (SQLite + local artifacts under the test root) started by the
    project's script on a free port; MLFLOW_TRACKING_URI points at it for this test process."""
    env = dict(os.environ, MLFLOW_PORT=str(free_port()), MLFLOW_DIR=str(test_root / "mlflow"),
               MLFLOW_LOG=str(test_root / "mlflow.log"))
    script = str(PROJECT_ROOT / "scripts" / "mlflow.sh")
    subprocess.run([script, "start"], env=env, check=True, timeout=120)
    uri = f"http://127.0.0.1:{env['MLFLOW_PORT']}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield uri
    finally:
        subprocess.run([script, "stop"], env=env, check=False, timeout=60)
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


# -- the integration marker -------------------------------------------------------------------------------------
SERVICE_FIXTURES = frozenset({"kafka_broker", "smtp_server", "mlflow_server"})  # each starts a local service


def pytest_collection_modifyitems(config, items):
    """A test that starts a service (directly or through another fixture) must be marked ``integration``,
    so that ``-m "not integration"`` (``make test-unit``) starts none: collection fails otherwise."""
    unmarked = [f"{item.nodeid} ({', '.join(sorted(SERVICE_FIXTURES & set(item.fixturenames)))})"
                for item in items
                if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("integration")]
    if unmarked:
        raise pytest.UsageError("tests starting a service without the integration marker:\n  " + "\n  ".join(unmarked))
