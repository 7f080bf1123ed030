"""The OCI lifecycle as runc runs it from its command line: create, start,
kill, delete, exec, and what reads a container's cgroups (ps, pause, update).

Unlike the daemon's path (a monitor that holds stdio and logs), here the
caller owns stdio and reaping, as containerd's shim expects of runc:

- `create` unshares a pid namespace, forks the init with its own stdin,
  stdout and stderr, and returns once the init has built the container and
  blocks, before exec, opening <root>/<id>/exec.fifo for writing. Then
  `create` exits: the init is re-parented to the nearest subreaper (the
  shim), which reaps it and reports its exit code.
- `start` opens the fifo for reading: the init's open returns, it execs.
- `exec` joins the container's pid namespace, forks the process, and returns
  once it has exec'd (--detach) or when it exits.

With --console-socket the init's pty master goes to that socket (SCM_RIGHTS),
as runc sends it.
"""

from __future__ import annotations

# _signal and fdpass, not signal and socket; suppress, not contextlib: what those
# import (enum, selectors, collections) was ~5 ms of each `run`'s CPU. fdpass (and
# with it `_socket`) only where a terminal's pty is passed: msgpipe otherwise.
import _signal as signal
import errno
import os
import select
import time

from dockyard.errors import Conflict, DockyardError, KernelError, NotFound, RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.linux import LinuxKernel
from dockyard.runtime import cgroups_v2 as v2
from dockyard.runtime import lightjson as json
from dockyard.runtime import oci_state as S
from dockyard.runtime.atomic_write import write_atomic
from dockyard.runtime.bundle import (
    ContainerConfig,
    DeviceRule,
    attach_seccomp_program,
    config_from_oci,
)
from dockyard.runtime.cgroups import (
    available_controllers,
    create_cgroups,
    remove_cgroups,
    set_frozen,
)
from dockyard.runtime.container_init import init_container
from dockyard.runtime.msgpipe import MessagePipe, message_pipe_pair
from dockyard.runtime.oci_hooks import HOOK_KINDS, hooks_of, run_hooks
from dockyard.runtime.oci_names import DEFAULT_PATH
from dockyard.runtime.rfc3339 import now_rfc3339nano
from dockyard.suppress import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    Channel = socket.socket | MessagePipe

KILL_TIMEOUT = 10.0


class DetachedInitKernel(LinuxKernel):
    """The init outlives `create` (its reaper is whoever spawned us, e.g. containerd's
    shim): no death signal tied to the short-lived create process."""

    def set_pdeathsig(self, signum: int) -> None:
        pass


def read_bundle_config(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file: the bundle has no config.json") from None
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise RuntimeFailure(f"{path}: must hold a JSON object")
    return config


# --- create / start ---------------------------------------------------------------
def create(
    root: str,
    container_id: str,
    bundle: str,
    *,
    pid_file: str = "",
    console_socket: str = "",
) -> S.OciContainer:
    S.check_id(container_id)
    bundle = os.path.abspath(bundle)
    config = read_bundle_config(bundle)
    linux = config.get("linux") if isinstance(config.get("linux"), dict) else {}
    if not linux.get("cgroupsPath"):
        # As runc: a container without a cgroupsPath gets a cgroup named for its id.
        config = {**config, "linux": {**linux, "cgroupsPath": f"/{container_id}"}}
    cfg = _cfg_of(bundle, config)
    if not os.path.isdir(cfg.rootfs):
        raise RuntimeFailure(f"root.path: rootfs {cfg.rootfs} does not exist")
    check_console(cfg.terminal, console_socket)
    for kind in HOOK_KINDS:
        hooks_of(config, kind)
    os.makedirs(root, mode=0o711, exist_ok=True)
    # Before the fork: the init pivots away from libseccomp and our sources. Compiled
    # once per profile under --root, later containers only read the program.
    attach_seccomp_program(cfg, config, root)
    cdir = S.container_dir(root, container_id)
    try:
        os.mkdir(cdir, 0o711)
    except FileExistsError:
        raise Conflict(f"container with id exists: {container_id}") from None
    kernel = DetachedInitKernel()
    controllers: list[str] = []
    pid = 0
    console = None
    staged = ""
    try:
        fifo = S.fifo_path(root, container_id)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # not umask's: the init may write it as another user
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        console = connect_console(console_socket)
        controllers = available_controllers(kernel, cfg)
        create_cgroups(kernel, cfg, controllers)
        container = S.OciContainer(
            id=container_id,
            pid=0,
            pid_start=0,
            bundle=bundle,
            created=now_rfc3339nano(),
            config=config,
            controllers=controllers,
            cgroup_path=cfg.cgroup_path,
        )
        config_json = json.dumps(config)  # for state.json (see S.stage), before the fork
        ours, theirs = init_channel(cfg.terminal)
        kernel.unshare(K.CLONE_NEWPID)
        pid = kernel.fork()
        if pid == 0:
            ours.close()
            _init_child(kernel, cfg, config, theirs, fifo_fd, controllers)
        # Back to our own pid namespace for what we fork next (the hooks).
        kernel.setns("/proc/self/ns/pid", K.CLONE_NEWPID)
        theirs.close()
        os.close(fifo_fd)
        container.pid = pid
        # While the init builds the container (this process would only wait): its
        # start time, which it has from the fork on, and state.json's bytes under a
        # temporary name. Once the init is ready, a rename makes the container seen.
        container.pid_start = S.process_start_time(pid) or 0
        staged = S.stage(root, container, config_json)
        try:
            _serve_init(ours, container, console)
        finally:
            ours.close()
        if not container.pid_start or S.process_start_time(pid) != container.pid_start:
            raise RuntimeFailure("container init exited during create")
        os.rename(staged, os.path.join(S.container_dir(root, container_id), S.STATE_FILE))
        staged = ""
        if pid_file:
            write_pid_file(pid_file, pid)
        return container
    except BaseException:
        if pid > 0:
            with suppress(KernelError):
                kernel.kill(pid, signal.SIGKILL)
            with suppress(KernelError):
                kernel.waitpid(pid, 0)
        with suppress(KernelError):
            remove_cgroups(kernel, cfg, controllers)
        if staged:
            with suppress(FileNotFoundError):
                os.unlink(staged)
        S.remove_dir(root, container_id)
        raise
    finally:
        if console is not None:
            console.close()


def check_console(terminal: bool, console_socket: str) -> None:
    if terminal and not console_socket:
        raise RuntimeFailure(
            "process.terminal is true: --console-socket is required "
            "(dockyard-runtime does not use its own terminal for the container)"
        )
    if console_socket and not terminal:
        raise RuntimeFailure("--console-socket given but process.terminal is false")


def init_channel(terminal: bool) -> tuple[Channel, Channel]:
    """`create`'s end and the init's of the channel between them: a SEQPACKET
    socketpair where the init passes its pty, two pipes otherwise."""
    if terminal:
        from dockyard.runtime import fdpass

        return fdpass.seqpacket_pair()
    return message_pipe_pair()


def connect_console(path: str) -> socket.socket | None:
    if not path:
        return None
    from dockyard.runtime import fdpass

    sock = fdpass.unix_stream()
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise RuntimeFailure(f"--console-socket {path}: {exc.strerror or exc}") from None
    return sock


def _serve_init(sock: Channel, container: S.OciContainer, console: socket.socket | None) -> None:
    """Answer the init until it is ready (or failed): forward its pty, run its hooks."""
    while True:
        if isinstance(sock, MessagePipe):
            msg, fds = sock.recv(1 << 20), []
        else:
            from dockyard.runtime import fdpass

            msg, fds, _flags, _addr = fdpass.recv_fds(sock, 1 << 20, 1)
        for fd in fds:
            try:
                if console is not None:
                    fdpass.send_fds(console, [b"/dev/ptmx"], [fd])  # fdpass: imported above
            finally:
                os.close(fd)
        if not msg and not fds:
            raise RuntimeFailure("container init exited before the container was created")
        if not msg:
            continue
        event = json.loads(msg)
        if "error" in event:
            raise RuntimeFailure(str(event["error"]), str(event.get("kind", "other")))
        if event.get("hooks"):
            state = S.oci_state(container, "creating")
            try:
                run_hooks(container.config, "prestart", state)
                run_hooks(container.config, "createRuntime", state)
            except RuntimeFailure as exc:
                sock.send(json.dumps({"abort": exc.message}).encode())
                raise
            sock.send(json.dumps({"state": state}).encode())
        elif event.get("ready"):
            return


def _init_child(
    kernel: LinuxKernel,
    cfg: ContainerConfig,
    config: dict,
    status: Channel,
    fifo_fd: int,
    controllers: list[str],
) -> None:
    """The container's init (PID 1 of its namespace); never returns."""
    hook_state: dict = {}
    # The round trip that hands the init its state for the hooks: only with hooks.
    needs_state = any(
        hooks_of(config, kind)
        for kind in ("prestart", "createRuntime", "createContainer", "startContainer")
    )

    def send_pty(master: int) -> None:
        from dockyard.runtime import fdpass  # loaded before the fork by init_channel

        fdpass.send_fds(status, [b'{"pty": true}'], [master])  # type: ignore[arg-type]

    def before_pivot() -> None:
        if not needs_state:
            return
        # What the hooks import, while the host's root is still there: the
        # startContainer hooks run after pivot_root.
        import subprocess  # noqa: F401

        status.send(b'{"hooks": true}')
        reply = json.loads(status.recv(1 << 20) or b"{}")
        if "abort" in reply:
            raise _Aborted  # `create` says why (a hook failed), and may be gone already
        if "state" not in reply:
            raise RuntimeFailure("create was interrupted")
        hook_state.update(reply["state"])
        run_hooks(config, "createContainer", hook_state)

    def before_exec() -> None:
        check_executable(cfg.args, cfg.env)
        status.send(b'{"ready": true}')
        # Blocks until `start` opens the fifo for reading.
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo_fd)
        run_hooks(config, "startContainer", dict(hook_state, status="running"))

    child_run(
        status,
        lambda: init_container(
            kernel,
            cfg,
            (0, 1, 2),
            controllers,
            send_pty=send_pty,
            before_exec=before_exec,
            before_pivot=before_pivot,
        ),
    )


class _Aborted(Exception):
    """`create` told the init to give up: it reports the reason itself."""


def child_run(status: Channel, body: object) -> None:
    code = 125
    try:
        body()  # type: ignore[operator]
    except _Aborted:
        pass  # a report now would race `create` closing the channel: said twice
    except RuntimeFailure as exc:
        code = 127 if exc.kind == "not-found" else 126 if exc.kind == "permission" else 125
        _report(status, exc.message, exc.kind)
    except DockyardError as exc:
        _report(status, exc.message, "other")
    except Exception as exc:  # noqa: BLE001 - any failure must reach `create`, not vanish
        _report(status, f"container init: {exc!r}", "other")
    finally:
        os._exit(code)


def _report(status: Channel, message: str, kind: str) -> None:
    try:
        status.send(json.dumps({"error": message, "kind": kind}).encode())
    except OSError:
        # `create` is gone (a startContainer hook failed after `start`): the
        # container's stderr is the one place left to say why it exits.
        with suppress(OSError):
            os.write(2, f"dockyard-runtime: {message}\n".encode())


def check_executable(args: list[str], env: list[str]) -> None:
    """What execve would say, before the container is reported created (as runc does)."""
    if not args:
        raise RuntimeFailure("process.args: no command specified")
    name = args[0]
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
        candidates = [f"{d or '.'}/{name}" for d in path.split(":")]
    denied = False
    for candidate in candidates:
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return
            denied = True
    if denied:
        raise RuntimeFailure(f'exec: "{name}": permission denied', "permission")
    if "/" in name:
        raise RuntimeFailure(f'exec: "{name}": stat {name}: no such file or directory', "not-found")
    raise RuntimeFailure(f'exec: "{name}": executable file not found in $PATH', "not-found")


def write_pid_file(path: str, pid: int) -> None:
    write_atomic(os.path.abspath(path), str(pid).encode(), durable=False)


def start(root: str, container_id: str) -> S.OciContainer:
    return _start(root, S.load(root, container_id))


def _start(root: str, c: S.OciContainer, *, created: bool = False) -> S.OciContainer:
    """`created`: `run` starts what its create has just made, the init waiting on the
    fifo (if it died since, the wait below says so): no status to derive again."""
    container_id = c.id
    st = "created" if created else container_status(root, c)
    if st == "stopped":
        raise Conflict("cannot start a container that has stopped")
    if st != "created":
        raise Conflict("cannot start an already running container")
    fifo = S.fifo_path(root, container_id)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100) and os.read(fd, 1):
                break
            if not S.init_alive(c):
                raise RuntimeFailure("container init exited before it was started")
    finally:
        os.close(fd)
    os.unlink(fifo)
    run_hooks(c.config, "poststart", S.oci_state(c, "running"))
    return c


# --- state -------------------------------------------------------------------
def config_of(c: S.OciContainer) -> ContainerConfig:
    return _cfg_of(c.bundle, c.config)


# The devices every container may use whatever its rules say, appended as runc's
# specconv does (AllowedDevices): the default nodes, /dev/console, ptmx and pts.
ALWAYS_ALLOWED_DEVICES = [
    DeviceRule(True, "c", major, minor, "rwm")
    for major, minor in (
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (136, None),
    )
]


def _cfg_of(bundle: str, config: dict) -> ContainerConfig:
    cfg = config_from_oci(bundle, config)
    cfg.resources.devices = [*cfg.resources.devices, *ALWAYS_ALLOWED_DEVICES]
    return cfg


def container_status(root: str, c: S.OciContainer) -> str:
    frozen = False
    h = v2.hierarchy_of(c.controllers)
    if S.init_alive(c) and (h is not None or "freezer" in c.controllers):
        with suppress(KernelError):
            if h is not None:
                events = LinuxKernel().cgroup_read(h, c.cgroup_path, "cgroup.events")
                frozen = "frozen 1" in events.splitlines()
            else:
                state = LinuxKernel().cgroup_read("freezer", c.cgroup_path, "freezer.state")
                frozen = state.strip() == "FROZEN"
    return S.status(root, c, frozen)


def state(root: str, container_id: str) -> dict:
    c = S.load(root, container_id)
    return S.oci_state(c, container_status(root, c))


def container_pids(c: S.OciContainer) -> list[int]:
    """Every process in the container's cgroup (the init only, if it has none)."""
    if not c.controllers:
        return [c.pid] if S.init_alive(c) else []
    h = v2.hierarchy_of(c.controllers)
    try:
        text = LinuxKernel().cgroup_read(
            c.controllers[0] if h is None else h, c.cgroup_path, "cgroup.procs"
        )
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return []
        raise
    return [int(p) for p in text.split()]


# --- kill / delete -----------------------------------------------------------------
def kill(root: str, container_id: str, signum: int, *, all_processes: bool = False) -> None:
    c = S.load(root, container_id)
    st = container_status(root, c)
    if st == "stopped":
        raise RuntimeFailure("container not running")
    targets = container_pids(c) if all_processes else [c.pid]
    kernel = LinuxKernel()
    for pid in targets:
        try:
            kernel.kill(pid, signum)
        except KernelError as exc:
            if exc.errno != errno.ESRCH:  # gone meanwhile: fine
                raise
    if st == "paused" and signum == signal.SIGKILL:
        # A frozen task handles no signal, not even SIGKILL, until thawed.
        with suppress(DockyardError):
            set_frozen(LinuxKernel(), config_of(c), c.controllers, False)


def delete(root: str, container_id: str, *, force: bool = False) -> None:
    try:
        c = S.load(root, container_id)
    except NotFound:
        if force:
            return
        raise
    _delete(root, c, force=force)


def _delete(root: str, c: S.OciContainer, *, force: bool) -> None:
    container_id = c.id
    st = container_status(root, c)
    if st != "stopped":
        if not force:
            raise Conflict(f"cannot delete container {container_id} that is not stopped: {st}")
        kill(root, container_id, signal.SIGKILL, all_processes=True)
        deadline = time.monotonic() + KILL_TIMEOUT
        while S.init_alive(c):
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"container {container_id}: init did not die after SIGKILL")
            time.sleep(0.005)
    kernel = LinuxKernel()
    remove_cgroups(kernel, config_of(c), c.controllers)
    S.remove_dir(root, container_id)
    # As runc: a failing poststop hook is reported, the container is gone all the same.
    run_hooks(c.config, "poststop", S.oci_state(c, "stopped"))


FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def wait_forwarding_signals(kernel: LinuxKernel, pid: int) -> int:
    """waitpid for our child, passing the signals we get on to it (as runc does)."""

    def forward(signum: int, _frame: object) -> None:
        with suppress(KernelError):
            kernel.kill(pid, signum)

    for signum in FORWARDED_SIGNALS:
        kernel.set_signal_handler(signum, forward)
    _, status = kernel.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def run(
    root: str,
    container_id: str,
    bundle: str,
    *,
    pid_file: str = "",
    console_socket: str = "",
    detach: bool = False,
    keep: bool = False,
) -> int:
    """create + start; without `detach`, wait for the init and delete the container."""
    # One process holds the container throughout: it works from its own record
    # rather than reading state.json back (what separate commands must do).
    c = create(root, container_id, bundle, pid_file=pid_file, console_socket=console_socket)
    try:
        _start(root, c, created=True)
    except BaseException:
        _delete(root, c, force=True)
        raise
    if detach:
        return 0
    code = wait_forwarding_signals(LinuxKernel(), c.pid)
    if not keep:
        _delete(root, c, force=True)
    return code
