#!/usr/bin/env python3
"""Does a browser on the dashboard slow `dockyard run`? Times `run --rm busybox true`
with no page open and with the dashboard open in headless chromium (its /events
stream live, the container list following every create/start/die/destroy).

    sudo python3 bench/dashboard_bench.py [-n 30] [--block 10]

Starts a daemon of its own (temp data root, `--ui 127.0.0.1:PORT`), imports busybox,
then alternates blocks of runs without and with the page, so background load hits
both alike; the browser process runs throughout (only the page comes and goes).
Prints median and p90 of each, their ratio, and how many requests the page sent
while the runs went on (the page should cost the daemon its event stream alone).
Needs root, Debian's chromium and playwright (scripts/install.sh --deps).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _daemon import REPO, PrivateDaemon

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EventReader:
    """A plain client of the dashboard's /api/events, read in a thread: the daemon's
    share of a connected page without the browser's own CPU."""

    def __init__(self, url: str, port: int) -> None:
        import threading

        token = url.rsplit("=", 1)[1]
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Cookie: dockyard-ui-{port}={token}\r\n\r\n".encode()
        )
        self.events = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                self.events += data.count(b"\n")
        except OSError:
            pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p90(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=30, help="timed runs per mode")
    ap.add_argument("--block", type=int, default=10, help="runs per block before switching")
    ap.add_argument(
        "--settle", type=float, default=1.0, help="seconds between a switch and a block"
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (the daemon creates namespaces, mounts, cgroups)", file=sys.stderr)
        return 1
    if not Path(CHROMIUM).exists():
        print("no /usr/bin/chromium: bash scripts/install.sh --deps", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    base = Path(tempfile.mkdtemp(prefix="dky-bench-ui-", dir="/tmp"))
    port = free_port()
    daemon = PrivateDaemon(
        base,
        args=("--default-address-pool", "base=10.200.0.0/14,size=24", "--ui", f"127.0.0.1:{port}"),
        busybox=True,
    )
    env = daemon.env
    # The CLI as scripts/install.sh launches it: `python -S`, our sources first.
    cli = [sys.executable, "-S", "-c",
           f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); "
           "from dockyard.cli.main import main; raise SystemExit(main())"]  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            found = re.search(r"open (http://\S+?token=[0-9a-f]+)", daemon.log_tail(1 << 20))
            url = found.group(1) if found else None
            time.sleep(0.1)
        if url is None:
            print("the dashboard did not start:\n" + daemon.log_tail())
            return 1

        def run_once() -> float:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [*cli, "run", "--rm", "busybox", "true"],
                env=env, stdin=subprocess.DEVNULL, capture_output=True,
            )  # fmt: skip
            elapsed = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"run failed: {proc.stderr.decode(errors='replace')}")
            return elapsed

        times: dict[str, list[float]] = {"no page": [], "events only": [], "page open": []}
        daemon_cpu = dict.fromkeys(times, 0.0)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page()
            counting = [False]
            seen: list[str] = []
            page.on("request", lambda r: seen.append(r.url) if counting[0] else None)
            run_once()  # warm-up
            done = 0
            order = list(times)
            while done < args.n:
                k = min(args.block, args.n - done)
                for mode in order:
                    reader = None
                    if mode == "events only":
                        reader = EventReader(url, port)
                    if mode == "page open":
                        page.goto(url)
                        page.wait_for_selector("#conn.live", timeout=30_000)
                    # Loading the page (or leaving it) is not what is measured: the
                    # steady state with it open is.
                    time.sleep(args.settle)
                    cpu0 = cpu_seconds(daemon.proc.pid)
                    counting[0] = mode == "page open"
                    for _ in range(k):
                        times[mode].append(run_once())
                    daemon_cpu[mode] += cpu_seconds(daemon.proc.pid) - cpu0
                    counting[0] = False
                    if reader is not None:
                        reader.close()
                    if mode == "page open":
                        # the page followed: every run came and went without a reload
                        page.wait_for_function(
                            "() => !document.querySelector('#containers tbody tr')", timeout=10_000
                        )
                        page.goto("about:blank")  # closes its event stream
                order.reverse()  # the other mode first next time
                done += k
            browser.close()
        off = statistics.median(times["no page"])
        print(f"dockyard run --rm busybox true, {args.n} runs per mode, blocks of {args.block}")
        for mode, xs in times.items():
            print(f"  {mode:12s} median {statistics.median(xs) * 1000:7.1f} ms   "
                  f"p90 {p90(xs) * 1000:7.1f} ms   median x{statistics.median(xs) / off:.3f}   "
                  f"daemon CPU {daemon_cpu[mode] / len(xs) * 1000:5.1f} ms/run")  # fmt: skip
        print("  (events only: a client reading the dashboard's /api/events, no browser)")
        print(f"  requests the page sent during {len(times['page open'])} runs: {len(seen)}")
        return 0
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
