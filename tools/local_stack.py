"""The full local stack in one isolated work directory: Kafka broker, SMTP server (Maildir), streaming
app, dashboard — each a real process on 127.0.0.1 with its own lake, checkpoints, broker data, mail
and ports. Used by the benchmarks and by the one-shot run (``tools.run_once``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from contextlib import suppress
from pathlib import Path

from lib.config import load_config
from lib.kafka_admin import ensure_topic
from lib.retarget.mailbox import messages
from tools.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group ``proc`` leads (started with ``start_new_session``); a group
    that is gone already is no error."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def sigterm_as_ctrl_c() -> None:
    """Make SIGTERM unwind like Ctrl-C (KeyboardInterrupt), so the caller's ``finally: stack.stop()``
    stops every service it started. Leaves a handler the program already installed alone (run-once has
    its own); only possible from the main thread."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


class Stack:
    def __init__(self, work: Path, kafka_port: int | None = None, overrides: dict[str, str] | None = None):
        self.work = work
        self.kafka_port = kafka_port or free_port()
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.dashboard_port = free_port()
        self.smtp_port = free_port()
        self.maildir = work / "mail"
        self.env = dict(os.environ)
        self.env.update({
            "SHOP__KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "SHOP__RETARGET__SMTP_PORT": str(self.smtp_port),
            "SHOP__RETARGET__UNSUBSCRIBE_URL": f"http://127.0.0.1:{self.dashboard_port}/unsubscribe",
            "SHOP__LAKE__ROOT": str(work / "lake"),
            "SHOP__LAKE__CHECKPOINTS": str(work / "checkpoints"),
            "SHOP__PATHS__RUN_DIR": str(work / "run"),
            "SHOP__PATHS__LOG_DIR": str(work / "log"),
            **(overrides or {}),
        })
        self.procs: list[subprocess.Popen] = []
        self._queries: str | None = None
        self._app_log_from = 0

    def _kafka(self, cmd: str) -> None:
        env = dict(self.env, KAFKA_PORT=str(self.kafka_port), KAFKA_DIR=str(self.work / "kafka"))
        # its own session: the broker JVM the script leaves running is in a process group of its own,
        # which a fault driver can SIGKILL whole (bench/chaos.py) without touching this process
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), cmd], env=env, check=True, timeout=180,  # noqa: S603 — own script, argv list, no shell
                       stdout=sys.stderr, start_new_session=True)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        (self.work / "log").mkdir(parents=True, exist_ok=True)
        out = (self.work / "log" / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, *args], env=self.env, cwd=ROOT, stdout=out,  # noqa: S603 — this interpreter, own modules, no shell
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _smtp(self, cmd: str) -> None:
        env = dict(self.env, SMTP_PORT=str(self.smtp_port), MAILDIR=str(self.maildir), SMTP_STATE=str(self.work))
        subprocess.run([str(ROOT / "scripts" / "smtp.sh"), cmd], env=env, check=True, timeout=60,  # noqa: S603 — own script, argv list, no shell
                       stdout=sys.stderr)

    def config(self):
        """The streaming app's config (this stack's overrides applied)."""
        return load_config(self.env.get("SHOP_ENV"), environ=self.env)

    def start(self, topic_partitions: int = 4, with_dashboard: bool = True, queries: str | None = None) -> None:
        sigterm_as_ctrl_c()  # a benchmark stopped with SIGTERM stops its broker, SMTP server and app too
        self._kafka("start")
        self._smtp("start")
        ensure_topic(self.bootstrap, self.config().kafka.topic, topic_partitions)
        self._queries = queries
        self.start_app(wait=False)
        if with_dashboard:
            self._spawn("dashboard", ["-m", "jobs.serving.dashboard", "--port", str(self.dashboard_port)])
        self.wait_app_started()
        if with_dashboard:
            self.wait_http("/api/health", 60)

    # -- the streaming app, the broker and the SMTP server one by one (fault injection: bench/chaos.py) --
    def start_app(self, wait: bool = True, timeout: float = 240) -> subprocess.Popen:
        """Start the streaming app (all queries, or those ``start`` was given) in its own process group."""
        log("starting the streaming app")
        applog = self.work / "log" / "streaming.log"
        self._app_log_from = applog.stat().st_size if applog.exists() else 0
        args = [str(ROOT / "jobs" / "streaming" / "app.py")] + (["--queries", self._queries] if self._queries else [])
        self.app = self._spawn("streaming", args)
        if wait:
            self.wait_app_started(timeout)
        return self.app

    def app_started(self) -> bool:
        """Has this start of the app logged ``[streaming] started`` (all its queries running)?"""
        applog = self.work / "log" / "streaming.log"
        if not applog.exists():
            return False
        with applog.open("rb") as f:
            f.seek(self._app_log_from)
            return b"[streaming] started" in f.read()

    def wait_app_started(self, timeout: float = 240) -> None:
        """Until this start of the app logged ``[streaming] started`` (its queries are running)."""
        applog = self.work / "log" / "streaming.log"

        def started() -> bool:
            if self.app.poll() is not None:
                raise RuntimeError(f"streaming app exited, see {applog}")
            return self.app_started()

        try:
            wait_until(started, timeout, 0.5)
        except TimeoutError:
            raise RuntimeError(f"streaming app did not start within {timeout:.0f} s") from None

    def kill_app(self) -> None:
        """SIGKILL the streaming app's whole process group (the Python driver and its JVM)."""
        signal_group(self.app, signal.SIGKILL)
        self.app.wait(timeout=60)

    @staticmethod
    def _live_pid(pid_file: Path) -> int | None:
        """The pid in ``pid_file`` when that process is alive, else None."""
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def broker_pid(self) -> int | None:
        return self._live_pid(self.work / "kafka" / "broker.pid")

    def kill_broker(self) -> None:
        """SIGKILL the broker's process group (its own: see ``_kafka``); its data dir stays."""
        pid = self.broker_pid()
        if pid is None:
            raise RuntimeError("the broker is not running")
        group = os.getpgid(pid)
        if group == os.getpgrp():
            raise RuntimeError("the broker shares this process's group; refusing to SIGKILL it")
        os.killpg(group, signal.SIGKILL)

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        with suppress(TimeoutError):  # as before: at most ~10 s, then on regardless
            wait_until(gone, 10, 0.05)

    def start_broker(self) -> None:
        """Start the broker again: same port, same data dir (a no-op while it runs)."""
        self._kafka("start")

    def smtp_pid(self) -> int | None:
        return self._live_pid(self.work / "run" / "smtp.pid")

    def stop_smtp(self) -> None:
        self._smtp("stop")

    def start_smtp(self) -> None:
        """Start the SMTP server again: same port, same Maildir (a no-op while it runs)."""
        self._smtp("start")

    def api(self, path: str, timeout: float = 5.0):
        url = f"http://127.0.0.1:{self.dashboard_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 — scheme fixed to http://127.0.0.1
            return json.loads(resp.read())

    def wait_http(self, path: str, timeout: float) -> None:
        def answers() -> bool:
            try:
                self.api(path)
            except OSError:
                return False
            return True

        try:
            wait_until(answers, timeout, 0.3)
        except TimeoutError:
            raise RuntimeError(f"dashboard did not answer {path} within {timeout} s") from None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                signal_group(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self._smtp("stop")
        self._kafka("stop")

    def messages(self) -> list:
        """Every message the SMTP server accepted (email.message.EmailMessage), in arrival order."""
        return messages(self.maildir)
