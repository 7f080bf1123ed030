"""What the living-in-containers benches share: the reference dockerd and our CLI as installed.

Never starts a dockerd: `find_dockerd` only looks for one that ALREADY answers
(bench/reference_dockerd.py starts the private one on /run/docker-bench.sock).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys

from _daemon import REPO

DOCKERD_HOSTS = ("unix:///run/docker-bench.sock", "unix:///var/run/docker.sock")
DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"


def docker_cli() -> str | None:
    return shutil.which(DOCKER)


def server_of(host: str) -> str | None:
    """The Server header of GET /_ping on a unix:// host; None when nothing answers."""
    if not host.startswith("unix://"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(host[len("unix://") :])
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return None
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if not lines or " 200 " not in lines[0] + " ":
        return None
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "server":
            return value.strip()
    return ""


def find_dockerd(wanted: str | None, ours: str) -> tuple[str | None, str]:
    """(host, "Docker/version") of a RUNNING dockerd, or (None, why not)."""
    why = "no dockerd answers (these benches start none; see bench/reference_dockerd.py)"
    for host in [wanted] if wanted else DOCKERD_HOSTS:
        if os.path.realpath(host[len("unix://") :]) == os.path.realpath(ours[len("unix://") :]):
            why = f"{host} is Dockyard's own socket"
            continue
        server = server_of(host)
        if server is None:
            why = f"nothing answers on {host} (these benches start no dockerd)"
        elif not server.startswith("Docker/"):
            why = f"{host} answers as {server or 'an unnamed server'}, not dockerd"
        else:
            return host, server.split(" ")[0]
    return None, why


def compile_sources() -> None:
    """The installed launcher runs from .pyc files (install.sh compiles them). Where
    PYTHONDONTWRITEBYTECODE is set, nothing would write them and every command would
    compile its modules anew: ~12 ms of `dockyard exec` that no installation pays."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "src")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def dockyard_cli() -> list[str]:
    """`dockyard` as install.sh's launcher runs it: python -S, the sources, run()."""
    launcher = (
        f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); "
        "from dockyard.cli.main import run; raise SystemExit(run())"
    )
    return [sys.executable, "-S", "-c", launcher]


def row(
    label: str, samples: list[float], ref: list[float] | None = None, cpu: list[float] | None = None
) -> str:
    """One line: median and minimum in ms, CPU time, and the ratio of the medians to `ref`."""
    s = sorted(samples)
    line = f"  {label:<34} median {statistics.median(s) * 1000:8.1f} ms   min {s[0] * 1000:8.1f} ms"
    if cpu:
        line += f"   cpu {statistics.median(cpu) * 1000:6.1f} ms"
    if ref:
        line += f"   {statistics.median(s) / statistics.median(ref):5.2f}x dockerd"
    return line
