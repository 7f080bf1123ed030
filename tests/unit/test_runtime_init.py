"""The container init against RecordingKernel: which calls, in which order, with which flags."""

from __future__ import annotations

import errno
import os

import pytest

from dockyard.errors import RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.fake import RecordingKernel
from dockyard.runtime.bundle import config_from_oci
from dockyard.runtime.container_init import exec_command, exec_in_container, init_container
from dockyard.runtime.spec import DEFAULT_CAPABILITIES, BindMount, RunSpec

BUNDLE = "/b/c1"
ROOTFS = "/b/c1/rootfs"
CONTROLLERS = ["memory", "cpu", "cpuacct", "pids", "devices"]


def run_init(kernel: RecordingKernel | None = None, **overrides) -> RecordingKernel:
    spec = dict(
        args=["echo", "hi"],
        env=["PATH=/usr/bin:/bin"],
        hostname="c1host",
        rootfs_lower=["/l/top", "/l/base"],
        rootfs_upper="/c/upper",
        rootfs_work="/c/work",
    )
    spec.update(overrides)
    cfg = config_from_oci(BUNDLE, RunSpec(**spec).to_oci("c1"))
    kernel = kernel or RecordingKernel()
    init_container(kernel, cfg, (10, 11, 12), CONTROLLERS)
    return kernel


def mounts_at(k: RecordingKernel) -> list[tuple[object, ...]]:
    """mount_at and bind_mount_at calls, the target fd replaced by the path it was opened
    for: ("mount", source, path, fstype, flags, data) or ("bind", source, path, recursive,
    attrs, propagation)."""
    found: list[tuple[object, ...]] = []
    for name, args in k.calls:
        if name in ("mount_at", "bind_mount_at"):
            kind = "mount" if name == "mount_at" else "bind"
            found.append((kind, args[0], k.path_of(args[1]), *args[2:]))
    return found


def index(kernel: RecordingKernel, name: str, *args: object) -> int:
    for i, (n, a) in enumerate(kernel.calls):
        if n == name and a[: len(args)] == args:
            return i
    raise AssertionError(f"{name}{args} not called; calls: {kernel.names()}")


def test_namespaces_cgroups_then_hostname() -> None:
    k = run_init()
    assert k.calls[0] == ("set_pdeathsig", (9,))
    joins = k.find("cgroup_add_pid")
    assert joins == [(c, "dockyard/c1", 0) for c in CONTROLLERS]
    (flags,) = k.find("unshare")[0]
    assert flags == K.CLONE_NEWNS | K.CLONE_NEWUTS | K.CLONE_NEWIPC | K.CLONE_NEWNET
    assert not flags & K.CLONE_NEWPID  # the monitor does that for its child
    # Join the cgroups first so that everything after is accounted to the container.
    assert index(k, "cgroup_add_pid") < index(k, "unshare") < index(k, "bring_loopback_up")
    assert k.find("sethostname") == [("c1host",)]


def test_host_network_has_no_netns_and_no_loopback() -> None:
    k = run_init(network="host")
    (flags,) = k.find("unshare")[0]
    assert not flags & K.CLONE_NEWNET
    assert "bring_loopback_up" not in k.names()
    assert "setns" not in k.names()


def test_joined_network_namespace() -> None:
    k = run_init(network="/run/netns/n1")
    assert k.find("setns") == [("/run/netns/n1", K.CLONE_NEWNET)]
    (flags,) = k.find("unshare")[0]
    assert not flags & K.CLONE_NEWNET
    assert index(k, "setns") < index(k, "unshare")


def test_stdio_pipes_are_set_up_early_in_a_new_session() -> None:
    k = run_init()
    assert k.find("dup2") == [(10, 0), (11, 1), (12, 2)]
    assert index(k, "setsid") < index(k, "dup2") < index(k, "mount")
    assert "set_controlling_tty" not in k.names() and "open_pty" not in k.names()


def test_terminal_comes_from_the_containers_devpts() -> None:
    sent: list[int] = []
    cfg = config_from_oci(
        BUNDLE,
        RunSpec(
            args=["sh"],
            env=[],
            hostname="h",
            rootfs_lower=["/l"],
            rootfs_upper="/u",
            rootfs_work="/w",
            terminal=True,
        ).to_oci("c1"),
    )
    k = RecordingKernel()
    init_container(k, cfg, (-1, -1, -1), CONTROLLERS, send_pty=sent.append)
    # After pivot_root, so that the pty belongs to the container's devpts (`tty` says /dev/pts/0).
    i = index(k, "open_pty", "/dev/pts/ptmx")
    assert index(k, "pivot_root") < i
    (master,) = sent  # the master goes to the monitor
    slave = master + 1  # the recording kernel hands out master and slave in a row
    assert k.find("dup2") == [(slave, 0), (slave, 1), (slave, 2)]
    assert ("/dev/pts/0", "/dev/console", None, K.MS_BIND, None) in k.find("mount")
    assert index(k, "setsid") < i < index(k, "set_controlling_tty", 0)


def test_mount_sequence() -> None:
    k = run_init(mounts=[BindMount("/c/hosts", "/etc/hosts", readonly=True)])
    mounts = k.find("mount")
    # / becomes rprivate before anything is mounted, so nothing leaks to the host.
    assert mounts[0] == (None, "/", None, K.MS_REC | K.MS_PRIVATE, None)
    assert mounts[1] == (
        "overlay",
        ROOTFS,
        "overlay",
        0,
        "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work",
    )
    # Every target inside the root is an fd the kernel resolved in the root.
    (root_fd,) = [fd for fd, path in k.fd_paths.items() if path == ROOTFS]
    assert k.find("open_at")[0] == (K.AT_FDCWD, ROOTFS, os.O_PATH | os.O_DIRECTORY, 0)
    resolved = {args[1] for args in k.find("open_in_root") if args[0] == root_fd}
    assert {"/proc", "/dev", "/dev/pts", "/sys", "/etc/hosts"} <= resolved
    by_target = {m[2]: m for m in mounts_at(k) if m[0] == "mount"}
    assert by_target[ROOTFS + "/proc"][3] == "proc"
    assert by_target[ROOTFS + "/dev"][3:5] == ("tmpfs", K.MS_NOSUID | K.MS_STRICTATIME)
    assert by_target[ROOTFS + "/dev"][5] == "mode=755,size=65536k"
    pts = by_target[ROOTFS + "/dev/pts"]
    assert pts[3] == "devpts" and "newinstance" in pts[5] and "ptmxmode=0666" in pts[5]
    sysfs = by_target[ROOTFS + "/sys"]
    assert sysfs[3] == "sysfs" and sysfs[4] & K.MS_RDONLY
    assert by_target[ROOTFS + "/dev/mqueue"][3] == "mqueue"
    assert "size=67108864" in by_target[ROOTFS + "/dev/shm"][5]
    # The bind mount: read-only and rprivate set on the detached copy before it is
    # moved onto the target, so no remount by path follows.
    hosts = [m for m in mounts_at(k) if m[2] == ROOTFS + "/etc/hosts"]
    assert hosts == [
        ("bind", "/c/hosts", ROOTFS + "/etc/hosts", True, K.MOUNT_ATTR_RDONLY,
         K.MS_PRIVATE | K.MS_REC)
    ]  # fmt: skip
    # Everything is mounted before the pivot, and every fd is closed by then.
    assert index(k, "mount_at", "shm") < index(k, "pivot_root")
    assert not k.open_fds


def test_missing_targets_are_created_fd_relative() -> None:
    missing = {ROOTFS + "/data", ROOTFS + "/etc/h"}
    k = run_init(
        RecordingKernel(absent=set(missing), dirs={"/host/dir"}),
        mounts=[BindMount("/host/dir", "/data/a/b"), BindMount("/host/file", "/etc/h")],
    )
    assert not k.open_fds
    # Directories one component at a time, each under an fd resolved in the root.
    made = [(k.path_of(fd), name) for fd, name, _mode in k.find("mkdirat")]
    made = [(parent, name) for parent, name in made if "data" in parent + name]
    assert made == [(ROOTFS, "data"), (ROOTFS + "/data", "a"), (ROOTFS + "/data/a", "b")]
    # A file source gets a file target, created without following a symlink.
    (created,) = [a for a in k.find("open_at") if a[1] == "h"]
    assert k.path_of(created[0]) == ROOTFS + "/etc"
    assert created[2] & (os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW) == (
        os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    )
    binds = {m[2]: m[1] for m in mounts_at(k) if m[0] == "bind"}
    assert binds[ROOTFS + "/data/a/b"] == "/host/dir"
    assert binds[ROOTFS + "/etc/h"] == "/host/file"


def test_cgroup_dirs_are_bound_read_only_into_sys_fs_cgroup() -> None:
    k = run_init()
    target = ROOTFS + "/sys/fs/cgroup"
    mounts = mounts_at(k)
    assert (
        "mount",
        None,
        target,
        None,
        K.MS_REMOUNT | K.MS_RDONLY | K.MS_NOSUID | K.MS_NODEV | K.MS_NOEXEC,
        "mode=755",
    ) in mounts
    ro = K.MOUNT_ATTR_RDONLY | K.MOUNT_ATTR_NOSUID | K.MOUNT_ATTR_NODEV | K.MOUNT_ATTR_NOEXEC
    for controller in CONTROLLERS:
        host = f"/sys/fs/cgroup/{controller}/dockyard/c1"
        assert ("bind", host, f"{target}/{controller}", False, ro, 0) in mounts
    kinds = [(m[3], m[2]) for m in mounts if m[0] == "mount"]
    assert kinds.index(("sysfs", ROOTFS + "/sys")) < kinds.index(("tmpfs", target))
    assert k.find("set_oom_score_adj") == [(0,)]


def test_dev_nodes_and_links() -> None:
    k = run_init()
    nodes = {name: args for fd, name, *args in k.find("mknodat")}
    assert {k.path_of(fd) for fd, *_ in k.find("mknodat")} == {ROOTFS + "/dev"}
    assert nodes["null"] == [K.S_IFCHR | 0o666, 1, 3]
    assert nodes["zero"] == [K.S_IFCHR | 0o666, 1, 5]
    assert set(nodes) == {"null", "zero", "full", "random", "urandom", "tty"}
    links = {name: target for target, _fd, name in k.find("symlinkat")}
    assert links == {
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
        "ptmx": "pts/ptmx",
        # As runc: only where the host kernel has one.
        **({"core": "/proc/kcore"} if os.path.exists("/proc/kcore") else {}),
    }
    # umask 0 while creating nodes, so they get exactly 0666; 022 again for the command.
    assert k.find("umask") == [(0,), (0o022,)]


def test_pivot_root_and_masking() -> None:
    k = run_init()
    i = index(k, "pivot_root")
    assert k.calls[i - 1] == ("chdir", (ROOTFS,))
    assert k.calls[i] == ("pivot_root", (".", "."))
    assert k.calls[i + 1] == ("umount2", (".", K.MNT_DETACH))
    assert k.calls[i + 2] == ("chdir", ("/",))
    after = [args for name, args in k.calls[i:] if name == "mount"]
    assert ("/dev/null", "/proc/kcore", None, K.MS_BIND, None) in after
    assert ("/proc/sys", "/proc/sys", None, K.MS_BIND | K.MS_REC, None) in after
    assert any(a[1] == "/proc/sys" and a[3] & K.MS_RDONLY and a[3] & K.MS_REMOUNT for a in after)
    assert not [a for a in run_init(privileged=True).find("mount") if a[1] == "/proc/kcore"]


def test_masked_directory_gets_a_readonly_tmpfs() -> None:
    class DirAware(RecordingKernel):
        def mount(self, source, target, fstype, flags, data):  # noqa: ANN001
            if source == "/dev/null" and target == "/proc/acpi":
                self.calls.append(("mount", (source, target, fstype, flags, data)))
                from dockyard.errors import KernelError

                raise KernelError("mount", (source, target), errno.ENOTDIR)
            super().mount(source, target, fstype, flags, data)

    k = run_init(DirAware())
    assert ("tmpfs", "/proc/acpi", "tmpfs", K.MS_RDONLY, None) in k.find("mount")


def test_readonly_rootfs_is_remounted_after_pivot() -> None:
    k = run_init(readonly_rootfs=True, cwd="/work")
    i = index(k, "mount", None, "/", None, K.MS_BIND | K.MS_REMOUNT | K.MS_RDONLY)
    assert i > index(k, "pivot_root")
    # The working directory is resolved (and created) in the new root, before it
    # becomes read-only.
    (new_root,) = [fd for fd, path in k.fd_paths.items() if path == "/"]
    assert index(k, "open_in_root", new_root, "/work") < i < index(k, "chdir", "/work")


def test_missing_workdir_is_created_through_the_resolver() -> None:
    k = run_init(RecordingKernel(absent={"/work"}), cwd="/work/sub")
    i = index(k, "pivot_root")
    made = [(j, k.path_of(a[0]), a[1]) for j, (n, a) in enumerate(k.calls) if n == "mkdirat"]
    after_pivot = [(parent, name) for j, parent, name in made if j > i]
    assert after_pivot == [("/", "work"), ("/work", "sub")]
    assert made[-1][0] < index(k, "chdir", "/work/sub")


def test_root_user_capabilities() -> None:
    k = run_init()
    assert k.find("drop_bounding_caps") == [(sorted(DEFAULT_CAPABILITIES),)]
    assert k.find("capset") == [(sorted(DEFAULT_CAPABILITIES), sorted(DEFAULT_CAPABILITIES), [])]
    assert k.find("setgroups") == [([],)]  # the host's supplementary groups are not inherited
    # Seccomp goes on while CAP_SYS_ADMIN is still held, right before the drop.
    assert index(k, "chdir", "/") < index(k, "set_seccomp_filter") < index(k, "drop_bounding_caps")
    assert "set_seccomp_filter" not in run_init(privileged=True).names()
    assert "set_keepcaps" not in k.names()
    assert "clear_ambient_caps" in k.names()
    assert "set_no_new_privs" not in k.names()


def test_non_root_user_keeps_caps_across_setuid_in_order() -> None:
    k = run_init(uid=1000, gid=100, additional_gids=[10, 20], capabilities=["CAP_NET_BIND_SERVICE"])
    order = [
        index(k, "drop_bounding_caps"),
        index(k, "set_keepcaps", True),
        index(k, "setgroups", [10, 20]),
        index(k, "setresgid", 100, 100, 100),
        index(k, "setresuid", 1000, 1000, 1000),
        index(k, "set_keepcaps", False),
        index(k, "capset"),
        index(k, "execve"),
    ]
    assert order == sorted(order)
    assert k.find("capset") == [(["CAP_NET_BIND_SERVICE"], ["CAP_NET_BIND_SERVICE"], [])]


def test_exec_resolves_path_in_container_env() -> None:
    k = run_init(args=["sh", "-c", "true"], env=["PATH=/usr/bin:/bin", "A=b"])
    # The recording kernel's first execve "succeeds".
    assert k.find("execve") == [
        ("/usr/bin/sh", ["sh", "-c", "true"], ["PATH=/usr/bin:/bin", "A=b"])
    ]
    assert k.calls[-1][0] == "execve"
    assert index(k, "reset_signals") < index(k, "execve")


def test_exec_walks_path_and_reports_like_dockerd() -> None:
    k = RecordingKernel(fail={"execve": errno.ENOENT})
    with pytest.raises(RuntimeFailure) as info:
        exec_command(k, ["nosuchcmd"], ["PATH=/a:/b"])
    assert info.value.kind == "not-found"
    assert info.value.message == 'exec: "nosuchcmd": executable file not found in $PATH'
    assert [a[0] for a in k.find("execve")] == ["/a/nosuchcmd", "/b/nosuchcmd"]

    with pytest.raises(RuntimeFailure) as info:
        exec_command(RecordingKernel(fail={"execve": errno.EACCES}), ["/etc/passwd"], [])
    assert (info.value.kind, info.value.message) == (
        "permission",
        'exec: "/etc/passwd": permission denied',
    )

    with pytest.raises(RuntimeFailure) as info:
        exec_command(RecordingKernel(fail={"execve": errno.ENOENT}), ["/nope"], [])
    assert info.value.kind == "not-found"
    assert "no such file or directory" in info.value.message

    with pytest.raises(RuntimeFailure) as info:
        exec_command(RecordingKernel(fail={"execve": errno.ENOEXEC}), ["/bin/x"], [])
    assert info.value.kind == "other"


def test_exec_without_path_uses_default() -> None:
    k = RecordingKernel()
    exec_command(k, ["ls"], ["HOME=/"])
    assert k.find("execve")[0][0] == "/usr/local/sbin/ls"


def test_long_overlay_options_use_relative_paths() -> None:
    lowers = [f"/var/lib/dockyard/layers/{i:064x}/diff" for i in range(50)]
    k = run_init(
        rootfs_lower=lowers,
        rootfs_upper="/var/lib/dockyard/containers/c1/upper",
        rootfs_work="/var/lib/dockyard/containers/c1/work",
    )
    overlay = next(m for m in k.find("mount") if m[2] == "overlay")
    assert len(overlay[4]) < 4096
    assert overlay[4].startswith("lowerdir=layers/")
    assert k.calls[index(k, "mount", "overlay") - 1] == ("chdir", ("/var/lib/dockyard",))


def test_mount_destination_cannot_escape_root() -> None:
    k = run_init(mounts=[BindMount("/c/hosts", "/../../etc/hosts")])
    # ".." is cleaned before the kernel sees the path; the kernel keeps symlinks in.
    assert ("bind", "/c/hosts", ROOTFS + "/etc/hosts") in [m[:3] for m in mounts_at(k)]
    assert all(not a[1].startswith("/..") for a in k.find("open_in_root"))


def test_exec_joins_namespaces_and_cgroups_of_the_target() -> None:
    cfg = config_from_oci(
        BUNDLE,
        RunSpec(
            args=["sh"],
            env=[],
            hostname="h",
            rootfs_lower=["/l"],
            rootfs_upper="/u",
            rootfs_work="/w",
            uid=7,
        ).to_oci("c1"),
    )
    k = RecordingKernel()
    exec_in_container(k, cfg, 4242, (10, 11, 12), CONTROLLERS)
    assert k.find("cgroup_add_pid") == [(c, "dockyard/c1", 0) for c in CONTROLLERS]
    assert k.find("setns") == [
        ("/proc/4242/ns/ipc", K.CLONE_NEWIPC),
        ("/proc/4242/ns/uts", K.CLONE_NEWUTS),
        ("/proc/4242/ns/net", K.CLONE_NEWNET),
        ("/proc/4242/ns/mnt", K.CLONE_NEWNS),
    ]
    # Nothing is created: no unshare, no mount, no pivot.
    assert not {"unshare", "mount", "pivot_root", "mknod"} & set(k.names())
    assert (
        index(k, "setns", "/proc/4242/ns/mnt")
        < index(k, "chdir", "/")
        < index(k, "setresuid", 7, 7, 7)
    )
    assert k.calls[-1][0] == "execve"


def test_very_many_layers_use_the_new_mount_api() -> None:
    lowers = [f"/var/lib/dockyard/layers/{i:064x}/diff" for i in range(125)]
    k = run_init(
        rootfs_lower=lowers,
        rootfs_upper="/var/lib/dockyard/containers/c1/upper",
        rootfs_work="/var/lib/dockyard/containers/c1/work",
    )
    assert not [m for m in k.find("mount") if m[2] == "overlay"]
    assert k.find("mount_overlay") == [
        (
            ROOTFS,
            lowers,
            "/var/lib/dockyard/containers/c1/upper",
            "/var/lib/dockyard/containers/c1/work",
        )
    ]


def test_propagation_of_a_new_filesystem_is_set_on_the_new_mount() -> None:
    oci = RunSpec(
        args=["true"], env=[], hostname="h", rootfs_lower=["/l"], rootfs_upper="/u",
        rootfs_work="/w",
    ).to_oci("c1")  # fmt: skip
    oci["mounts"].append(
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["rslave"]}
    )
    k = RecordingKernel()
    init_container(k, config_from_oci(BUNDLE, oci), (10, 11, 12), CONTROLLERS)
    run = [m for m in mounts_at(k) if m[2] == ROOTFS + "/run"]
    assert run[0][3] == "tmpfs"
    # The propagation change goes to an fd opened after the mount (the root of the
    # tmpfs), not to the one the tmpfs covers.
    assert run[1] == ("mount", None, ROOTFS + "/run", None, K.MS_SLAVE | K.MS_REC, None)
    fds = [a[1] for n, a in k.calls if n == "mount_at" and k.path_of(a[1]) == ROOTFS + "/run"]
    assert fds[0] != fds[1]


def test_without_the_new_mount_api_binds_are_remounted_only_if_still_theirs() -> None:
    # Linux < 5.12 (or a seccomp profile that refuses open_tree/mount_setattr).
    k = run_init(
        RecordingKernel(fail={"bind_mount_at": errno.ENOSYS}),
        mounts=[BindMount("/c/hosts", "/etc/hosts", readonly=True)],
    )
    hosts = [m for m in mounts_at(k) if m[2] == ROOTFS + "/etc/hosts"]
    assert hosts[0][0] == "bind"  # tried first, refused
    assert hosts[1:] == [
        ("mount", "/c/hosts", ROOTFS + "/etc/hosts", None, K.MS_BIND | K.MS_REC, None),
        ("mount", None, ROOTFS + "/etc/hosts", None,
         K.MS_BIND | K.MS_REMOUNT | K.MS_RDONLY, None),
        ("mount", None, ROOTFS + "/etc/hosts", None, K.MS_PRIVATE | K.MS_REC, None),
    ]  # fmt: skip
    fds = [a[1] for n, a in k.calls if n == "mount_at" and k.path_of(a[1]).endswith("/hosts")]
    assert fds[0] != fds[1] == fds[2]  # the remount goes to the path resolved again
    assert not k.open_fds


def test_without_the_new_mount_api_a_redirected_path_is_not_remounted() -> None:
    class Redirected(RecordingKernel):
        def file_identity(self, target: str | int) -> tuple[int, int]:
            return (1, 1) if isinstance(target, int) else (2, 2)  # a racer's directory

    with pytest.raises(RuntimeFailure, match="changed while it was mounted"):
        run_init(
            Redirected(fail={"bind_mount_at": errno.EPERM}),
            mounts=[BindMount("/c/hosts", "/etc/hosts", readonly=True)],
        )


@pytest.mark.parametrize("terminal", [False, True])
def test_only_stdio_crosses_exec(terminal: bool) -> None:
    # The monitor's sockets (and anything else it or the daemon held) must not
    # reach the command: everything above 2 is close-on-exec once stdio and the
    # pty are in place, before seccomp could forbid close_range.
    cfg = config_from_oci(
        BUNDLE,
        RunSpec(
            args=["sh"], env=[], hostname="h", rootfs_lower=["/l"], rootfs_upper="/u", rootfs_work="/w",
            terminal=terminal,
        ).to_oci("c1"),
    )  # fmt: skip
    for k in (run_init(terminal=terminal), RecordingKernel()):
        if not k.calls:
            exec_in_container(k, cfg, 4242, (10, 11, 12), CONTROLLERS)
        assert k.find("mark_cloexec_from") == [(3,)]
        mark = index(k, "mark_cloexec_from")
        assert max(i for i, (n, _) in enumerate(k.calls) if n in ("dup2", "open_pty")) < mark
        assert mark < index(k, "set_seccomp_filter") < index(k, "execve")


def test_domainname_is_set_in_the_uts_namespace() -> None:
    k = run_init(domainname="example.test")
    assert k.find("setdomainname") == [("example.test",)]
    assert index(k, "sethostname", "c1host") < index(k, "setdomainname", "example.test")
    assert run_init().find("setdomainname") == []
