"""A private Dockyard daemon for a bench: this checkout's code on a temporary
socket and data root under `base`, touching nothing of an installed daemon.

    with PrivateDaemon(base, busybox=True) as d:
        subprocess.run([*d.dockyard, "run", "--rm", "busybox", "true"], env=d.env)

`env` points DOCKER_HOST and DOCKYARD_HOST at it and puts a `dockyard` of this
checkout first on PATH (scripts/make-base-image and shell snippets run it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent


def bench_env(host: str) -> dict[str, str]:
    """The environment for a CLI (ours or docker's) talking to `host`: this checkout's
    sources first on PYTHONPATH."""
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.update(DOCKER_HOST=host, DOCKYARD_HOST=host, DOCKER_CLI_HINTS="false")
    return env


class PrivateDaemon:
    def __init__(
        self,
        base: Path,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        busybox: bool = False,
        timeout: float = 60,
    ) -> None:
        """Start it and wait until its socket answers; `args` are extra daemon flags,
        `env` extra environment, `busybox` imports busybox:latest
        (`dockyard image bootstrap`)."""
        self.base = base
        self.sock = base / "d.sock"
        self.host = f"unix://{self.sock}"
        self.log_path = base / "daemon.log"
        self.dockyard = [sys.executable, "-m", "dockyard"]
        bindir = base / "bin"
        bindir.mkdir(exist_ok=True)
        launcher = bindir / "dockyard"
        launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m dockyard "$@"\n')
        launcher.chmod(0o755)
        self.env = bench_env(self.host)
        self.env["PATH"] = os.pathsep.join((str(bindir), self.env.get("PATH", "")))
        self.env.update(env or {})
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.dockyard, "daemon", "-H", self.host, "--data-root", str(base / "root"),
             "--pidfile", str(base / "d.pid"), *args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=self.env, cwd="/",
        )  # fmt: skip
        try:
            self._wait_ready(timeout)
            if busybox:
                subprocess.run(
                    [sys.executable, str(REPO / "scripts" / "make-base-image"), "busybox"],
                    check=True, capture_output=True, env=self.env, timeout=300,
                )  # fmt: skip
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the bench daemon did not start; see {self.log_path}")
            probe = subprocess.run(
                [*self.dockyard, "version", "--format", "{{.Server.Version}}"],
                env=self.env, capture_output=True,
            )  # fmt: skip
            if self.sock.exists() and probe.returncode == 0:
                return
            time.sleep(0.1)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`dockyard ARGS` against it; a failure ends the bench with its stderr."""
        proc = subprocess.run([*self.dockyard, *args], env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise SystemExit(f"dockyard {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
        return proc

    def peak_rss_mb(self) -> float:
        """The daemon's peak resident memory (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> PrivateDaemon:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def time_command(argv: list[str], env: dict[str, str]) -> float:
    """Seconds one command takes as a whole process; its failure ends the bench."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode()}")
    return dt
