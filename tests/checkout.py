"""A throwaway copy of this checkout in which the README's ``make`` commands run as a user runs them.

The copy holds the project's files (not ``.git``, not ``var/``); the installed parts — the
virtualenvs and the JVM jars — are symlinked from this checkout, so ``make setup`` inside it finds
them up to date in a second. Every service gets a free port and keeps its state under the copy, so a
``make demo`` here does not meet the developer's own running demo (or the test session's broker).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lib.config import PROJECT_ROOT
from tools.local_stack import free_port

_SKIP = {".git", "var", ".venv", ".venv-tools", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache",
         "dist", "node_modules"}


@dataclass
class Checkout:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def make(self, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``make ARGS`` in the copy; output captured as text, never raises on a non-zero exit."""
        return subprocess.run(["make", "--no-print-directory", *args], cwd=self.root, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def processes(self) -> list[str]:
        """Processes still alive whose working directory or command line is inside the copy."""
        return processes_under(self.root)

    def close(self) -> None:
        """``make stop``, then SIGKILL whatever survived (a failing test must not leave services running)."""
        self.make("stop", timeout=180)
        for line in self.processes():
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def processes_under(root: Path) -> list[str]:
    """Processes (``"pid cmdline"``) whose working directory or command line is inside ``root``."""
    found, top = [], str(root)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and int(pid) != os.getpid() and (cwd == top or cwd.startswith(top + "/") or top + "/" in cmd):
            found.append(f"{pid} {cmd[:200]}")
    return found


def make_checkout(dest: Path) -> Checkout:
    """Copy the project into ``dest`` and give it its own ports (see the module docstring)."""
    shutil.copytree(PROJECT_ROOT, dest, ignore=lambda d, names: [n for n in names if n in _SKIP or n.endswith(".pyc")])
    for name in (".venv", ".venv-tools"):
        if (PROJECT_ROOT / name).exists():
            (dest / name).symlink_to(PROJECT_ROOT / name)
    (dest / "var").mkdir()
    (dest / "var" / "jars").symlink_to(PROJECT_ROOT / "var" / "jars")
    kafka, smtp, dashboard, mlflow = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHOP_", "MLFLOW_", "KAFKA_", "SMTP_", "DASHBOARD_", "PYTEST_", "MAKE"))}
    env.update({
        "KAFKA_PORT": str(kafka), "SMTP_PORT": str(smtp), "DASHBOARD_PORT": str(dashboard),
        "MLFLOW_PORT": str(mlflow), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow}",
        "SHOP__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}", "SHOP__RETARGET__SMTP_PORT": str(smtp),
        "SHOP__RETARGET__UNSUBSCRIBE_URL": f"http://127.0.0.1:{dashboard}/unsubscribe",
    })
    return Checkout(dest, env)
