"""`dockyard-runtime`: runc's command line over Dockyard's runtime.

containerd's runc shim (and anything else that drives runc) runs it as it
runs runc: global flags first (--root, --log, --log-format, --debug), then a
command. Exit codes as runc's: 0, 1 for any error (the message on stderr and
in --log), and for `run`/`exec` without --detach the process's own code.
"""

from __future__ import annotations

import os
import sys

from dockyard import __version__ as DOCKYARD_VERSION
from dockyard.errors import DockyardError
from dockyard.runtime import lightjson as json
from dockyard.runtime.oci_flags import Options, UsageError, parse_args, usage

# Everything else is imported by the command that needs it: `run` pays for the
# runtime, not for `ps`'s subprocess or `update`'s parsing (see oci_flags.py).

PROG = "dockyard-runtime"
__all__ = ["UsageError", "default_spec", "main", "parse_args", "parse_signal", "parse_size"]


class _Log:
    """runc's --log/--log-format: one record per line, what the shim reads back."""

    def __init__(self, path: str, fmt: str, debug: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        from dockyard.runtime.rfc3339 import now_rfc3339nano

        now = now_rfc3339nano()
        if self.fmt == "json":
            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f"time={json.dumps(now)} level={level} msg={json.dumps(msg)}"
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self.write("debug", msg)


def parse_signal(text: str) -> int:
    import signal

    name = text.upper()
    if name.isdigit():
        value = int(name)
        if 0 < value < signal.NSIG:
            return value
    else:
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise UsageError(f"unknown signal {text!r}")


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A byte count as runc's update takes it ("512m", "1g", "-1")."""
    t = text.strip().lower().removesuffix("b") if text.lower() not in ("-1",) else "-1"
    if t == "-1":
        return -1
    unit = t[-1:] if t[-1:] in _SIZE_UNITS and not t[-1:].isdigit() else ""
    number = t[: -len(unit)] if unit else t
    try:
        return int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        raise UsageError(f"invalid size {text!r}") from None


def _refuse_globals(opts: Options) -> None:
    if opts.systemd_cgroup:
        raise UsageError(
            "--systemd-cgroup is not supported: dockyard-runtime manages cgroups "
            "through cgroupfs only (leave SystemdCgroup off in containerd's runc options)"
        )
    if opts.criu is not None:
        raise UsageError("--criu is not supported: dockyard-runtime has no checkpoint/restore")
    if opts.rootless not in (None, "false", "auto"):
        raise UsageError("--rootless is not supported: dockyard-runtime runs as root only")


def _process_from_flags(opts: Options, root: str) -> dict:
    if opts.process:
        try:
            with open(opts.process, "rb") as f:
                process = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--process {opts.process}: {exc}") from None
        if not isinstance(process, dict):
            raise UsageError(f"--process {opts.process}: must hold a JSON object")
        return process
    args = list(opts.args)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        raise UsageError("exec: a command (or --process) is required")
    from dockyard.runtime import oci_state as S

    c = S.load(root, opts.id)
    process = dict(c.config.get("process") or {})
    process.update(args=args, terminal=opts.tty)
    if opts.cwd:
        process["cwd"] = opts.cwd
    if opts.env:
        process["env"] = list(process.get("env") or []) + list(opts.env)
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"--user {opts.user!r}: must be UID[:GID] in numbers")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if opts.no_new_privs:
        process["noNewPrivileges"] = True
    return process


def _update_resources(opts: Options) -> dict:
    if opts.resources:
        try:
            if opts.resources == "-":
                resources = json.load(sys.stdin)
            else:
                with open(opts.resources, "rb") as f:
                    resources = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--resources {opts.resources}: {exc}") from None
        if not isinstance(resources, dict):
            raise UsageError("--resources: must hold a JSON object (OCI LinuxResources)")
        return resources
    memory: dict = {}
    if opts.memory is not None:
        memory["limit"] = parse_size(opts.memory)
    if opts.memory_reservation is not None:
        memory["reservation"] = parse_size(opts.memory_reservation)
    if opts.memory_swap is not None:
        memory["swap"] = parse_size(opts.memory_swap)
    cpu = {
        k: v
        for k, v in (
            ("shares", opts.cpu_share),
            ("quota", opts.cpu_quota),
            ("period", opts.cpu_period),
        )
        if v is not None
    }
    resources: dict = {"memory": memory, "cpu": cpu}
    if opts.pids_limit is not None:
        resources["pids"] = {"limit": opts.pids_limit}
    return resources


def features() -> dict:
    from dockyard.runtime.oci_hooks import HOOK_KINDS
    from dockyard.runtime.spec import OCI_VERSION

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": [
            "bind",
            "rbind",
            "ro",
            "rw",
            "nosuid",
            "suid",
            "nodev",
            "dev",
            "noexec",
            "exec",
            "strictatime",
            "relatime",
            "noatime",
            "private",
            "rprivate",
            "slave",
            "rslave",
        ],
        "linux": {
            "namespaces": ["mount", "pid", "network", "uts", "ipc", "cgroup"],
            "capabilities": sorted(_all_caps()),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"]},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.dockyard.runtime.version": DOCKYARD_VERSION},
    }


def _all_caps() -> list[str]:
    from dockyard.kernel.flags import CAPABILITIES

    return list(CAPABILITIES)


def default_spec() -> dict:
    """runc spec's template: sh on a terminal in ./rootfs, Docker's default capabilities."""
    from dockyard.runtime.spec import (
        DEFAULT_CAPABILITIES,
        DEFAULT_SHM_SIZE,
        MASKED_PATHS,
        OCI_VERSION,
        READONLY_PATHS,
        default_mounts,
        shm_tmpfs,
    )

    caps = list(DEFAULT_CAPABILITIES)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "dockyard",
        "mounts": [*default_mounts(), shm_tmpfs(DEFAULT_SHM_SIZE)],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def _print_list(root: str, fmt: str, quiet: bool) -> None:
    from dockyard.runtime import oci_lifecycle as L
    from dockyard.runtime import oci_state as S

    rows = []
    for cid in S.list_ids(root):
        try:
            c = S.load(root, cid)
        except DockyardError:
            continue
        st = L.container_status(root, c)
        rows.append(S.oci_state(c, st))
    if quiet:
        for row in rows:
            print(row["id"])
    elif fmt == "json":
        print(json.dumps(rows or None))
    else:
        print(f"{'ID':<12}{'PID':<10}{'STATUS':<10}{'BUNDLE':<40}{'CREATED':<32}OWNER")
        for row in rows:
            print(
                f"{row['id']:<12}{row['pid']:<10}{row['status']:<10}{row['bundle']:<40}{row['created']:<32}root"
            )


def _print_ps(root: str, opts: Options) -> None:
    from dockyard.kernel import procfs
    from dockyard.runtime import oci_lifecycle as L
    from dockyard.runtime import oci_state as S

    c = S.load(root, opts.id)
    pids = L.container_pids(c)
    if opts.format == "json":
        print(json.dumps(pids))
        return
    ps_args = [a for a in opts.ps_args if a != "--"] or ["-ef"]
    code, out, err = procfs.run_ps_sync(ps_args)
    if code != 0:
        raise DockyardError(f"ps {' '.join(ps_args)}: {err.strip()}")
    lines = out.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise DockyardError("ps output has no PID column")
    col = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)


def _dispatch(opts: Options, log: _Log) -> int:
    root = opts.root
    command = opts.command
    if command in ("create", "run", "start", "state", "kill", "delete"):
        from dockyard.runtime import oci_lifecycle as L
    if command == "create":
        if opts.no_pivot:
            raise UsageError("--no-pivot is not supported: dockyard-runtime always uses pivot_root")
        if opts.preserve_fds:
            raise UsageError("--preserve-fds is not supported")
        c = L.create(
            root, opts.id, opts.bundle, pid_file=opts.pid_file, console_socket=opts.console_socket
        )
        log.debug(f"created {c.id}: init pid {c.pid}")
        return 0
    if command == "run":
        if opts.no_pivot:
            raise UsageError("--no-pivot is not supported: dockyard-runtime always uses pivot_root")
        if opts.preserve_fds:
            raise UsageError("--preserve-fds is not supported")
        return L.run(
            root,
            opts.id,
            opts.bundle,
            pid_file=opts.pid_file,
            console_socket=opts.console_socket,
            detach=opts.detach,
            keep=opts.keep,
        )
    if command == "start":
        L.start(root, opts.id)
        return 0
    if command == "state":
        print(json.dumps(L.state(root, opts.id), indent=2))
        return 0
    if command == "kill":
        L.kill(root, opts.id, parse_signal(opts.signal), all_processes=opts.all)
        return 0
    if command == "delete":
        L.delete(root, opts.id, force=opts.force)
        return 0
    if command == "exec":
        from dockyard.runtime import oci_exec

        if opts.preserve_fds:
            raise UsageError("--preserve-fds is not supported")
        process = _process_from_flags(opts, root)
        return oci_exec.exec_process(
            root,
            opts.id,
            process,
            detach=opts.detach,
            pid_file=opts.pid_file,
            console_socket=opts.console_socket,
        )
    if command == "ps":
        _print_ps(root, opts)
        return 0
    if command == "list":
        _print_list(root, opts.format, opts.quiet)
        return 0
    if command in ("pause", "resume", "update"):
        from dockyard.runtime import oci_update
    if command in ("pause", "resume"):
        oci_update.set_paused(root, opts.id, command == "pause")
        return 0
    if command == "update":
        oci_update.update(root, opts.id, _update_resources(opts))
        return 0
    if command == "features":
        print(json.dumps(features(), indent=2))
        return 0
    if command == "spec":
        if opts.spec_rootless:
            raise UsageError("--rootless is not supported: dockyard-runtime runs as root only")
        path = os.path.join(opts.bundle or ".", "config.json")
        if os.path.exists(path):
            raise UsageError(f"File {path} exists. Remove it first")
        with open(path, "w") as f:
            json.dump(default_spec(), f, indent=2)
        return 0
    raise UsageError("a command is required (create, start, state, kill, delete, run, exec, ...)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = _Log("", "text", False)
    try:
        opts = parse_args(argv)
        log = _Log(opts.log, opts.log_format, opts.debug)
        if opts.help:
            print(usage(opts.command))
            return 0
        if opts.version:
            from dockyard.runtime.spec import OCI_VERSION

            print(f"{PROG} version {DOCKYARD_VERSION}\nspec: {OCI_VERSION}")
            return 0
        _refuse_globals(opts)
        log.debug(f"{PROG} {' '.join(argv)}")
        return _dispatch(opts, log)
    except UsageError as exc:
        return _fail(log, str(exc))
    except DockyardError as exc:
        return _fail(log, exc.message)
    except OSError as exc:
        return _fail(log, str(exc))


def entry() -> None:
    """The installed command: main(), then out without the interpreter's teardown.

    Tearing down the modules and objects that `run` loaded costs a few ms of
    every container's start as containerd sees it; nothing is left to clean
    (files are closed, children reaped or handed on), so flush and go.
    """
    # No cyclic garbage collection in a process this short: importing the run path
    # allocates enough to trigger a dozen collections, each walking every object
    # (and after the fork, the init's walk would copy-on-write the heap's pages).
    # The container's own lifetime is the init's exec'd command, not this process.
    import gc

    gc.disable()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # what the interpreter's own exit would report
    os._exit(code)


def _fail(log: _Log, message: str) -> int:
    log.write("error", message)
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    entry()
