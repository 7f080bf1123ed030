"""A real Distribution v2 registry for the tests: Debian's `docker-registry`.

Started with `docker-registry serve CONFIG` on a free port of 127.0.0.1 with
its storage in a temporary directory (its own systemd service is never
used), optionally behind htpasswd (bcrypt) auth. Stopped and removed by the
fixture that started it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryServer:
    def __init__(self, users: dict[str, str] | None = None) -> None:
        if REGISTRY is None:
            pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
        self.dir = Path(tempfile.mkdtemp(prefix="dky-registry-", dir="/tmp"))
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = self.dir / "data"
        auth = ""
        if users:
            if HTPASSWD is None:
                pytest.skip("htpasswd is not installed (apt-get install apache2-utils)")
            lines = []
            for user, password in users.items():
                out = subprocess.run(
                    [HTPASSWD, "-Bbn", user, password], capture_output=True, text=True, check=True
                ).stdout.strip()
                lines.append(out)
            (self.dir / "htpasswd").write_text("\n".join(lines) + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: dky-realm\n    path: {self.dir / 'htpasswd'}\n"
        (self.dir / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n" + auth
        )
        self.log = (self.dir / "registry.log").open("wb")
        self.proc = subprocess.Popen(
            [REGISTRY, "serve", str(self.dir / "config.yml")],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "docker-registry exited:\n" + (self.dir / "registry.log").read_text()
                )
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer on {self.host}")

    def blob_file(self, digest: str) -> Path:
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
