#!/usr/bin/env python3
"""Time living in a container: `exec c true` and `stats --no-stream c`.

    .venv/bin/python bench/live_bench.py [-n 30] [--host unix:///path/to.sock]
        [--dockerd-host unix:///run/docker-bench.sock]

Without --host it starts a private daemon (temporary socket and data root,
busybox from scripts/make-base-image) and stops it at the end; it never
touches /run/dockyard.sock. One container `sleep` runs for the whole bench.
Timed, as a user waits for them (whole processes, interleaved rounds after a
warm-up): `dockyard exec c true`, `docker exec c true` against our socket
(where the docker CLI is installed), the API round trip alone
(exec create + start + inspect from a warm Python client), and
`dockyard stats --no-stream c`. With --dockerd-host (an ALREADY running
dockerd holding busybox) the docker CLI's exec on dockerd too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _daemon import REPO, PrivateDaemon, bench_env, time_command


def _api_exec(host: str, name: str) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from dockyard.client.host import parse_host
    from dockyard.client.transport import Client

    client = Client(parse_host(host))
    exec_id = client.post(f"/containers/{name}/exec", body={"Cmd": ["true"], "AttachStdout": True})[
        "Id"
    ]
    conn = client.hijack(f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False})
    for _ in conn.iter_chunks():
        pass
    conn.close()
    assert client.get(f"/exec/{exec_id}/json")["ExitCode"] == 0


def _report(name: str, samples: list[float]) -> float:
    samples = sorted(samples)
    med = statistics.median(samples)
    p90 = samples[max(0, int(len(samples) * 0.9) - 1)]
    print(f"  {name:<44} median {med * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms")
    return med


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--host", default="")
    ap.add_argument("--dockerd-host", default="")
    args = ap.parse_args()
    base = None
    daemon = None
    host = args.host
    if not host:
        base = Path(tempfile.mkdtemp(prefix="dky-bench-live-"))
        daemon = PrivateDaemon(base, busybox=True)
        host = daemon.host
    env = bench_env(host)
    dockyard = [sys.executable, "-m", "dockyard"]
    name = f"bench-live-{os.getpid()}"
    try:
        subprocess.run([*dockyard, "run", "-d", "--name", name, "busybox", "sleep", "3600"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        cmds: dict[str, list[str]] = {"dockyard exec c true": [*dockyard, "exec", name, "true"]}
        if shutil.which("docker"):
            cmds["docker exec c true (Dockyard daemon)"] = ["docker", "exec", name, "true"]
        cmds["dockyard stats --no-stream c"] = [*dockyard, "stats", "--no-stream", name]
        denv = None
        if args.dockerd_host and shutil.which("docker"):
            denv = bench_env(args.dockerd_host)
            dname = name + "-d"
            subprocess.run(["docker", "run", "-d", "--name", dname, "busybox", "sleep", "3600"],
                           env=denv, check=True, capture_output=True)  # fmt: skip
            cmds["docker exec c true (dockerd)"] = ["docker", "exec", dname, "true"]
        results: dict[str, list[float]] = {k: [] for k in cmds}
        api: list[float] = []
        for argv in cmds.values():  # warm-up
            time_command(argv, denv if "dockerd)" in " ".join(argv) else env)
        for _ in range(args.n):
            for key, argv in cmds.items():
                results[key].append(time_command(argv, denv if key.endswith("(dockerd)") else env))
            t0 = time.perf_counter()
            _api_exec(host, name)
            api.append(time.perf_counter() - t0)
        print(f"live bench, {args.n} rounds:")
        meds = {k: _report(k, v) for k, v in results.items()}
        _report("exec API round trip (create+start+inspect)", api)
        if "docker exec c true (dockerd)" in meds:
            ratio = meds["dockyard exec c true"] / meds["docker exec c true (dockerd)"]
            print(f"  dockyard exec / dockerd exec: {ratio:.2f}")
        print(json.dumps({k: round(v * 1000, 1) for k, v in meds.items()}))
    finally:
        subprocess.run([*dockyard, "rm", "-f", name], env=env, capture_output=True)
        if denv is not None:
            subprocess.run(["docker", "rm", "-f", name + "-d"], env=denv, capture_output=True)
        if daemon is not None:
            daemon.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
