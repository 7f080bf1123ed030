#!/usr/bin/env python3
"""Time Dockerfile builds side by side: Dockyard, dockerd's classic builder, `buildah bud`.

    python3 bench/build_bench.py [-n 5] [--files 400] [--kb 8] [--engines dockyard,dockerd,buildah]

Builds a small app FROM debian:bookworm (COPY a generated source tree, a few
RUN steps; nothing reaches the network) three ways per engine: cold
(--no-cache), fully cached (nothing changed: every step `Using cache`), and
after a one-file change (the COPY and the steps after it rerun). Rounds are
interleaved (engine by engine within each round), so a loaded machine slows
every engine alike; the table shows medians and the ratios of the same run.

The engines:
- dockyard: a private daemon of this tree (socket and data root under /tmp),
  debian:bookworm loaded into it from `dockyard save` of the installed daemon
  (/run/dockyard.sock, read only); the CLI of this tree as the client.
- dockerd: the private reference dockerd that bench/reference_dockerd.py
  started (unix:///run/docker-bench.sock; this script starts no dockerd),
  `DOCKER_BUILDKIT=0 docker build`; images are tagged `build-bench-*` and
  removed after.
- dky/docker: the same Dockyard daemon driven by the docker CLI (DOCKER_BUILDKIT=0),
  the client of dockerd's row: the daemons side by side without our CLI's start-up.
- dky/api and dockerd/api: POST /build of the same context tar, made before the
  clock starts, over each daemon's socket: the daemons with no client at all.
- docker/null: the docker CLI against a server of this script that only drains the
  context and answers a canned build: the CLI's own time, the floor of dky/docker.
- buildah: `buildah bud --layers` with its own --root/--runroot under /tmp,
  debian:bookworm pulled from the same saved archive (docker-archive:).

Then where a cold and a cached build's time goes, from Dockyard's daemon (its build
profile log, DOCKYARD_BUILD_PROFILE): context upload, COPY checksum, RUN
container create/start/run/remove, layer diff/commit.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from _daemon import REPO, PrivateDaemon

DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
DOCKERD_HOST = os.environ.get("BENCH_DOCKERD_HOST", "unix:///run/docker-bench.sock")
BASE = "debian:bookworm"

DOCKERFILE = """\
FROM debian:bookworm
ENV APP_HOME=/srv/app
RUN mkdir -p $APP_HOME && echo prepared > $APP_HOME/.prepared && useradd -r -d $APP_HOME app
RUN printf '#!/bin/sh\\nexec cat /srv/count\\n' > /usr/local/bin/app && chmod 755 /usr/local/bin/app
COPY src/ /srv/app/src/
RUN ls -R /srv/app | wc -l > /srv/count && sha256sum /srv/app/src/f0000.txt > /srv/sum
RUN find /srv/app/src -type f | sort | head -50 | xargs cat | sha256sum > /srv/app/digest
WORKDIR /srv/app
USER app
CMD ["app"]
"""
STEPS = 9  # after FROM
STEPS_FROM_COPY = 6  # COPY and what follows it


def cli_argv() -> list[str]:
    # As the installed launcher runs it (python -S, this tree's sources first).
    code = f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); "
    code += "from dockyard.cli.main import main; raise SystemExit(main())"
    return [sys.executable, "-S", "-c", code]


def run(argv: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])}... failed:\n{proc.stderr}{proc.stdout}")
    return proc


class Engine:
    name = ""

    def build(self, ctx: Path, no_cache: bool) -> tuple[float, str]:
        start = time.perf_counter()
        proc = run(self.argv(ctx, no_cache), self.env)
        return time.perf_counter() - start, proc.stdout + proc.stderr

    def argv(self, ctx: Path, no_cache: bool) -> list[str]:
        raise NotImplementedError

    env: dict[str, str] | None = None

    def cached_steps(self, output: str) -> int:
        return output.count("Using cache")

    def close(self) -> None:
        pass


class Dockyard(Engine):
    name = "dockyard"

    def __init__(self, base: Path, archive: Path) -> None:
        self.profile = base / "profile.jsonl"
        self.daemon = PrivateDaemon(
            base,
            args=("--default-address-pool", "base=10.200.0.0/14,size=24"),
            env={"DOCKYARD_BUILD_PROFILE": str(self.profile)},
        )
        self.sock = self.daemon.sock
        self.env = self.daemon.env
        run([*cli_argv(), "load", "-i", str(archive)], self.env)

    def argv(self, ctx: Path, no_cache: bool) -> list[str]:
        return [*cli_argv(), "build", *(["--no-cache"] if no_cache else []),
                "-t", "build-bench-app", str(ctx)]  # fmt: skip

    def close(self) -> None:
        self.daemon.stop()


class DockyardDockerCLI(Engine):
    """The same Dockyard daemon driven by the docker CLI (the Go client dockerd's row
    uses): the daemons compared with the client's start-up taken out."""

    name = "dky/docker"

    def __init__(self, daemon: Dockyard) -> None:
        self.env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_HOST=f"unix://{daemon.sock}")

    def argv(self, ctx: Path, no_cache: bool) -> list[str]:
        return [DOCKER, "build", *(["--no-cache"] if no_cache else []),
                "-t", "build-bench-app", str(ctx)]  # fmt: skip


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class ApiClient(Engine):
    """POST /build of a context tar made beforehand (outside the timing): the
    daemons side by side with no client at all."""

    def __init__(self, name: str, socket_path: str) -> None:
        self.name = name
        self.socket_path = socket_path
        self.built: list[str] = []

    def build(self, ctx: Path, no_cache: bool) -> tuple[float, str]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(ctx), arcname=".", filter=_root_owned)
        body = buf.getvalue()
        query = "t=build-bench-app" + ("&nocache=1" if no_cache else "")
        start = time.perf_counter()
        conn = _Unix(self.socket_path)
        try:
            conn.request("POST", f"/build?{query}", body, {"Content-Type": "application/x-tar"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        elapsed = time.perf_counter() - start
        text = ""
        for line in data.decode().splitlines():
            msg = json.loads(line)
            if "errorDetail" in msg or resp.status != 200:
                raise SystemExit(f"{self.name} build failed: {data.decode()[-2000:]}")
            text += msg.get("stream", "")
            if (msg.get("aux") or {}).get("ID"):
                self.built.append(msg["aux"]["ID"])
        return elapsed, text

    def close(self) -> None:
        # What this bench made there, to remove after (and nothing of anyone else's).
        for image in reversed(self.built):
            subprocess.run(
                [DOCKER, "-H", f"unix://{self.socket_path}", "rmi", "-f", image],
                capture_output=True,
            )


class NullServer:
    """A unix-socket HTTP server that answers /_ping and drains a POST /build body,
    replying with a canned successful build: the docker CLI's own time for a build
    (walking and sending the context), the floor under any daemon it drives."""

    def __init__(self, base: Path) -> None:
        self.path = str(base / "null.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, name="null-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _handle(conn: socket.socket) -> None:
        steps = "".join(
            json.dumps({"stream": f"Step {i}/{STEPS + 1} : X\n ---> Using cache\n"}) + "\r\n"
            for i in range(1, STEPS + 2)
        )
        done = json.dumps({"stream": "Successfully built 0123456789ab\n"}) + "\r\n"
        body = (steps + done).encode()
        with conn, conn.makefile("rb") as f:
            while line := f.readline():
                while f.readline() not in (b"\r\n", b""):
                    pass
                if line.startswith(b"POST"):
                    while size := int(f.readline().split(b";")[0], 16):  # chunked body
                        f.read(size + 2)
                    f.readline()
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


class DockerCLIFloor(Engine):
    """The docker CLI against NullServer: cached builds only (nothing is built)."""

    name = "docker/null"

    def __init__(self, server: NullServer) -> None:
        self.server = server
        self.env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_HOST=f"unix://{server.path}")

    def argv(self, ctx: Path, no_cache: bool) -> list[str]:
        return [DOCKER, "build", "-t", "build-bench-app", str(ctx)]

    def close(self) -> None:
        self.server.close()


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class Dockerd(Engine):
    name = "dockerd"

    def __init__(self) -> None:
        self.env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_HOST=DOCKERD_HOST)
        self.built = []
        run([DOCKER, "image", "inspect", BASE], self.env)

    def argv(self, ctx: Path, no_cache: bool) -> list[str]:
        return [DOCKER, "build", *(["--no-cache"] if no_cache else []),
                "-t", "build-bench-app", str(ctx)]  # fmt: skip

    built: list[str]

    def build(self, ctx: Path, no_cache: bool) -> tuple[float, str]:
        elapsed, out = super().build(ctx, no_cache)
        # What this bench made there, to remove after (and nothing of anyone else's).
        self.built += re.findall(r"^Successfully built (\w+)", out, flags=re.M)
        return elapsed, out

    def close(self) -> None:
        for image in ["build-bench-app", *reversed(self.built)]:
            subprocess.run([DOCKER, "rmi", "-f", image], env=self.env, capture_output=True)


class Buildah(Engine):
    name = "buildah"

    def __init__(self, base: Path, archive: Path) -> None:
        self.store = [
            "--root", str(base / "buildah-root"), "--runroot", str(base / "buildah-run"),
            "--storage-driver", "overlay",
        ]  # fmt: skip
        self.env = dict(os.environ)
        run(["buildah", *self.store, "pull", "-q", f"docker-archive:{archive}"], self.env)
        images = run(["buildah", *self.store, "images", "--json"], self.env).stdout
        image_id = json.loads(images)[0]["id"]
        run(["buildah", *self.store, "tag", image_id, BASE], self.env)

    def argv(self, ctx: Path, no_cache: bool) -> list[str]:
        return ["buildah", *self.store, "bud", "--layers", *(["--no-cache"] if no_cache else []),
                "--isolation", "oci", "-t", "build-bench-app", str(ctx)]  # fmt: skip

    def close(self) -> None:
        subprocess.run(["buildah", *self.store, "rm", "--all"], capture_output=True)
        subprocess.run(["buildah", *self.store, "rmi", "--all", "-f"], capture_output=True)
        # The overlay store leaves its own mount behind.
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point.startswith(self.store[1]):
                subprocess.run(["umount", "-l", point], capture_output=True)


def make_context(root: Path, files: int, kb: int) -> Path:
    rng = random.Random(7)
    src = root / "src"
    src.mkdir(parents=True)
    for i in range(files):
        sub = src / f"d{i % 20:02d}" if i else src
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:04d}.txt").write_bytes(rng.randbytes(kb * 1024))
    (root / "Dockerfile").write_text(DOCKERFILE)
    return src / "d05" / "f0005.txt"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def profile_summary(path: Path, builds: int, cold: bool) -> list[tuple[str, float]]:
    """Median seconds per phase over the last `builds` cold (or cached) builds' profiles."""
    if not path.exists():
        return []
    per_build: list[dict[str, float]] = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        ran = any(k.startswith(("RUN", "context unpacked")) for k in rec["phases"])
        if rec.get("ok") and rec.get("nocache") == cold and (cold or not ran):
            per_build.append(rec["phases"])
    per_build = per_build[-builds:]
    keys = sorted(
        {k for b in per_build for k in b}, key=lambda k: -median([b.get(k, 0) for b in per_build])
    )
    return [(k, median([b.get(k, 0.0) for b in per_build])) for k in keys]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=5, help="rounds")
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--kb", type=int, default=8)
    p.add_argument("--engines", default="dockyard,dockerd,buildah")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (RUN steps are real containers)")
    wanted = args.engines.split(",")
    base = Path(tempfile.mkdtemp(prefix="dky-bench-build-", dir="/tmp"))
    engines: list[Engine] = []
    floors: list[DockerCLIFloor] = []  # timed beside the cached builds only
    try:
        archive = base / "debian.tar"
        run(["dockyard", "-H", "unix:///run/dockyard.sock", "save", "-o", str(archive), BASE])
        ctx = base / "ctx"
        target = make_context(ctx, args.files, args.kb)
        skipped = []
        for name in wanted:
            try:
                if name == "dockyard":
                    (base / "dky").mkdir()
                    engines.append(Dockyard(base / "dky", archive))
                    ours = engines[-1]
                    assert isinstance(ours, Dockyard)
                    if shutil.which(DOCKER) or os.path.exists(DOCKER):
                        engines.append(DockyardDockerCLI(ours))
                    engines.append(ApiClient("dky/api", str(ours.sock)))
                elif name == "dockerd":
                    engines.append(Dockerd())
                    engines.append(ApiClient("dockerd/api", DOCKERD_HOST.removeprefix("unix://")))
                    floor = DockerCLIFloor(NullServer(base))
                    floors.append(floor)
                elif name == "buildah" and shutil.which("buildah"):
                    engines.append(Buildah(base, archive))
                else:
                    skipped.append(name)
            except SystemExit as e:
                skipped.append(f"{name} ({str(e).splitlines()[0]})")
        mb = args.files * args.kb / 1024
        print(f"context: {args.files} files, {mb:.1f} MB; FROM {BASE}; {args.n} interleaved rounds")
        if skipped:
            print("not measured: " + ", ".join(skipped))
        times: dict[tuple[str, str], list[float]] = {}
        for i in range(args.n):
            # Engine by engine within a round (rows sharing a daemon must not build
            # between another's cold and cached builds), round after round.
            for e in engines:
                t, out = e.build(ctx, no_cache=True)
                times.setdefault((e.name, "cold"), []).append(t)
                # A --no-cache build leaves a second chain of images: buildah's next
                # build may pick the older one and copy again; one untimed build settles it.
                e.build(ctx, no_cache=False)
                t, out = e.build(ctx, no_cache=False)
                assert e.cached_steps(out) >= STEPS, f"{e.name} cached build:\n{out}"
                times.setdefault((e.name, "cached"), []).append(t)
                target.write_bytes(f"change {i} {e.name} {time.time()}".encode())
                t, out = e.build(ctx, no_cache=False)
                cached = e.cached_steps(out)
                assert cached == STEPS - STEPS_FROM_COPY, f"{e.name} after a change:\n{out}"
                times.setdefault((e.name, "changed"), []).append(t)
            for f in floors:
                t, _ = f.build(ctx, no_cache=False)
                times.setdefault((f.name, "cached"), []).append(t)
            print(f"round {i + 1}/{args.n} done", file=sys.stderr)
        names = [e.name for e in engines]
        # ours against theirs with the same client: our CLI and the docker CLI against
        # dockerd's docker CLI (and buildah), the bare API against the bare API
        pairs = [
            (a, b)
            for a in ("dockyard", "dky/docker", "dky/api")
            for b in ("dockerd", "buildah", "dockerd/api")
            if a in names and b in names and (a == "dky/api") == (b == "dockerd/api")
        ]
        print(f"\n{'build (median s)':<20}" + "".join(f"{n:>12}" for n in names), end="")
        print("".join(f"{a + ' / ' + b:>24}" for a, b in pairs))
        for kind in ("cold", "cached", "changed"):
            row = f"{kind:<20}" + "".join(f"{median(times[(n, kind)]):>12.3f}" for n in names)
            for a, b in pairs:
                row += f"{median(times[(a, kind)]) / median(times[(b, kind)]):>23.2f}x"
            print(row)
        for f in floors:
            floor = median(times[(f.name, "cached")])
            line = f"the docker CLI's own time for the cached build (against a server that only drains the context): {floor:.3f}s"
            if "dockerd" in names:
                line += f" = {floor / median(times[('dockerd', 'cached')]):.2f}x dockerd's cached build: no daemon driven by the docker CLI gets below that ratio"
            print(line)
        if "dockyard" in names:
            print(
                "(ratios: ours / theirs, same run, same client: dockyard = our CLI, dky/docker ="
                " our daemon driven by the docker CLI as dockerd is, */api = no client)"
            )
            dky = next(e for e in engines if isinstance(e, Dockyard))
            for kind, cold in (("cold", True), ("cached", False)):
                parts = profile_summary(dky.profile, args.n, cold)
                if not parts:
                    continue
                total = median(times[("dockyard", kind)])
                print(
                    f"where our daemon's {kind} build goes (its own profile, all three of its clients; our CLI's build took {total:.2f}s):"
                )
                for k, v in parts:
                    print(f"  {k:<48}{v:>7.3f}s")
    finally:
        for e in [*engines, *floors]:
            e.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
