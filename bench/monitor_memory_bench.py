#!/usr/bin/env python3
"""Memory that Dockyard's own processes cost per running container (PSS).

    python3 bench/monitor_memory_bench.py [-n 50] [--keep-going]

Starts its own daemon (private socket and data root under /tmp), measures the
PSS (/proc/PID/smaps_rollup) of every Dockyard process -- the daemon, the
forkserver, its spare, every container's monitor -- with no container running,
then starts N idle containers (`run -d --network none busybox sleep`) and
measures again. The cost per container is the difference divided by N: the
monitors themselves plus what the daemon and forkserver grew by. The
containers' own processes (busybox sleep) are not counted. Prints the
breakdown (PSS, private dirty, RSS) per kind of process, and the same figure
for containerd's runc shims where containerd is installed (a private
containerd on its own socket and root, N `ctr run -d` containers of the same
busybox image; --no-containerd skips it), and side by side with dockerd's
where one already answers on --dockerd-host (default: the private bench dockerd
that `bench/reference_dockerd.py start` runs on unix:///run/docker-bench.sock):
N `docker run -d --network none busybox sleep` containers, uniquely named and
removed after, each one's containerd-shim-runc-v2 measured the same way, plus
what dockerd and its containerd grew by. No dockerd is started here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _daemon import REPO, PrivateDaemon

sys.path.insert(0, str(REPO / "src"))


@dataclass
class Mem:
    pss: int = 0  # kB
    private: int = 0  # kB, Private_Clean + Private_Dirty
    rss: int = 0  # kB

    def __add__(self, other: Mem) -> Mem:
        return Mem(self.pss + other.pss, self.private + other.private, self.rss + other.rss)


def smaps_rollup(pid: int) -> Mem:
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return Mem()
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    return Mem(
        fields.get("Pss", 0),
        fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
        fields.get("Rss", 0),
    )


def children_of() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int) -> list[int]:
    kids = children_of()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
    except OSError:
        return ""


def is_ours(pid: int, exe: str) -> bool:
    """A Dockyard process (same interpreter), not a container's."""
    try:
        return os.readlink(f"/proc/{pid}/exe") == exe
    except OSError:
        return False


def dockyard_processes(daemon_pid: int) -> dict[str, list[int]]:
    """{"daemon": [pid], "forkserver": [...], "monitor": [...]} (the spare counts as one)."""
    exe = os.readlink(f"/proc/{daemon_pid}/exe")
    kinds: dict[str, list[int]] = {"daemon": [daemon_pid], "forkserver": [], "monitor": []}
    # "monitor": the monitor host and the forkserver's spare (or, before the monitor
    # host, one monitor process per container).
    kids = children_of()
    for pid in tree(daemon_pid)[1:]:
        if not is_ours(pid, exe):
            continue
        if (
            "dockyard.runtime.forkserver" in comm(pid)
            and kids.get(pid)
            and daemon_pid
            in (int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]),)
        ):
            kinds["forkserver"].append(pid)
        else:
            kinds["monitor"].append(pid)
    return kinds


def measure(daemon_pid: int) -> dict[str, Mem]:
    out: dict[str, Mem] = {}
    for kind, pids in dockyard_processes(daemon_pid).items():
        total = Mem()
        for pid in pids:
            total = total + smaps_rollup(pid)
        out[kind] = total
        out[kind + "#"] = Mem(len(pids))
    return out


class Daemon(PrivateDaemon):
    def cli(self, *args: str) -> str:
        return self.run(*args).stdout


def pss_of(pids: list[int]) -> int:
    return sum(smaps_rollup(p).pss for p in pids)


def pids_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name[:15]:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def containerd_per_container(n: int, archive: Path, base: Path) -> tuple[float, float, int]:
    """containerd's runc shims: (kB PSS per shim, kB containerd grew by per container,
    shims) with n `ctr run -d` containers of a private containerd."""
    containerd, ctr = shutil.which("containerd"), shutil.which("ctr")
    assert containerd and ctr
    sock = base / "c.sock"
    (base / "config.toml").write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
        f'[debug]\n  address = "{base}/debug.sock"\n'
    )
    log = (base / "containerd.log").open("wb")
    proc = subprocess.Popen(
        [containerd, "--config", str(base / "config.toml")],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip

    def run_ctr(*args: str, check: bool = True) -> str:
        out = subprocess.run(
            [ctr, "--address", str(sock), "--namespace", "dkybench", *args],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and out.returncode != 0:
            raise SystemExit(f"ctr {' '.join(args)}: {out.stderr}")
        return out.stdout

    shims_before = set(pids_named("containerd-shim-runc-v2"))
    ids = [f"mem{i}" for i in range(n)]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(
            [ctr, "--address", str(sock), "version"], capture_output=True
        ).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("containerd did not start")
            time.sleep(0.2)
        run_ctr("image", "import", str(archive))
        image = "docker.io/library/busybox:latest"
        run_ctr("run", "--rm", image, "warm", "true")
        time.sleep(1.0)
        before = smaps_rollup(proc.pid).pss
        for cid in ids:
            run_ctr("run", "-d", image, cid, "sleep", "100000")
        time.sleep(2.0)
        # Ours only: another engine's shims (a bench dockerd's, "-namespace moby") may
        # start meanwhile.
        shims = [
            p
            for p in pids_named("containerd-shim-runc-v2")
            if p not in shims_before and "-namespace dkybench" in comm(p)
        ]
        grew = (smaps_rollup(proc.pid).pss - before) / n
        return pss_of(shims) / max(1, len(shims)), grew, len(shims)
    finally:
        for cid in ids:
            run_ctr("task", "kill", "-s", "KILL", cid, check=False)
        time.sleep(1.0)
        for cid in ids:
            run_ctr("task", "delete", "-f", cid, check=False)
            run_ctr("container", "rm", cid, check=False)
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        # runc's state root for the namespace, and ctr's directories if we made them
        # (only when empty: anything in them is someone else's).
        for d in ("runc/dkybench", "runc", "fifo", "s", ""):
            with contextlib.suppress(OSError):
                Path("/run/containerd", d).rmdir()
        # runc on a hybrid host puts each container in the cgroup2 tree too.
        with contextlib.suppress(OSError):
            (Path("/sys/fs/cgroup/unified") / "dkybench").rmdir()
        for controller in ("memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio"):
            with contextlib.suppress(OSError):
                (Path("/sys/fs/cgroup") / controller / "dkybench").rmdir()


DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"


def dockerd_per_container(n: int, host: str) -> dict[str, float] | None:
    """dockerd's cost per running container, with n idle busybox containers on the
    dockerd answering at `host`: kB PSS per containerd-shim-runc-v2, and what
    dockerd and its containerd grew by per container. None without such a dockerd."""
    if shutil.which(DOCKER) is None:
        return None

    def docker(*args: str, check: bool = True) -> str:
        out = subprocess.run(
            [DOCKER, "-H", host, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if check and out.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    if subprocess.run([DOCKER, "-H", host, "version"], capture_output=True).returncode != 0:
        print(f"dockerd: none answers on {host}: not compared")
        return None
    info = docker("info", "--format", "{{.ID}}")
    daemon_pid = _pid_serving(host)
    prefix = f"runtime-mem-{os.getpid()}"
    names = [f"{prefix}-{i}" for i in range(n)]
    try:
        # One container first (and gone): what dockerd caches on a first run is not
        # a per-container cost.
        docker("run", "--rm", "--network", "none", "--name", f"{prefix}-warm", "busybox", "true")
        time.sleep(1.0)
        daemons = _dockerd_and_containerd(daemon_pid)
        before = {name: smaps_rollup(pid).pss for name, pid in daemons.items()}
        ids = [
            docker(
                "run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "100000"
            ).strip()
            for name in names
        ]
        time.sleep(2.0)  # idle: let every shim settle
        shims = [p for p in pids_named("containerd-shim-runc-v2") if _shim_of(p, ids)]
        grew = {name: (smaps_rollup(pid).pss - before[name]) / n for name, pid in daemons.items()}
        per_shim = pss_of(shims) / max(1, len(shims))
        return {"shim": per_shim, "shims": len(shims), **grew, "engine": bool(info)}
    finally:
        existing = docker("ps", "-aq", "--filter", f"name={prefix}-", check=False).split()
        if existing:
            docker("rm", "-f", *existing, check=False)


def _pid_serving(host: str) -> int:
    """The dockerd process listening on the unix socket of `host` (0 if not found)."""
    path = host.removeprefix("unix://")
    for pid in pids_named("dockerd"):
        if path in comm(pid) or (path == "/var/run/docker.sock" and "-H" not in comm(pid)):
            return pid
    return 0


def _dockerd_and_containerd(daemon_pid: int) -> dict[str, int]:
    found = {"dockerd": daemon_pid} if daemon_pid else {}
    for pid in tree(daemon_pid)[1:] if daemon_pid else []:
        if comm(pid).split(" ")[0].endswith("containerd"):
            found["containerd"] = pid
    return found


def _shim_of(pid: int, ids: list[str]) -> bool:
    """Is this shim one of our containers' (its -id, or the id in its cgroup/cmdline)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"-id" in cmdline:
        i = cmdline.index(b"-id")
        return i + 1 < len(cmdline) and cmdline[i + 1].decode() in ids
    return False


def dockyard_per_container(
    n: int, with_containerd: bool = False
) -> tuple[dict[str, Mem], dict[str, Mem]]:
    base = Path(tempfile.mkdtemp(prefix="dky-mem-", dir="/tmp"))
    daemon = Daemon(base, busybox=True)
    try:
        # One container started and removed first: what the first start imports or
        # caches in the daemon is not a per-container cost.
        daemon.cli("run", "--rm", "--network", "none", "busybox", "true")
        time.sleep(1.0)
        before = measure(daemon.proc.pid)
        for _ in range(n):
            daemon.cli("run", "-d", "--network", "none", "busybox", "sleep", "100000")
        time.sleep(2.0)  # idle: let every monitor settle
        after = measure(daemon.proc.pid)
        if with_containerd and shutil.which("containerd") and shutil.which("ctr"):
            archive = base / "busybox.tar"
            daemon.cli("save", "-o", str(archive), "busybox:latest")
            ctd = base / "ctd"
            ctd.mkdir()
            shim, grew, count = containerd_per_container(n, archive, ctd)
            print(
                f"containerd (runc shims), {count} containers: {shim:.0f} kB PSS per shim, "
                f"containerd grew {grew:.0f} kB per container"
            )
        return before, after
    finally:
        ids = daemon.cli("ps", "-aq").split()
        if ids:
            daemon.cli("rm", "-f", *ids)
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def report(before: dict[str, Mem], after: dict[str, Mem], n: int) -> float:
    print(
        f"{'process':<12}{'count':>7}{'PSS kB':>10}{'(before)':>10}{'private kB':>12}{'RSS kB':>10}"
    )
    for kind in ("daemon", "forkserver", "monitor"):
        a, b = after[kind], before[kind]
        print(
            f"{kind:<12}{after[kind + '#'].pss:>7}{a.pss:>10}{b.pss:>10}{a.private:>12}{a.rss:>10}"
        )
    total_after = sum(after[k].pss for k in ("daemon", "forkserver", "monitor"))
    total_before = sum(before[k].pss for k in ("daemon", "forkserver", "monitor"))
    per = (total_after - total_before) / n
    monitors = after["monitor#"].pss - before["monitor#"].pss
    if monitors:
        print(
            f"one monitor: {(after['monitor'].pss - before['monitor'].pss) / monitors:.0f} kB PSS"
        )
    print(
        f"daemon grew {(after['daemon'].pss - before['daemon'].pss) / n:.0f} kB per container, "
        f"forkserver {(after['forkserver'].pss - before['forkserver'].pss) / n:.0f} kB"
    )
    print(f"Dockyard's processes per running container: {per:.0f} kB PSS ({n} containers)")
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument(
        "--no-containerd", action="store_true", help="skip containerd's shims (where installed)"
    )
    parser.add_argument(
        "--dockerd-host",
        default="unix:///run/docker-bench.sock",
        help="a running dockerd to compare with (none is started); '' skips it",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (containers)")
    before, after = dockyard_per_container(args.n, not args.no_containerd)
    ours = report(before, after, args.n)
    theirs = dockerd_per_container(args.n, args.dockerd_host) if args.dockerd_host else None
    if theirs is not None:
        engine = theirs.get("dockerd", 0.0) + theirs.get("containerd", 0.0)
        print(
            f"dockerd ({args.dockerd_host}), {args.n} containers: {theirs['shim']:.0f} kB PSS per "
            f"containerd-shim-runc-v2 ({theirs['shims']:.0f} shims), dockerd grew "
            f"{theirs.get('dockerd', 0.0):.0f} kB and its containerd "
            f"{theirs.get('containerd', 0.0):.0f} kB per container"
        )
        print(f"{'per running container (kB PSS)':<34}{'Dockyard':>10}{'dockerd':>10}")
        print(
            f"{'  shim / monitor + daemons grew':<34}{ours:>10.0f}{theirs['shim'] + engine:>10.0f}"
        )
        print(f"{'  the shim alone':<34}{'':>10}{theirs['shim']:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
