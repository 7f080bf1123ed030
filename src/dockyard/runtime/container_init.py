"""What runs in the container's first process, between fork and exec.

The monitor has already unshared the pid namespace, so this process is PID 1
of a new one. It joins its cgroups, creates the other namespaces, builds the
root filesystem inside its own mount namespace (overlay, /proc, /dev, /sys,
bind mounts), pivots into it, drops privileges and execs the command.

Everything goes through a Kernel, so the sequence can be asserted against
RecordingKernel and timed by TracingKernel. Failures are raised
(KernelError, RuntimeFailure); `child_main` turns them into a message on the
status socket, which the monitor reads before it reports the container started.
"""

from __future__ import annotations

import _signal as signal  # not signal, socket, contextlib: `dockyard-runtime run` imports this
import errno
import marshal
import os
from time import perf_counter_ns

from dockyard.errors import DockyardError, KernelError, RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.interface import Kernel
from dockyard.kernel.securejoin import open_in_root
from dockyard.runtime import lightjson as json
from dockyard.runtime.bundle import ContainerConfig, MountEntry
from dockyard.runtime.cgroups import join_cgroups
from dockyard.runtime.cgroups_v2 import hierarchy_of as v2_hierarchy_of
from dockyard.runtime.oci_names import DEFAULT_PATH
from dockyard.suppress import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from dockyard.kernel.trace import TraceEntry

# name, major, minor: the devices every container gets (runtime-spec "default devices").
DEFAULT_DEVICES = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
]
DEV_SYMLINKS = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
] + (
    # As runc: /dev/core only where the kernel has a /proc/kcore (checked once, here).
    [("/proc/kcore", "core")] if os.path.exists("/proc/kcore") else []
)
# Python ignores these (and the forkserver SIGCHLD/SIGINT); ignored
# dispositions survive execve, so the command would inherit them. Plain ints,
# so that the start trace that records them travels as marshal data.
RESET_SIGNALS = [
    int(s) for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGHUP)
]
# The status message that carries the init's start trace: marshal, not JSON
# (it is sent between the init's last set-up call and its exec, so its cost
# is start time; json.dumps of ~120 calls costs ~0.2 ms, marshal ~0.02 ms).
# JSON messages never start with a NUL byte.
TRACE_MAGIC = b"\0trace\0"

OVERLAY_DATA_LIMIT = 4000  # mount(2) copies one page of data


def mount_rootfs(kernel: Kernel, cfg: ContainerConfig) -> None:
    if not cfg.lowerdirs:
        # A plain directory: bind it onto itself so that it is a mount point for pivot_root.
        kernel.mount(cfg.rootfs, cfg.rootfs, None, K.MS_BIND | K.MS_REC, None)
        return
    opts = overlay_data(cfg)
    if opts is None:
        kernel.mount_overlay(cfg.rootfs, cfg.lowerdirs, cfg.upperdir, cfg.workdir)
        return
    data, base = opts
    if base is not None:
        kernel.chdir(base)
    kernel.mount("overlay", cfg.rootfs, "overlay", 0, data)


def overlay_data(cfg: ContainerConfig) -> tuple[str, str | None] | None:
    """mount(2)'s data for the root overlay, and the directory its paths are relative to
    (None: absolute paths fit). mount(2) takes one page of options: with many layers,
    paths relative to the layers' common parent often fit (as containerd does); None
    when even those do not, and the new mount API takes the layers one by one."""
    data = f"lowerdir={':'.join(cfg.lowerdirs)},upperdir={cfg.upperdir},workdir={cfg.workdir}"
    if len(data) <= OVERLAY_DATA_LIMIT:
        return data, None
    base = os.path.commonpath([*cfg.lowerdirs, cfg.upperdir, cfg.workdir])
    rel = [os.path.relpath(p, base) for p in cfg.lowerdirs]
    data = (
        f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(cfg.upperdir, base)},"
        f"workdir={os.path.relpath(cfg.workdir, base)}"
    )
    return (data, base) if len(data) <= OVERLAY_DATA_LIMIT else None


def open_root(kernel: Kernel, path: str) -> int:
    """An O_PATH fd of the container's root: what every path inside it is resolved against."""
    return kernel.open_at(K.AT_FDCWD, path, os.O_PATH | os.O_DIRECTORY)


def mount_one(kernel: Kernel, root_fd: int, m: MountEntry) -> None:
    # A file bind mount needs a file to cover; everything else a directory.
    create = "file" if m.is_bind and not kernel.is_dir(m.source) else "dir"
    try:
        target = open_in_root(kernel, root_fd, m.destination, create)
    except KernelError as exc:
        raise _mount_error(m, exc) from None
    try:
        if m.is_bind:
            bind(kernel, root_fd, m.source, target, m.destination, m.flags, m.propagation)
            return
        kernel.mount_at(m.source or None, target, m.fstype or None, m.flags, m.data or None)
    except KernelError as exc:
        raise _mount_error(m, exc) from None
    finally:
        kernel.close(target)
    if m.propagation:
        _set_propagation(kernel, root_fd, m.destination, m.propagation)


def bind(
    kernel: Kernel,
    root_fd: int,
    source: str,
    target: int,
    path: str,
    flags: int,
    propagation: int,
) -> None:
    """Bind `source` onto the `target` fd (resolved from `path` in the root).

    Options and propagation are set on a detached copy, then it is moved onto the
    fd: no remount by path that a racing container could redirect. Where the new
    mount API is missing (Linux < 5.12) or refused, a bind(2)-style mount onto the
    fd, then the remount on `path` resolved again, and only if that is the source.
    """
    recursive = bool(flags & K.MS_REC)
    try:
        kernel.bind_mount_at(source, target, recursive, K.mount_attrs(flags), propagation)
        return
    except KernelError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise
    kernel.mount_at(source, target, None, K.MS_BIND | (flags & K.MS_REC), None)
    extra = flags & ~(K.MS_BIND | K.MS_REC)
    if not extra and not propagation:
        return
    # `target` names the directory the bind covers; the bind itself is reached by
    # resolving the path again, and is touched only if it is the source's root.
    fd = open_in_root(kernel, root_fd, path)
    try:
        if kernel.file_identity(fd) != kernel.file_identity(source):
            raise RuntimeFailure(f"{path!r} in the container's root changed while it was mounted")
        if extra:
            kernel.mount_at(None, fd, None, K.MS_BIND | K.MS_REMOUNT | extra, None)
        if propagation:
            kernel.mount_at(None, fd, None, propagation, None)
    finally:
        kernel.close(fd)


def _mount_error(m: MountEntry, exc: KernelError) -> RuntimeFailure:
    reason = os.strerror(exc.errno).lower()
    if exc.syscall == "move_mount" and exc.errno == errno.EINVAL:
        reason = "a file and a directory cannot be mounted on each other"
    elif exc.syscall == "openat2" and exc.errno == errno.ELOOP:
        reason = "too many levels of symbolic links, or a /proc magic link, on the way"
    return RuntimeFailure(f'error mounting "{m.source}" to rootfs at "{m.destination}": {reason}')


def _set_propagation(kernel: Kernel, root_fd: int, path: str, propagation: int) -> None:
    """The propagation of the filesystem just mounted at `path`: resolved again, since
    the fd the mount went onto names the directory it covers."""
    fd = open_in_root(kernel, root_fd, path)
    try:
        kernel.mount_at(None, fd, None, propagation, None)
    finally:
        kernel.close(fd)


def mount_cgroups(
    kernel: Kernel, cfg: ContainerConfig, root_fd: int, m: MountEntry, controllers: list[str]
) -> None:
    """cgroup v1 inside the container: a tmpfs with the container's own cgroup
    directory of each controller bind-mounted on it (what runc does), so that
    /sys/fs/cgroup/memory/memory.limit_in_bytes is the container's limit."""
    locked = K.MS_NOSUID | K.MS_NODEV | K.MS_NOEXEC
    readonly = m.flags & K.MS_RDONLY
    target = open_in_root(kernel, root_fd, m.destination, "dir")
    hierarchy = v2_hierarchy_of(controllers)
    if hierarchy is not None:
        # cgroup v2: the container's own directory of the unified hierarchy.
        try:
            source = kernel.cgroup_dir(hierarchy, cfg.cgroup_path)
            bind(kernel, root_fd, source, target, m.destination, K.MS_BIND | locked | readonly, 0)
        finally:
            kernel.close(target)
        return
    try:
        kernel.mount_at("tmpfs", target, "tmpfs", locked, "mode=755")
    finally:
        kernel.close(target)
    # The new tmpfs is this container's alone and nothing runs in it yet: its
    # entries are made and opened relative to its root, one component each.
    tmpfs = open_in_root(kernel, root_fd, m.destination)
    try:
        for controller in controllers:
            kernel.mkdirat(tmpfs, controller, 0o755)
            path = kernel.open_at(tmpfs, controller, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY)
            try:
                source = kernel.cgroup_dir(controller, cfg.cgroup_path)
                where = f"{m.destination}/{controller}"
                bind(kernel, root_fd, source, path, where, K.MS_BIND | locked | readonly, 0)
            finally:
                kernel.close(path)
        if readonly:
            kernel.mount_at(None, tmpfs, None, K.MS_REMOUNT | K.MS_RDONLY | locked, "mode=755")
    finally:
        kernel.close(tmpfs)


def populate_dev(kernel: Kernel, root_fd: int, devpts: bool) -> None:
    """Device nodes and symlinks on the container's /dev tmpfs (just mounted)."""
    dev = open_in_root(kernel, root_fd, "/dev")
    try:
        for name, major, minor in DEFAULT_DEVICES:
            kernel.mknodat(dev, name, K.S_IFCHR | 0o666, major, minor)
        for target, name in DEV_SYMLINKS:
            kernel.symlinkat(target, dev, name)
        if devpts:
            kernel.symlinkat("pts/ptmx", dev, "ptmx")
    finally:
        kernel.close(dev)


def setup_console(kernel: Kernel, send_pty: Callable[[int], None]) -> None:
    """A pty from the container's own devpts, as runc does: `tty` names /dev/pts/0.

    The master goes to the monitor; the slave becomes stdio, the controlling
    terminal and /dev/console.
    """
    master, slave, slave_path = kernel.open_pty("/dev/pts/ptmx")
    send_pty(master)
    kernel.create_file("/dev/console", 0o600)
    kernel.mount(slave_path, "/dev/console", None, K.MS_BIND, None)
    for target in (0, 1, 2):
        kernel.dup2(slave, target)
    kernel.set_controlling_tty(0)


def pivot_into(kernel: Kernel, rootfs: str) -> None:
    # pivot_root(".", ".") stacks the old root under the new one; unmounting
    # "." then removes it, with no directory to create inside the container.
    kernel.chdir(rootfs)
    kernel.pivot_root(".", ".")
    kernel.umount2(".", K.MNT_DETACH)
    kernel.chdir("/")


def mask_paths(kernel: Kernel, cfg: ContainerConfig) -> None:
    for path in cfg.masked_paths:
        try:
            kernel.mount("/dev/null", path, None, K.MS_BIND, None)
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                continue
            if exc.errno != errno.ENOTDIR:
                raise
            kernel.mount("tmpfs", path, "tmpfs", K.MS_RDONLY, None)
    for path in cfg.readonly_paths:
        try:
            kernel.mount(path, path, None, K.MS_BIND | K.MS_REC, None)
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        flags = K.MS_BIND | K.MS_REMOUNT | K.MS_RDONLY | K.MS_NOSUID | K.MS_NODEV | K.MS_NOEXEC
        kernel.mount(None, path, None, flags, None)


def apply_seccomp(kernel: Kernel, cfg: ContainerConfig) -> None:
    # Installed while we still hold CAP_SYS_ADMIN (no no_new_privs needed);
    # the profile allows what the rest of the init does (prctl, capset, execve).
    if cfg.seccomp:
        # Compiled before the init (see bundle.load_config): it only loads it here.
        program = cfg.seccomp_program
        if not program:
            # Imported here, not with this module: a config without a profile never
            # needs it. With one, attach_seccomp_program has imported it before the fork.
            from dockyard.runtime.seccomp import compile_oci

            program = compile_oci(cfg.seccomp)
        if program is not None:
            kernel.set_seccomp_filter(program)


def apply_credentials(kernel: Kernel, cfg: ContainerConfig) -> None:
    """Bounding set, then uid/gid (keeping caps across setuid), then capset."""
    # A capability this process lacks cannot be granted (capset fails with
    # EPERM); like dockerd for --privileged, give what there is.
    held = set(kernel.permitted_caps())
    bounding = [c for c in cfg.bounding if c in held]
    effective = [c for c in cfg.effective if c in held]
    permitted = [c for c in cfg.permitted if c in held]
    inheritable = [c for c in cfg.inheritable if c in held]
    kernel.drop_bounding_caps(bounding)
    switching = cfg.uid != 0
    if switching:
        kernel.set_keepcaps(True)
    kernel.setgroups(cfg.additional_gids)
    kernel.setresgid(cfg.gid, cfg.gid, cfg.gid)
    kernel.setresuid(cfg.uid, cfg.uid, cfg.uid)
    if switching:
        kernel.set_keepcaps(False)
    kernel.capset(effective, permitted, inheritable)
    kernel.clear_ambient_caps()
    if cfg.no_new_privileges:
        kernel.set_no_new_privs()


def exec_command(kernel: Kernel, args: list[str], env: list[str]) -> None:
    """execve, looking args[0] up in the container's $PATH; raises RuntimeFailure."""
    if not args:
        raise RuntimeFailure("no command specified", "other")
    name = args[0]
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
        candidates = [f"{d or '.'}/{name}" for d in path.split(":")]
    denied = False
    for candidate in candidates:
        try:
            kernel.execve(candidate, args, env)
            return  # only a recording kernel returns
        except KernelError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            if exc.errno == errno.EACCES:
                denied = True
                continue
            raise RuntimeFailure(
                f'exec: "{name}": {os.strerror(exc.errno).lower()}', "other"
            ) from None
    if denied:
        raise RuntimeFailure(f'exec: "{name}": permission denied', "permission")
    if "/" in name:
        raise RuntimeFailure(f'exec: "{name}": stat {name}: no such file or directory', "not-found")
    raise RuntimeFailure(f'exec: "{name}": executable file not found in $PATH', "not-found")


def create_device_nodes(kernel: Kernel, root_fd: int, cfg: ContainerConfig) -> None:
    """linux.devices (--device, --privileged): nodes made in the container, its parent
    directories resolved inside the root."""
    for node in cfg.device_nodes:
        parent, name = os.path.split(node.path.rstrip("/"))
        if not name:
            raise RuntimeFailure(f"invalid device path {node.path!r}")
        dir_fd = open_in_root(kernel, root_fd, parent or "/", "dir")
        try:
            kind = K.S_IFBLK if node.kind == "b" else K.S_IFCHR
            kernel.mknodat(dir_fd, name, kind | (node.mode & 0o7777), node.major, node.minor)
        except KernelError as exc:
            if exc.errno != errno.EEXIST:
                raise RuntimeFailure(f"creating device {node.path}: {exc}") from None
        finally:
            kernel.close(dir_fd)


def init_container(
    kernel: Kernel,
    cfg: ContainerConfig,
    stdio: tuple[int, int, int],
    controllers: list[str],
    *,
    send_pty: Callable[[int], None] = lambda fd: None,
    before_exec: Callable[[], None] | None = None,
    before_pivot: Callable[[], None] | None = None,
) -> None:
    """Set up the container in this process and exec its command.

    `before_pivot` runs once the mounts are in place (dockyard-runtime's hooks).

    Returns only on a RecordingKernel; raises on failure.
    """
    # Die with the monitor: a container nobody holds the stdio or the exit code of
    # would be an orphan the daemon cannot see.
    kernel.set_pdeathsig(int(signal.SIGKILL))
    join_cgroups(kernel, cfg, controllers)
    if cfg.oom_score_adj is not None:
        kernel.set_oom_score_adj(cfg.oom_score_adj)
    if cfg.netns_path:
        kernel.setns(cfg.netns_path, K.CLONE_NEWNET)
    if cfg.ipc_path:  # --ipc container:<id>
        kernel.setns(cfg.ipc_path, K.CLONE_NEWIPC)
    # ...and its /dev/shm, copied from its mount namespace while we are still outside ours.
    shm_tree = kernel.clone_mount_from_ns(cfg.shm_from, "/dev/shm") if cfg.shm_from else -1
    kernel.unshare(cfg.unshare_flags)
    if cfg.new_netns:
        kernel.bring_loopback_up()
    if cfg.hostname and cfg.unshare_flags & K.CLONE_NEWUTS:
        kernel.sethostname(cfg.hostname)
    if cfg.domainname and cfg.unshare_flags & K.CLONE_NEWUTS:
        kernel.setdomainname(cfg.domainname)

    # A new session, so that a terminal can become the controlling tty.
    kernel.setsid()
    if not cfg.terminal:
        for target, fd in enumerate(stdio):
            kernel.dup2(fd, target)

    kernel.umask(0)
    kernel.mount(None, "/", None, K.MS_REC | K.MS_PRIVATE, None)
    mount_rootfs(kernel, cfg)
    root_fd = open_root(kernel, cfg.rootfs)
    devpts = any(m.destination == "/dev/pts" for m in cfg.mounts)
    for m in cfg.mounts:
        if m.fstype == "cgroup":
            mount_cgroups(kernel, cfg, root_fd, m, controllers)
            continue
        mount_one(kernel, root_fd, m)
        if m.destination == "/dev" and m.fstype == "tmpfs":
            populate_dev(kernel, root_fd, devpts)
    create_device_nodes(kernel, root_fd, cfg)
    if shm_tree >= 0:
        target = open_in_root(kernel, root_fd, "/dev/shm", "dir")
        try:
            kernel.move_mount_fd(shm_tree, target)
        finally:
            kernel.close(target)
            kernel.close(shm_tree)
    kernel.close(root_fd)
    if before_pivot is not None:
        before_pivot()
    pivot_into(kernel, cfg.rootfs)
    if cfg.terminal:
        setup_console(kernel, send_pty)
    # Before /proc/sys turns read-only; the container's own namespaces' values only
    # (the engine refuses the others).
    for name, value in cfg.sysctls.items():
        try:
            kernel.write_sysctl(name, value)
        except KernelError as exc:
            raise RuntimeFailure(f"sysctl {name}={value}: {os.strerror(exc.errno)}") from None
    mask_paths(kernel, cfg)
    # The working directory (-w) is created like a mount target: through the resolver.
    new_root = open_root(kernel, "/")
    kernel.close(open_in_root(kernel, new_root, cfg.cwd, "dir"))
    kernel.close(new_root)
    if cfg.readonly_rootfs:
        kernel.mount(None, "/", None, K.MS_BIND | K.MS_REMOUNT | K.MS_RDONLY, None)
    confine_and_exec(kernel, cfg, before_exec)


def confine_and_exec(
    kernel: Kernel, cfg: ContainerConfig, before_exec: Callable[[], None] | None
) -> None:
    """The last steps of both an init and an exec: cwd, no inherited fds, seccomp,
    credentials, a clean signal state, then exec."""
    kernel.chdir(cfg.cwd)
    for name, soft, hard in cfg.rlimits:  # raising a hard limit needs CAP_SYS_RESOURCE
        try:
            kernel.set_rlimit(name, soft, hard)
        except KernelError as exc:
            raise RuntimeFailure(f"ulimit {name}={soft}:{hard}: {os.strerror(exc.errno)}") from None
    # Only stdio crosses execve: whatever else the monitor or the daemon held
    # (their sockets above all) must not reach the command. CLOEXEC rather
    # than close: the status socket has to stay open until the exec itself.
    kernel.mark_cloexec_from(3)
    apply_seccomp(kernel, cfg)
    apply_credentials(kernel, cfg)
    kernel.reset_signals(RESET_SIGNALS)
    kernel.umask(0o022)
    if before_exec is not None:
        before_exec()
    exec_command(kernel, cfg.args, cfg.env)


def exec_in_container(
    kernel: Kernel,
    cfg: ContainerConfig,
    target_pid: int,
    stdio: tuple[int, int, int],
    controllers: list[str],
    *,
    send_pty: Callable[[int], None] = lambda fd: None,
    before_exec: Callable[[], None] | None = None,
) -> None:
    """docker exec: join the namespaces and cgroups of the container whose init
    is `target_pid` (the monitor already joined its pid namespace for us), then
    drop privileges and exec as the container's init did."""
    kernel.set_pdeathsig(int(signal.SIGKILL))
    join_cgroups(kernel, cfg, controllers)
    if cfg.oom_score_adj is not None:
        kernel.set_oom_score_adj(cfg.oom_score_adj)
    # The mount namespace last: it changes what /proc/<pid> means.
    for name, flag in (("ipc", K.CLONE_NEWIPC), ("uts", K.CLONE_NEWUTS), ("net", K.CLONE_NEWNET)):
        kernel.setns(f"/proc/{target_pid}/ns/{name}", flag)
    kernel.setns(f"/proc/{target_pid}/ns/mnt", K.CLONE_NEWNS)
    kernel.setsid()
    if cfg.terminal:
        master, slave, _ = kernel.open_pty("/dev/pts/ptmx")
        send_pty(master)
        for target in (0, 1, 2):
            kernel.dup2(slave, target)
        kernel.set_controlling_tty(0)
    else:
        for target, fd in enumerate(stdio):
            kernel.dup2(fd, target)
    confine_and_exec(kernel, cfg, before_exec)


def child_main(
    kernel: Kernel,
    cfg: ContainerConfig,
    stdio: tuple[int, int, int],
    controllers: list[str],
    status: socket.socket,
    exec_target: int = 0,
) -> None:
    """Entry point in the forked child; never returns on the real kernel.

    With `exec_target`, join that container (exec) instead of creating one.

    `status` is a close-on-exec SOCK_SEQPACKET socket to the monitor: it sees
    EOF when execve succeeds. One JSON message each: the pty master (with
    the fd attached), the start trace just before exec, or the error.
    """
    t0 = perf_counter_ns()
    # Here, not at the top: the monitor that runs this has them loaded already, and
    # dockyard-runtime (which imports this module too) never traces (~0.1 ms to load)
    # nor passes a pty through here (fdpass loads `_socket`). Before the pivot.
    from dockyard.kernel.trace import TRACING, TracingKernel
    from dockyard.runtime import fdpass

    # An exec has no start trace (nobody reads one): its calls go untimed.
    tracer: Kernel = TracingKernel(kernel) if TRACING and not exec_target else kernel
    calls = tracer.calls if isinstance(tracer, TracingKernel) else []

    def send_pty(master: int) -> None:
        fdpass.send_fds(status, [b'{"pty": true}'], [master])

    def report_trace() -> None:
        # Also the monitor's word that the init reached exec: sent with tracing off too.
        status.send(encode_trace(calls, perf_counter_ns() - t0, t0))

    code = 127
    try:
        if exec_target:
            exec_in_container(
                tracer,
                cfg,
                exec_target,
                stdio,
                controllers,
                send_pty=send_pty,
                before_exec=report_trace,
            )
        else:
            init_container(
                tracer, cfg, stdio, controllers, send_pty=send_pty, before_exec=report_trace
            )
    except RuntimeFailure as exc:
        code = 127 if exc.kind == "not-found" else 126 if exc.kind == "permission" else 125
        _report_error(status, exc.message, exc.kind)
    except DockyardError as exc:
        _report_error(status, exc.message, "other")
    except Exception as exc:  # noqa: BLE001 - any failure must reach the monitor, not vanish
        _report_error(status, f"container init: {exc!r}", "other")
    finally:
        kernel.exit(code)


def encode_trace(calls: list[TraceEntry], init_ns: int, init_start: int = 0) -> bytes:
    """The status message with the init's trace (see TRACE_MAGIC)."""
    try:
        return TRACE_MAGIC + marshal.dumps((calls, init_ns, init_start))
    except ValueError:  # an argument marshal cannot carry: send the trace's plain form
        from dockyard.kernel.trace import calls_to_json  # loaded: the caller traced

        plain = [(c["call"], tuple(c["args"]), c["ns"], c["start"]) for c in calls_to_json(calls)]
        return TRACE_MAGIC + marshal.dumps((plain, init_ns, init_start))


def decode_trace(msg: bytes) -> dict | None:
    """{"trace": [(call, args, ns, start)...], "init_ns", "init_start"} from a status
    message; None if not one."""
    if not msg.startswith(TRACE_MAGIC):
        return None
    calls, init_ns, init_start = marshal.loads(msg[len(TRACE_MAGIC) :])
    return {"trace": calls, "init_ns": init_ns, "init_start": init_start}


def _report_error(status: socket.socket, message: str, kind: str) -> None:
    with suppress(OSError):
        status.send(json.dumps({"error": message, "kind": kind}).encode())
