#!/usr/bin/env python3
"""Where the time of `dockyard exec c true` goes, step by step, beside dockerd.

    .venv/bin/python bench/exec_bench.py [-n 30] [--dockerd-host unix:///run/docker-bench.sock]

Starts a private daemon (temporary socket and data root, busybox from
scripts/make-base-image) with one `sleep` container, and stops it at the end; it never
touches /run/dockyard.sock. Where a dockerd ALREADY answers (--dockerd-host, or
/run/docker-bench.sock, see bench/reference_dockerd.py; this script starts none), a
`sleep` busybox container is run there too (named exec-bench-<pid>, removed at the
end) and the docker CLI is timed against it in the same interleaved rounds, so the
ratios hold however loaded the machine is. The sources are compiled first
(compileall), as install.sh does: with PYTHONDONTWRITEBYTECODE set, every command
would otherwise compile its modules anew. Each row gives the median and the
minimum (on a loaded machine the minimum is the better estimate of the work itself):

  python -S start           the interpreter alone, as the installed launcher runs it
  CLI imports               python -S + what `exec` imports (cli.main, attach, client)
  dockyard exec             the whole command as installed (python -S, run())
  docker exec -> dockyard   the docker CLI against our daemon
  docker exec -> dockerd    the docker CLI against dockerd (the reference)
  API: create               POST /containers/c/exec from a warm client
  API: start..end           POST /exec/{id}/start, hijacked, until the stream ends
  API: inspect              GET /exec/{id}/json (the exit code)
  runtime: to started       the launcher alone: request (to the container's monitor,
                            which runs the exec in the monitor host) to exec'd
  runtime: to exit          from exec'd until the exit event

For the commands, `cpu` is the median CPU time (user + system) of the process itself,
and the ratio is to `docker exec -> dockerd`'s median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _daemon import REPO, PrivateDaemon  # noqa: E402 - the bench directory is not a package
from reference_engines import (  # noqa: E402
    compile_sources,
    docker_cli,
    dockyard_cli,
    find_dockerd,
    row,
)

sys.path.insert(0, str(REPO / "src"))

CPU: dict[str, list[float]] = {}  # CPU seconds of the command itself (not of the daemon)


def _process(argv: list[str], env: dict[str, str], label: str) -> Callable[[], float]:
    def run() -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True)
        dt = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode()}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        CPU.setdefault(label, []).append(cpu)
        return dt

    return run


def _api_steps(host: str, name: str) -> Callable[[], tuple[float, float, float]]:
    from dockyard.cli.attach import run_session
    from dockyard.client.host import parse_host
    from dockyard.client.transport import Client

    client = Client(parse_host(host))
    body = {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True}

    def run() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        exec_id = client.request("POST", f"/containers/{name}/exec", body=body).json()["Id"]
        t1 = time.perf_counter()
        conn = client.hijack(f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False})
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)  # the stream's bytes (none for `true`) go nowhere
        run_session(client, exec_id, conn, False, False, False)
        t2 = time.perf_counter()
        code = client.request("GET", f"/exec/{exec_id}/json").json()["ExitCode"]
        t3 = time.perf_counter()
        assert code == 0
        return t1 - t0, t2 - t1, t3 - t2

    return run


async def _runtime_steps(
    bundle: str, cid: str, rounds: int, run_dir: str
) -> list[tuple[float, float]]:
    from dockyard.runtime.launcher import Launcher
    from dockyard.runtime.spec import ExecSpec

    launcher = Launcher(run_dir)
    await launcher.start()
    out = []
    try:
        for i in range(rounds + 1):
            t0 = time.perf_counter()
            link = await launcher.exec(cid, bundle, ExecSpec(args=["true"], env=["PATH=/bin"]))
            t1 = time.perf_counter()
            async for _frame in link.frames():
                pass
            await link.wait()
            await link.close()
            t2 = time.perf_counter()
            if i:
                out.append((t1 - t0, t2 - t1))
    finally:
        await launcher.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--dockerd-host", default="", help="a RUNNING dockerd (default: look)")
    args = ap.parse_args()
    compile_sources()
    base = Path(tempfile.mkdtemp(prefix="dky-bench-exec-"))
    daemon = PrivateDaemon(base, busybox=True)
    host, env = daemon.host, daemon.env
    py = sys.executable
    cli = dockyard_cli()
    docker = docker_cli()
    dockerd, why = find_dockerd(args.dockerd_host or None, host)
    if docker is None:
        dockerd, why = None, "no docker CLI installed"
    name = f"exec-bench-{os.getpid()}"
    imports = (
        f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); "
        "import dockyard.cli.main, dockyard.cli.attach, dockyard.cli.commands.exec_"
    )
    saved_stdout = os.dup(1)
    try:
        subprocess.run([*cli, "run", "-d", "--name", name, "busybox", "sleep", "3600"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        cid = subprocess.run(
            [*cli, "inspect", "-f", "{{.Id}}", name],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        procs: dict[str, Callable[[], float]] = {
            "python -S start": _process([py, "-S", "-c", "pass"], env, "python -S start"),
            "CLI imports": _process([py, "-S", "-c", imports], env, "CLI imports"),
            "dockyard exec": _process([*cli, "exec", name, "true"], env, "dockyard exec"),
        }
        if docker:
            procs["docker exec -> dockyard"] = _process(
                [docker, "-H", host, "exec", name, "true"], env, "docker exec -> dockyard"
            )
        if dockerd and docker:
            subprocess.run([docker, "-H", dockerd, "run", "-d", "--name", name, "busybox",
                            "sleep", "3600"], env=env, check=True, capture_output=True)  # fmt: skip
            procs["docker exec -> dockerd"] = _process(
                [docker, "-H", dockerd, "exec", name, "true"], env, "docker exec -> dockerd"
            )
        api = _api_steps(host, name)
        results: dict[str, list[float]] = {k: [] for k in procs}
        steps: list[tuple[float, float, float]] = []
        for i in range(args.n + 1):  # interleaved: every row sees the same load
            for key, fn in procs.items():
                dt = fn()
                if i:
                    results[key].append(dt)
            step = api()
            if i:
                steps.append(step)
        os.dup2(saved_stdout, 1)
        runtime = asyncio.run(
            _runtime_steps(str(base / "root" / "containers" / cid), cid, args.n, str(base / "lrun"))
        )
        print(f"exec bench, {args.n} interleaved rounds (load average {os.getloadavg()[0]:.1f}):")
        if dockerd:
            print(f"  dockerd: {dockerd}")
        else:
            print(f"  no dockerd compared: {why}")
        ref = results.get("docker exec -> dockerd")
        for key, samples in results.items():
            print(
                row(
                    key,
                    samples,
                    ref if key.startswith(("dockyard", "docker exec -> dockyard")) else None,
                    CPU.get(key),
                )
            )
        for i, label in enumerate(("API: create", "API: start..end", "API: inspect")):
            print(row(label, [s[i] for s in steps]))
        print(row("runtime: to started", [r[0] for r in runtime]))
        print(row("runtime: to exit", [r[1] for r in runtime]))
    finally:
        os.dup2(saved_stdout, 1)
        subprocess.run([*cli, "rm", "-f", name], env=env, capture_output=True)
        if dockerd and docker:
            subprocess.run([docker, "-H", dockerd, "rm", "-f", name], capture_output=True)
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
