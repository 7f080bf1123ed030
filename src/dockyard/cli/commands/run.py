"""`dockyard run`: create, attach, start, wait — the docker CLI's flow and exit codes."""

from __future__ import annotations

import contextlib

from dockyard.cli.commands.containeropts import (
    CONTAINER_OPTIONS,
    build_create_body,
    create_container,
)
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="run",
    usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
    description="Create and run a new container from an image",
    options=sorted(
        [
            *CONTAINER_OPTIONS,
            Opt("detach", "d", help="Run container in background and print container ID"),
            Opt("detach-keys", kind="string", help="Override the key sequence for detaching a container"),
            Opt("sig-proxy", default=True, help="Proxy received signals to the process"),
        ],
        key=lambda o: o.long,
    ),
    aliases=["container run", "run"],
    min_args=1,
    interspersed=False,
)  # fmt: skip

PROG = "dockyard"


def start_error(message: str) -> CLIError:
    """docker's toStatusError: 127 command not found, 126 cannot invoke, else 125."""
    text = f"{PROG}: Error response from daemon: {message}"
    if (
        "executable file not found" in message
        or "no such file or directory" in message
        or "system cannot find the file specified" in message
    ):
        return CLIError(text, 127)
    if "permission denied" in message or "is a directory" in message:
        return CLIError(text, 126)
    return CLIError(text, 125)


def remove_quietly(client: Any, cid: str) -> None:
    """--rm after a failed start: dockerd removes such a container itself; make sure."""
    from dockyard.client.errors import APIError

    # a 404/409 means it is already gone (the daemon honoured AutoRemove) or going
    with contextlib.suppress(APIError):
        client.request("DELETE", f"/containers/{cid}", {"force": True}).read()


def _timing(marks: dict[str, tuple[int, int]]) -> dict[str, str]:
    """The start trace's CLI track: when this process began and made its requests
    (perf_counter_ns is CLOCK_MONOTONIC, the daemon's clock too)."""
    import os
    import time

    from dockyard.cli import STARTED_NS

    now = time.perf_counter_ns()
    parts = [f"pid={os.getpid()}", f"main={STARTED_NS}-{now}", f"start={now}"]
    parts += [f"{k}={a}-{b}" for k, (a, b) in marks.items()]
    return {"X-Dockyard-Client-Timing": ";".join(parts)}


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import time

    from dockyard.client.errors import APIError, DaemonUnreachable

    marks: dict[str, tuple[int, int]] = {}
    detach = bool(opts["detach"])
    body = build_create_body(opts, args, detach=detach)
    tty = bool(body["Tty"])
    stdin = bool(body["AttachStdin"])
    if not detach:
        from dockyard.cli.attach import check_tty

        problem = check_tty(tty, stdin)
        if problem:  # checked before anything is created, as docker does
            raise CLIError(f"{PROG}: {problem}", 1)
    try:
        t = time.perf_counter_ns()
        cid = create_container(ctx, opts, body, PROG)
        marks["create"] = (t, time.perf_counter_ns())
    except DaemonUnreachable as exc:
        raise CLIError(f"{PROG}: {exc.message}", 125) from None
    client = ctx.client

    if detach:
        try:
            client.request("POST", f"/containers/{cid}/start", headers=_timing(marks)).read()
        except APIError as exc:
            if opts["rm"]:
                remove_quietly(client, cid)
            raise start_error(exc.message) from None
        ctx.out(cid + "\n")
        return 0

    from dockyard.cli.attach import Waiter, attach, run_session

    conn = None
    if body["AttachStdin"] or body["AttachStdout"] or body["AttachStderr"]:
        try:
            t = time.perf_counter_ns()
            conn = attach(client, cid, stdin, body["AttachStdout"], body["AttachStderr"])
            marks["attach"] = (t, time.perf_counter_ns())
        except APIError as exc:
            raise CLIError(f"{PROG}: Error response from daemon: {exc.message}", 125) from None

    # With --rm the daemon removes the container; waiting for "removed" (as the
    # docker CLI does) means we return only once it is really gone.
    waiter = Waiter(client, cid, "removed" if opts["rm"] else "next-exit")
    waiter.start()
    # dockerd flushes the wait response headers once the waiter is registered;
    # don't hang forever on a daemon that buffers them.
    waiter.registered.wait(timeout=2.0)

    try:
        client.request("POST", f"/containers/{cid}/start", headers=_timing(marks)).read()
    except APIError as exc:
        if conn is not None:
            conn.close()
        if opts["rm"]:
            remove_quietly(client, cid)
        raise start_error(exc.message) from None

    if conn is not None:
        detached = run_session(
            client, cid, conn, tty, stdin, bool(opts["sig_proxy"]), opts["detach_keys"]
        )
        if detached:
            return 0
    try:
        status = waiter.result()
    except APIError as exc:
        raise CLIError(f"{PROG}: Error response from daemon: {exc.message}", 125) from None
    if waiter.error:
        raise CLIError(f"{PROG}: Error response from daemon: {waiter.error}", 125)
    return status
