"""A container run by another OCI runtime (runc, crun) under Dockyard's monitor.

`docker run --runtime runc`: the monitor does what it does for our own
runtime (holds stdio, writes the log, serves attach/kill/pause/stats, records
the exit), but the container is created by `<runtime> create` and started by
`<runtime> start`, as containerd's shim drives runc:

- the monitor becomes a child subreaper, so the init that `create` leaves
  behind is re-parented to it and it can wait for the exit code;
- the overlay root is mounted on the bundle's rootfs in a mount namespace of
  the monitor's own (runc expects a mounted root; this one vanishes with the
  monitor whatever happens);
- stdio are the monitor's pipes (or, with a tty, the pty master arrives on a
  console socket in a private temporary directory);
- at exit: the OOM verdict from the cgroup, then `<runtime> delete --force`
  (which removes the cgroups it made), then the record.

`docker exec` into such a container is the usual exec monitor: it joins the
init's namespaces and cgroups, whoever created them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile

from dockyard.errors import KernelError, RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.interface import Kernel
from dockyard.runtime.bundle import ContainerConfig, load_config
from dockyard.runtime.cgroups import available_controllers, oom_killed
from dockyard.runtime.container_init import mount_rootfs
from dockyard.runtime.monitor import Monitor, detach, exit_code_of
from dockyard.runtime.rfc3339 import now_rfc3339nano
from dockyard.runtime.state import EXIT_FILE, STATE_FILE, ExitRecord, write_exit

RUNTIME_TIMEOUT = 60.0
PID_FILE = "runtime.pid"
LOG_FILE = "runtime-log.json"
CONSOLE_SOCKET = "console.sock"


class ExternalRuntimeMonitor(Monitor):
    def __init__(
        self,
        kernel: Kernel,
        container_id: str,
        bundle: str,
        log_path: str,
        first_client: socket.socket,
        runtime_path: str,
        runtime_root: str,
    ) -> None:
        super().__init__(kernel, container_id, bundle, log_path, first_client)
        self.runtime_path = runtime_path
        self.runtime_root = runtime_root
        self.rootfs_mounted = False
        self.created = False

    def _runtime(self, *args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.runtime_path, "--root", self.runtime_root, *args],
            timeout=RUNTIME_TIMEOUT,
            check=False,
            **kw,  # type: ignore[arg-type]
        )

    def _prepare(self, tracer: Kernel) -> ContainerConfig:
        self.cfg = cfg = load_config(self.bundle)
        self.listener = self._listen()
        for name in (EXIT_FILE, STATE_FILE, PID_FILE, LOG_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.bundle, name))
        # The runtime creates and removes the cgroups (at cfg.cgroup_path, as
        # ours would be): pause and stats read the same files.
        self.controllers = available_controllers(tracer, cfg)
        self.owns_cgroups = True
        self._open_log(cfg)
        return cfg

    def _start(self, tracer: Kernel) -> dict:
        cfg = self._prepare(tracer)
        self.kernel.set_child_subreaper()
        tracer.unshare(K.CLONE_NEWNS)
        tracer.mount(None, "/", None, K.MS_REC | K.MS_PRIVATE, None)
        mount_rootfs(tracer, cfg)
        self.rootfs_mounted = True
        stdio, child_fds = self._make_stdio(cfg)
        console = None
        args = ["--log", os.path.join(self.bundle, LOG_FILE), "--log-format", "json", "create"]
        args += ["--bundle", self.bundle, "--pid-file", os.path.join(self.bundle, PID_FILE)]
        console_dir = ""
        if cfg.terminal:
            # A short private directory: the bundle's path may pass the 108 bytes of
            # a unix socket address.
            console_dir = tempfile.mkdtemp(prefix="dky-console-")
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(os.path.join(console_dir, CONSOLE_SOCKET))
            console.listen(1)
            args += ["--console-socket", os.path.join(console_dir, CONSOLE_SOCKET)]
        try:
            null = subprocess.DEVNULL
            created = self._runtime(
                *args,
                self.container_id,
                stdin=stdio[0] if stdio[0] >= 0 else null,
                stdout=stdio[1] if stdio[1] >= 0 else null,
                stderr=stdio[2] if stdio[2] >= 0 else null,
            )
            for fd in child_fds:
                os.close(fd)
            if created.returncode != 0:
                return self._runtime_error("create", created.returncode)
            self.created = True
            with open(os.path.join(self.bundle, PID_FILE)) as f:
                self.pid = int(f.read().strip())
            if console is not None:
                self._take_pty(console, cfg)
            started = self._runtime("start", self.container_id, capture_output=True)
            if started.returncode != 0:
                return self._runtime_error("start", started.returncode)
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return {"error": f"{os.path.basename(self.runtime_path)}: {exc}", "kind": "other"}
        finally:
            if console is not None:
                console.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(console_dir, CONSOLE_SOCKET))
                os.rmdir(console_dir)
        return {"trace": []}

    def _take_pty(self, console: socket.socket, cfg: ContainerConfig) -> None:
        console.settimeout(5)
        conn, _ = console.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1, socket.MSG_CMSG_CLOEXEC)
        if not fds:
            raise ValueError("the runtime sent no pty on the console socket")
        master = fds[0]
        os.set_blocking(master, False)
        self.pty_master = master
        self.outputs[master] = "stdout"
        if cfg.open_stdin:
            self.stdin_fd = master

    def _runtime_error(self, step: str, code: int) -> dict:
        """The runtime's last error line from its --log, as the report of a failed start."""
        message = ""
        with contextlib.suppress(OSError), open(os.path.join(self.bundle, LOG_FILE), "rb") as f:
            for line in f.read().splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("level") in ("error", "fatal"):
                        message = str(record.get("msg", ""))
        name = os.path.basename(self.runtime_path)
        message = message or f"{name} {step} exited with {code}"
        lowered = message.lower()
        kind = "other"
        if "not found in $path" in lowered or "no such file or directory" in lowered:
            kind = "not-found"
            # crun says "No such file or directory"; clients match runc's lower case (docker
            # run's exit code 127 comes from the message).
            message = message.replace("No such file or directory", "no such file or directory")
        elif "permission denied" in lowered:
            kind = "permission"
        return {"error": f"{name}: {message}", "kind": kind}

    def _fail_start(self, message: str, kind: str) -> None:
        self._delete()
        super()._fail_start(message, kind)

    def _delete(self) -> None:
        if self.created:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._runtime("delete", "--force", self.container_id, capture_output=True)
            self.created = False
        if self.rootfs_mounted and self.cfg is not None:
            with contextlib.suppress(KernelError):
                self.kernel.umount2(self.cfg.rootfs, K.MNT_DETACH)
            self.rootfs_mounted = False

    def _exit_record(self, error: str) -> ExitRecord:
        assert self.cfg is not None and self.exit_status is not None
        oom = False
        with contextlib.suppress(KernelError):
            oom = oom_killed(self.kernel, self.cfg, self.controllers)
        self._delete()
        record = ExitRecord(
            exit_code=exit_code_of(self.exit_status),
            finished_at=now_rfc3339nano(),
            oom_killed=oom,
            error=error,
        )
        # Whatever happens to the file, the exit event still reaches the daemon.
        with contextlib.suppress(OSError):
            write_exit(self.bundle, record)
        return record


def detach_and_run_external(
    kernel: Kernel,
    container_id: str,
    bundle: str,
    log_path: str,
    first_client: socket.socket,
    runtime: dict,
) -> int:
    path, root = str(runtime.get("path") or ""), str(runtime.get("root") or "")
    if not path or not root:
        raise RuntimeFailure("the runtime request names no path or root")
    monitor = ExternalRuntimeMonitor(
        kernel, container_id, bundle, log_path, first_client, path, root
    )
    detach(kernel, monitor)
    return monitor.run()
