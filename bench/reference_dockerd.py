#!/usr/bin/env python3
"""Start or stop the private dockerd that the benches compare against.

    python3 bench/reference_dockerd.py start [--images busybox:latest debian:bookworm]
    python3 bench/reference_dockerd.py stop
    python3 bench/reference_dockerd.py status

The bench scripts never start a daemon themselves; they look for one that
answers on /run/docker-bench.sock. This script starts Debian's dockerd
(`apt-get install docker.io`) there, with its own data root, exec root and
pid file, so it shares nothing with a system dockerd, and `--iptables=false`,
so that it leaves the host's firewall (and any Dockyard daemon's chains)
alone: a container without published ports costs dockerd no iptables call
anyway, and published ports go through docker-proxy. The images come from
the installed Dockyard daemon (`dockyard save IMAGE | docker load`), which
also shows that what we save loads into dockerd. `stop` ends dockerd and its
containerd, unmounts what they left, and deletes the docker0 bridge.

For benches only: never run this in CI or from a test.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SOCKET = "/run/docker-bench.sock"
HOST = f"unix://{SOCKET}"
DATA_ROOT = Path("/var/lib/dockyard-bench-dockerd")
EXEC_ROOT = Path("/run/docker-bench")
PID_FILE = Path("/run/docker-bench.pid")
LOG = Path("/var/log/docker-bench.log")
DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"


class _UnixHTTP(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2)
        self.sock.connect(SOCKET)


def answers() -> bool:
    try:
        conn = _UnixHTTP("localhost")
        conn.request("GET", "/_ping")
        resp = conn.getresponse()
        return resp.status == 200 and "Docker" in (resp.getheader("Server") or "")
    except OSError:
        return False


def _pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(images: list[str]) -> int:
    if shutil.which("dockerd") is None:
        print("dockerd is not installed (apt-get install docker.io)", file=sys.stderr)
        return 1
    if not answers():
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        EXEC_ROOT.mkdir(parents=True, exist_ok=True)
        argv = [
            "dockerd",
            "-H", HOST,
            "--data-root", str(DATA_ROOT),
            "--exec-root", str(EXEC_ROOT),
            "--pidfile", str(PID_FILE),
            "--iptables=false",
            "--ip-masq=false",
        ]  # fmt: skip
        with LOG.open("ab") as log:
            subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while not answers():
            if time.monotonic() > deadline:
                print(f"dockerd did not answer on {SOCKET} in 60 s: see {LOG}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    print(f"dockerd answers on {HOST} (log {LOG})")
    for image in images:
        have = subprocess.run([DOCKER, "-H", HOST, "image", "inspect", image], capture_output=True)
        if have.returncode == 0:
            print(f"{image}: already in dockerd")
            continue
        save = subprocess.Popen(["dockyard", "save", image], stdout=subprocess.PIPE)
        load = subprocess.run([DOCKER, "-H", HOST, "load"], stdin=save.stdout, text=True)
        if save.wait() != 0 or load.returncode != 0:
            print(f"{image}: could not copy it from Dockyard into dockerd", file=sys.stderr)
            return 1
    return 0


def stop() -> int:
    pid = _pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid() is not None:
            os.kill(pid, signal.SIGKILL)
    # What dockerd's own containerd and its overlay mounts may leave behind.
    for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        target = line.split()[1]
        if target.startswith((str(DATA_ROOT), str(EXEC_ROOT))):
            subprocess.run(["umount", "-l", target], check=False)
    subprocess.run(["ip", "link", "del", "docker0"], capture_output=True, check=False)
    print("dockerd stopped" if pid else "dockerd was not running")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("start", "stop", "status"))
    ap.add_argument("--images", nargs="*", default=["busybox:latest"])
    args = ap.parse_args()
    if args.action == "start":
        return start(args.images)
    if args.action == "stop":
        return stop()
    print(f"dockerd {'answers' if answers() else 'does not answer'} on {HOST}")
    return 0 if answers() else 1


if __name__ == "__main__":
    sys.exit(main())
