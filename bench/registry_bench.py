#!/usr/bin/env python3
"""Push, pull, save and commit side by side with dockerd and skopeo.

    python3 bench/registry_bench.py [--size-mb 120] [--layers 4] [-n 3]

Starts its own Dockyard daemon (private socket and data root under /tmp) and
its own registry (Debian's docker-registry on a free port of 127.0.0.1, its
storage in a temporary directory, stopped and removed at the end). dockerd is
the one already running on unix:///run/docker-bench.sock (see
bench/reference_dockerd.py; this script never starts one, and skips its rows
if none answers); what is created there is named registry-bench-* and removed.

The image: LAYERS layers of SIZE_MB in all, made of the host's own files
(/usr/lib, /usr/share: programs, libraries, text, as real images hold),
loaded into both engines from the same docker-archive. Each round, in an
order that alternates between rounds:

    push     the image to a new repository, the registry's storage emptied
             first (every layer compressed and uploaded; no mount possible)
    push2    the same image, just pushed, to a second registry (another port,
             storage emptied): neither engine keeps the gzip it made, both
             compress again (and send the same digests as to the first)
    pull (clean)
             before any round, nothing deleted yet: round r's image is a
             variant of the image (one small file more in every layer, so no
             engine has any of its layers), put in a registry of its own by
             skopeo; no engine deletes anything until every clean pull is done
    pull (after deletions)
             the image dockerd pushed (the same blobs for both), right after
             `rmi` of it: on this machine's journal-less ext4 the files of
             the removed layers make creating the new ones ~10x slower for
             either engine (recently_deleted, bench/_fs_regimes.py)
    skopeo   `skopeo copy docker-archive: docker://` (push: compresses too)
             and `skopeo copy docker:// dir:` (pull: writes blobs, no unpack)
    save     `save -o` of the image
    commit   of a container that copied /usr of debian:bookworm (~150 MB new
             files in its upper layer), where both engines have that image;
             after the previous rounds' removals (bench/commit_bench.py
             times both regimes)

Times are medians of the rounds; MB/s is of the image's uncompressed size
(commit: of the committed layer). Ratios are the other engine's time / ours:
above 1 we are faster. The machine is shared: absolute times are inflated, the
ratios are taken in the same run, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))

from _fs_regimes import Sampler  # noqa: E402
from image_bench import Daemon, make_archive  # noqa: E402
from unpack_bench import with_marker  # noqa: E402

from registry_server import RegistryServer  # noqa: E402

DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
DOCKERD_HOST = os.environ.get("DOCKYARD_BENCH_DOCKERD", "unix:///run/docker-bench.sock")
SOURCES = ["/usr/lib", "/usr/share", "/usr/bin"]


def host_layers(total: int, count: int, base: Path) -> list[bytes]:
    """`count` layer tars of about total/count bytes of host files each."""
    per_layer = total // count
    layers: list[bytes] = []
    files = (
        Path(root) / name
        for src in SOURCES
        for root, dirs, names in os.walk(src)
        if not dirs.sort()  # walk in a stable order
        for name in sorted(names)
    )
    for i in range(count):
        out = base / f"layer{i}.tar"
        size = 0
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
            for path in files:
                if path.is_symlink() or not path.is_file():
                    continue
                if path.stat().st_size > per_layer // 4:
                    continue  # no single file makes a layer
                try:
                    tar.add(path, arcname=f"l{i}{path}")
                except OSError:
                    continue
                size += path.stat().st_size
                if size >= per_layer:
                    break
        layers.append(out.read_bytes())
        out.unlink()
    return layers


def gzip_seconds(layers: list[bytes]) -> tuple[float, float]:
    """CPU seconds and MB of gzip of the layers as a push makes it (ISA-L level 1)."""
    import io

    from dockyard.image.layer_gzip import LayerGzip

    size = 0
    start = time.process_time()
    for data in layers:
        gz = LayerGzip(io.BytesIO(data))
        while not gz.done:
            gz.step()
        size += gz.size
    return time.process_time() - start, size / 1e6


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [DOCKER, "-H", DOCKERD_HOST, *args], capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed: {proc.stderr}")
    return proc


def remove_dockerd_leftovers(tag: str) -> None:
    """Remove the images and containers a bench made in the shared dockerd (named
    with `tag`)."""
    names = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
    mine = [n for n in names.stdout.split() if tag in n]
    if mine:
        docker("rmi", "-f", *mine, check=False)
    cont = docker("ps", "-aq", "--filter", f"name={tag}", check=False).stdout.split()
    if cont:
        docker("rm", "-f", *cont, check=False)


def dockerd_answers() -> bool:
    try:
        return docker("version", "-f", "{{.Server.Version}}", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def timed(fn, *args: str) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=120)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--no-commit", action="store_true", help="skip the commit rows")
    p.add_argument("--perf", action="store_true", help="recently_deleted's share in pulls")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the daemon unpacks layers with their owners)")
    have_dockerd = dockerd_answers()
    skopeo = shutil.which("skopeo")

    base = Path(tempfile.mkdtemp(prefix="dky-regbench-", dir="/tmp"))
    tag = f"registry-bench-{os.getpid()}"
    local = f"{tag}:v1"
    layers = host_layers(args.size_mb * 1_000_000, args.layers, base)
    total_mb = sum(len(x) for x in layers) / 1e6
    gzip_cpu, gzip_mb = gzip_seconds(layers)
    archive = base / "image.tar"
    archive.write_bytes(make_archive(layers, local))
    registry = RegistryServer()
    second = RegistryServer()
    variants = RegistryServer()  # the clean pulls' images, one a round
    clean_repos = []
    if skopeo:
        for rnd in range(args.n):
            marked = base / "variant.tar"
            name = f"{tag}-clean{rnd}:v1"
            marked.write_bytes(make_archive([with_marker(x, name) for x in layers], name))
            subprocess.run(
                [skopeo, "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{marked}",
                 f"docker://{variants.host}/{name}"],
                check=True, capture_output=True,
            )  # fmt: skip
            marked.unlink()
            clean_repos.append(f"{variants.host}/{name}")
    del layers
    sampler = Sampler(base) if args.perf else None
    shares: dict[tuple[str, str], list[float]] = {}
    daemon = Daemon(base)
    times: dict[tuple[str, str], list[float]] = {}
    commit_mb = 0.0

    def record(step: str, engine: str, seconds: float) -> None:
        times.setdefault((step, engine), []).append(seconds)

    def ours(*a: str) -> None:
        daemon.cli(*a)

    def theirs(*a: str) -> None:
        docker(*a)

    engines = {"dockyard": ours}
    if have_dockerd:
        engines["dockerd"] = theirs
    try:
        for run in engines.values():
            run("load", "-i", str(archive))
        commit_ready = False
        if not args.no_commit and have_dockerd:
            # debian:bookworm for our private daemon, from the installed one (read-only).
            saved = base / "debian.tar"
            proc = subprocess.run(
                [sys.executable, "-m", "dockyard", "-H", "unix:///run/dockyard.sock",
                 "save", "-o", str(saved), "debian:bookworm"],
                env=dict(os.environ, PYTHONPATH=str(REPO / "src")), capture_output=True,
            )  # fmt: skip
            if proc.returncode == 0:
                daemon.cli("load", "-i", str(saved))
                commit_ready = True
            saved.unlink(missing_ok=True)
        for rnd, repo in enumerate(clean_repos):
            order = list(engines.items())
            if rnd % 2:
                order.reverse()
            for engine, run in order:
                if sampler:
                    sampler.start()
                record("pull (clean)", engine, timed(run, "pull", repo))
                if sampler:
                    shares.setdefault(("pull (clean)", engine), []).append(sampler.stop())
        for rnd in range(args.n):
            order = list(engines.items())
            if rnd % 2:
                order.reverse()
            # push: a cold registry, a new repository per engine
            shutil.rmtree(registry.storage, ignore_errors=True)
            repos = {}
            for engine, run in order:
                repo = f"{registry.host}/{tag}-{engine}-{rnd}:v1"
                repos[engine] = repo
                run("tag", local, repo)
                record("push", engine, timed(run, "push", repo))
            shutil.rmtree(second.storage, ignore_errors=True)
            for engine, run in order:
                repo = f"{second.host}/{tag}-{engine}-{rnd}:v1"
                run("tag", local, repo)
                record("push2", engine, timed(run, "push", repo))
                run("rmi", repo)
            if skopeo:
                start = time.perf_counter()
                subprocess.run(
                    [skopeo, "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{archive}",
                     f"docker://{registry.host}/{tag}-skopeo-{rnd}:v1"],
                    check=True, capture_output=True,
                )  # fmt: skip
                record("push", "skopeo", time.perf_counter() - start)
            # pull: everyone pulls the same blobs (dockerd's push, or ours without dockerd)
            source = repos.get("dockerd", repos["dockyard"])
            for engine, run in order:
                run("rmi", repos[engine], local)
            for engine, run in order:
                if sampler:
                    sampler.start()
                record("pull (after deletions)", engine, timed(run, "pull", source))
                if sampler:
                    step = ("pull (after deletions)", engine)
                    shares.setdefault(step, []).append(sampler.stop())
                run("tag", source, local)
                run("rmi", source)
            if skopeo:
                target = base / "skopeo-dir"
                start = time.perf_counter()
                subprocess.run(
                    [skopeo, "copy", "-q", "--src-tls-verify=false", f"docker://{source}",
                     f"dir:{target}"],
                    check=True, capture_output=True,
                )  # fmt: skip
                record("pull (after deletions)", "skopeo", time.perf_counter() - start)
                shutil.rmtree(target)
            # save
            for engine, run in order:
                out = base / f"saved-{engine}.tar"
                record("save", engine, timed(run, "save", "-o", str(out), local))
                out.unlink()
            # commit
            if commit_ready:
                for engine, run in order:
                    name = f"{tag}-c{rnd}-{engine}"
                    run("run", "--name", name, "--network", "none", "debian:bookworm",
                        "cp", "-a", "/usr", "/copy")  # fmt: skip
                    record("commit", engine, timed(run, "commit", name, f"{tag}-commit:{rnd}"))
                    if engine == "dockyard":
                        sizes = [
                            json.loads(
                                subprocess.run(
                                    [sys.executable, "-m", "dockyard", "image", "inspect",
                                     "-f", "{{json .Size}}", image],
                                    env=daemon.env, capture_output=True, text=True,
                                ).stdout
                            )
                            for image in (f"{tag}-commit:{rnd}", "debian:bookworm")
                        ]  # fmt: skip
                        commit_mb = (sizes[0] - sizes[1]) / 1e6
                    run("rm", name)
                    run("rmi", f"{tag}-commit:{rnd}")
        peak = daemon.peak_rss_mb()
    finally:
        if have_dockerd:
            remove_dockerd_leftovers(tag)
        daemon.stop()
        registry.stop()
        second.stop()
        variants.stop()
        shutil.rmtree(base, ignore_errors=True)

    print(
        f"image: {args.layers} layers of host files, {total_mb:.0f} MB uncompressed; "
        f"medians of {args.n} interleaved rounds; registry on 127.0.0.1"
    )
    header = f"{'step':<24}{'engine':<10}{'seconds':>9}{'MB/s':>8}"
    print(header + f"{'theirs/ours':>13}" + ("  recently_deleted" if sampler else ""))
    steps = ("push", "push2", "pull (clean)", "pull (after deletions)", "save", "commit")
    for step in steps:
        mb = commit_mb if step == "commit" else total_mb
        mine = times.get((step, "dockyard"))
        for engine in ("dockyard", "dockerd", "skopeo"):
            values = times.get((step, engine))
            if not values:
                continue
            median = statistics.median(values)
            line = f"{step:<24}{engine:<10}{median:>9.2f}{(mb / median if mb else 0):>8.0f}"
            if engine != "dockyard" and mine:
                line += f"{median / statistics.median(mine):>13.2f}"
            elif shares.get((step, engine)):
                line += " " * 13
            if shares.get((step, engine)):
                line += f"  {statistics.median(shares[(step, engine)]):5.1f}%"
            print(line)
    if not have_dockerd:
        print(f"dockerd: none answers on {DOCKERD_HOST} (this script never starts one)")
    if not skopeo:
        print("pull (clean): needs skopeo, to put each round's variant in the registry")
    print(
        f"ISA-L level 1 of the {args.layers} layers in one thread: {gzip_cpu:.2f} s CPU "
        f"({gzip_mb:.0f} MB of gzip): what keeping the gzip of pushed layers would save "
        "a push2 at most, for that much disk"
    )
    print(f"our daemon's peak memory (VmHWM): {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
