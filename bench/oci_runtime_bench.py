#!/usr/bin/env python3
"""`dockyard-runtime run` of one bundle against `runc run` and `crun run`, whole processes.

    python3 bench/oci_runtime_bench.py [-n 20] [--also DIR ...]

Two bundles over one busybox rootfs, args ["true"], no terminal:
  plain    `dockyard-runtime spec`'s config (what `runc spec` gives: namespaces,
           Docker's capabilities, masked paths, a device cgroup, no seccomp);
  seccomp  the same plus Docker's default seccomp profile in linux.seccomp, as
           containerd's and Docker's bundles carry it (~370 rules).
Each runtime gets its own --root under /run (tmpfs, as containerd's
/run/containerd/runc). Rounds are interleaved (each round runs every runtime on
every bundle, in a shuffled order per round) after a warm-up round, so the load
on the machine hits all alike: the ratios are the result, absolute times on a
loaded 2-core machine are inflated. Wall time from spawn to reaped, CPU from
wait4's rusage (the runtime and the container it reaped).

Then where dockyard-runtime's milliseconds go: the interpreter (`python -IS`,
out by _exit as entry() does), the imports of the run path (from its image, by
the launcher's lines), and inside the process the phases of
`run` (timed by wrapping the lifecycle's functions in a copy of the launcher),
the rest being the process's exit.

--also DIR times another checkout's sources (DIR/src, e.g. a `git worktree` of
main) as dockyard-runtime@DIR in the same rounds: before/after in one run.

dockyard-runtime is launched as scripts/install.sh installs it (`python -IS`,
this checkout's sources compiled, the run path's image built and loaded by
run_image.load() through the lines run_image.preload() writes, then `entry()`).
runc and crun where installed; crun on a v1 host also needs a hugetlb hierarchy:
  mkdir -p /sys/fs/cgroup/hugetlb
  mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = str(REPO / "src")
sys.path.insert(0, SRC)

IMPORTS = "import dockyard.runtime.oci_cli, dockyard.runtime.oci_lifecycle\n"
BARE = "import posix; posix._exit(0)"  # the interpreter alone, out as entry() goes

# Run inside a copy of the launcher: timestamps at the lifecycle's steps (parent side).
TRACED = """
import os, sys, time
t0 = time.perf_counter_ns()
sys.path.insert(0, {src!r})
__PRELOAD__
from dockyard.runtime import oci_cli, oci_lifecycle as L
from dockyard.kernel import linux as LX
marks = [("start", t0), ("imported", time.perf_counter_ns())]
def mark(name):
    marks.append((name, time.perf_counter_ns()))
def after(mod, name, label):
    inner = getattr(mod, name)
    def wrapped(*a, **k):
        try:
            return inner(*a, **k)
        finally:
            mark(label)
    setattr(mod, name, wrapped)
def before(mod, name, label):
    inner = getattr(mod, name)
    def wrapped(*a, **k):
        mark(label)
        return inner(*a, **k)
    setattr(mod, name, wrapped)
fork = LX.LinuxKernel.fork
def traced_fork(self):
    mark("cgroups created, exec fifo, the init's channel")
    return fork(self)
LX.LinuxKernel.fork = traced_fork
after(L, "attach_seccomp_program", "config.json read and checked, seccomp program")
after(L, "_serve_init", "fork + the init builds the container")
after(L, "create", "state.json written")
after(L, "_start", "start: the init execs the command")
after(L, "wait_forwarding_signals", "the command runs, exits, is reaped")
after(L, "_delete", "delete: cgroups, state dir")
code = oci_cli.main()
with open(os.environ["DKY_BENCH_MARKS"], "w") as f:
    f.write(repr(marks))
os._exit(code)
"""


def make_bundles(base: Path, launcher: Path) -> dict[str, Path]:
    from dockyard.runtime.seccomp import default_profile
    from dockyard.runtime.spec import DEFAULT_CAPABILITIES

    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "true"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp"):
        (rootfs / d).mkdir()
    bundles = {}
    for name in ("plain", "seccomp"):
        bundle = base / f"bundle-{name}"
        bundle.mkdir()
        subprocess.run([str(launcher), "spec", "--bundle", str(bundle)], check=True)
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["args"] = ["true"]
        config["process"]["terminal"] = False
        config["root"] = {"path": str(rootfs), "readonly": True}
        if name == "seccomp":
            config["linux"]["seccomp"] = default_profile(list(DEFAULT_CAPABILITIES))
        (bundle / "config.json").write_text(json.dumps(config))
        bundles[name] = bundle
    return bundles


def write_launcher(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable} -IS\n{body}")  # as scripts/install.sh
    path.chmod(0o755)


def install(path: Path, src: str) -> None:
    """dockyard-runtime from `src` as scripts/install.sh installs it: compiled, its run
    path's image built and loaded (where that checkout has run_image)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", src], capture_output=True)
    body = f"import sys\nsys.path.insert(0, {src!r})\n"
    run_image = os.path.join(src, "dockyard", "runtime", "run_image.py")
    if os.path.exists(run_image):
        build = f"import sys; sys.path.insert(0, {src!r}); from dockyard.runtime.run_image import build; build()"
        subprocess.run([sys.executable, "-IS", "-c", build], check=True)
        body += preload_lines(src)
    write_launcher(path, body + "from dockyard.runtime.oci_cli import entry\nentry()\n")


def preload_lines(src: str) -> str:
    """The launcher's lines that load the run path, from that checkout's
    run_image.preload() where it has one (else its load(), or nothing)."""
    run_image = os.path.join(src, "dockyard", "runtime", "run_image.py")
    if not os.path.exists(run_image):
        return ""
    with open(run_image) as f:
        if "\ndef preload(" not in f.read():  # older: its command line only builds
            return "from dockyard.runtime.run_image import load\nload()\n"
    lines = subprocess.run(
        [sys.executable, "-IS", run_image, "--preload", src], capture_output=True, text=True
    )
    if lines.returncode == 0 and "load" in lines.stdout:
        return lines.stdout
    return "from dockyard.runtime.run_image import load\nload()\n"


def spawn(argv: list[str], err: Path, env: dict | None = None) -> tuple[float, float, int]:
    """(wall s, CPU s of it and what it reaped, exit status) of one whole process."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(err), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env or os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def med(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def p90(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.9))] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="rounds")
    ap.add_argument("--also", action="append", default=[], metavar="DIR", help="another checkout")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="dky-ocibench-", dir="/tmp"))
    roots = Path(tempfile.mkdtemp(prefix="dky-ocibench-", dir="/run"))
    launcher = base / "dockyard-runtime"
    runtimes: dict[str, str] = {"dockyard-runtime": str(launcher)}
    try:
        # As scripts/install.sh does: with PYTHONDONTWRITEBYTECODE set, every run
        # would otherwise compile what it imports.
        install(launcher, SRC)
        for i, other in enumerate(args.also):
            name = f"dockyard-runtime@{other.rstrip('/')}"
            runtimes[name] = str(base / f"dockyard-runtime-also{i}")
            install(Path(runtimes[name]), os.path.join(os.path.abspath(other), "src"))
        bundles = make_bundles(base, launcher)
        for name in ("runc", "crun"):
            path = shutil.which(name)
            if path:
                runtimes[name] = path
        wall: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        broken: dict[tuple[str, str], str] = {}
        jobs = [(rt, b) for b in bundles for rt in runtimes]
        err = base / "stderr"
        for rnd in range(args.n + 1):
            # Shuffled, not rotated: in a rotated cycle every job always follows the
            # same one, and a run right after another Python runtime's (libpython's
            # pages and the CPU's caches warm) took ~1 ms less CPU than one after
            # crun's: --also's checkout, always second, looked that much faster.
            order = list(jobs)
            random.Random(rnd).shuffle(order)
            for rt, b in order:
                if (rt, b) in broken:
                    continue
                argv = [runtimes[rt], "--root", str(roots / rt), "run"]
                argv += ["--bundle", str(bundles[b]), f"{b}{rnd}"]
                w, c, code = spawn(argv, err)
                if code != 0:
                    lines = err.read_text().strip().splitlines() or [f"exit {code}"]
                    broken[(rt, b)] = lines[-1][:160]
                elif rnd > 0:  # round 0 warms caches (and compiles our seccomp program)
                    wall.setdefault((rt, b), []).append(w)
                    cpu.setdefault((rt, b), []).append(c)
        print(
            f"{args.n} interleaved rounds, whole processes, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (ratios are the result)"
        )
        col = max(18, *(len(rt) + 2 for rt in runtimes))
        print(f"{'bundle':<9}{'runtime':<{col}}{'wall ms':>9}{'p90':>8}{'CPU ms':>9}")
        for b in bundles:
            for rt in runtimes:
                if (rt, b) in broken:
                    hint = " (crun: see the hugetlb note in this file)" if rt == "crun" else ""
                    print(f"{b:<9}{rt:<{col}}  not measured: {broken[(rt, b)]}{hint}")
                    continue
                w, c = wall[(rt, b)], cpu[(rt, b)]
                print(f"{b:<9}{rt:<{col}}{med(w):>9.1f}{p90(w):>8.1f}{med(c):>9.1f}")
            for name in (rt for rt in runtimes if rt.startswith("dockyard-runtime")):
                ours = (name, b)
                for rt in ("runc", "crun"):
                    if rt not in runtimes or (rt, b) in broken or ours in broken:
                        continue
                    print(
                        f"{b:<9}{name} / {rt}: wall {med(wall[ours]) / med(wall[(rt, b)]):.2f}"
                        f", CPU {med(cpu[ours]) / med(cpu[(rt, b)]):.2f}"
                    )
        if ("dockyard-runtime", "plain") in cpu:
            breakdown(
                base, bundles["plain"], roots, args.n, med(cpu[("dockyard-runtime", "plain")])
            )
        return 0
    finally:
        # A failed round may leave a container: delete it with its own runtime.
        for rt, path in runtimes.items():
            root = roots / rt
            for cid in os.listdir(root) if root.exists() else []:
                if not cid.startswith(":"):
                    subprocess.run(
                        [path, "--root", str(root), "delete", "-f", cid], capture_output=True
                    )
        shutil.rmtree(roots, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def breakdown(base: Path, bundle: Path, roots: Path, n: int, whole_cpu: float) -> None:
    """Where dockyard-runtime's milliseconds go on the plain bundle (medians of n runs).

    Wall: from the same runs of a traced copy of the launcher, on one clock
    (CLOCK_MONOTONIC, shared by every process): spawn -> its first line ->
    imports done -> each step of `run` -> reaped. CPU: the interpreter alone, the
    interpreter with the run path's imports, and a whole run, as separate processes."""
    err = base / "stderr"
    traced = base / "dockyard-runtime-traced"
    preload = preload_lines(SRC)
    write_launcher(traced, TRACED.format(src=SRC).replace("__PRELOAD__\n", preload))
    marks_file = base / "marks"
    phases: dict[str, list[float]] = {}
    bare_cpu, imports_cpu = [], []
    # The run path's imports as the launcher makes them.
    probe = base / "imports-probe.py"
    # Both end in _exit, as entry() does: a normal exit would add the teardown of
    # everything imported to "the imports".
    probe.write_text(
        f"import sys\nsys.path.insert(0, {SRC!r})\n{preload}{IMPORTS}import os\nos._exit(0)\n"
    )
    for rnd in range(n):
        bare_cpu.append(spawn([sys.executable, "-IS", "-c", BARE], err)[1])
        imports_cpu.append(spawn([sys.executable, "-IS", str(probe)], err)[1])
        argv = [str(traced), "--root", str(roots / "traced"), "run", "--bundle", str(bundle)]
        spawned = time.perf_counter_ns()
        _, _, status = spawn(
            [*argv, f"t{rnd}"], err, dict(os.environ, DKY_BENCH_MARKS=str(marks_file))
        )
        reaped = time.perf_counter_ns()
        if status != 0:
            print(f"traced run failed: {err.read_text().strip()[-300:]}")
            return
        marks = [("spawn", spawned)]
        marks += eval(marks_file.read_text())  # noqa: S307 - our own repr() of a list
        marks.append(("the interpreter's exit, reaped by the caller", reaped))
        for (_, prev), (name, at) in zip(marks, marks[1:], strict=False):
            phases.setdefault(name, []).append((at - prev) / 1e9)
    labels = {
        "start": "the interpreter starting, the launcher's first line",
        "imported": "importing the run path's modules",
    }
    total = sum(med(v) for v in phases.values())
    print(f"where dockyard-runtime's wall ms go (plain bundle, traced runs, medians of {n}):")
    for name, values in phases.items():
        print(f"  {med(values):6.1f} ms  {labels.get(name, name)}")
    print(f"  {total:6.1f} ms  in all (sum of medians)")
    interp, imports = med(bare_cpu), med(imports_cpu)
    print(
        f"and its CPU ms: the interpreter {interp:.1f} (`python -IS -c '{BARE}'`), the imports "
        f"{imports - interp:.1f}, the container's create/start/wait/delete and the exit "
        f"{whole_cpu - imports:.1f} (whole run {whole_cpu:.1f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
