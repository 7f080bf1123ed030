"""The Kernel interface: every system call the runtime makes, in one place.

Three implementations: `LinuxKernel` (the real thing), `RecordingKernel`
(unit tests without root) and `TracingKernel` (times calls of another kernel
for the container's start trace).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable


class Kernel(ABC):
    # --- namespaces -------------------------------------------------------
    @abstractmethod
    def unshare(self, flags: int) -> None: ...

    @abstractmethod
    def setns(self, path: str, nstype: int) -> None:
        """Join the namespace file at `path` (e.g. /run/netns/x)."""

    @abstractmethod
    def sethostname(self, name: str) -> None: ...

    @abstractmethod
    def setdomainname(self, name: str) -> None: ...

    @abstractmethod
    def bring_loopback_up(self) -> None:
        """SIOCSIFFLAGS IFF_UP on "lo" in the current network namespace."""

    @abstractmethod
    def listen_in_netns(
        self, netns_path: str, address: str, port: int
    ) -> tuple[socket.socket, socket.socket]:
        """A UDP and a listening TCP socket bound to address:port inside the network
        namespace at `netns_path` (with its loopback up). A socket keeps the namespace
        it was created in, so the caller serves it from its own namespace."""

    # --- mounts and files inside the container's root ---------------------
    @abstractmethod
    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None: ...

    @abstractmethod
    def mount_overlay(self, target: str, lowerdirs: list[str], upperdir: str, workdir: str) -> None:
        """An overlay through the new mount API (fsopen/fsconfig "lowerdir+"/fsmount/
        move_mount, Linux >= 6.8): no one-page limit on the layer list."""

    @abstractmethod
    def umount2(self, target: str, flags: int) -> None: ...

    @abstractmethod
    def mount_at(
        self, source: str | None, target_fd: int, fstype: str | None, flags: int, data: str | None
    ) -> None:
        """mount(2) onto the place an O_PATH fd names (through /proc/self/fd/N): the
        target is what was resolved, whatever the path says by now."""

    @abstractmethod
    def bind_mount_at(
        self, source: str, target_fd: int, recursive: bool, attrs: int, propagation: int
    ) -> None:
        """open_tree(OPEN_TREE_CLONE) of `source`, mount_setattr (MOUNT_ATTR_* `attrs` on
        the top mount; `propagation` MS_PRIVATE etc., on all with MS_REC), move_mount
        onto `target_fd`: the options hold before the mount is visible, with no
        remount by path."""

    @abstractmethod
    def clone_mount_from_ns(self, mnt_ns: str, path: str) -> int:
        """A detached copy (open_tree OPEN_TREE_CLONE) of the mount at `path` in another
        mount namespace (`mnt_ns`, e.g. /proc/PID/ns/mnt): setns there and back. The
        kernel binds nothing across namespaces otherwise. Returns the tree's fd."""

    @abstractmethod
    def move_mount_fd(self, tree_fd: int, target_fd: int) -> None:
        """move_mount(2) a detached tree onto the place an O_PATH fd names."""

    @abstractmethod
    def open_in_root(self, root_fd: int, path: str, flags: int) -> int:
        """openat2(root_fd, path, flags|O_CLOEXEC, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS):
        symlinks and ".." are resolved by the kernel as if root_fd were /.
        KernelError ENOSYS where openat2 is missing (Linux < 5.6)."""

    @abstractmethod
    def open_at(self, dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
        """openat(2) with O_CLOEXEC; dir_fd may be AT_FDCWD."""

    @abstractmethod
    def mkdirat(self, dir_fd: int, name: str, mode: int) -> None: ...

    @abstractmethod
    def readlinkat(self, dir_fd: int, name: str) -> str:
        """The target of a symlink; name "" reads the symlink an O_PATH fd names."""

    @abstractmethod
    def mknodat(self, dir_fd: int, name: str, mode: int, major: int, minor: int) -> None: ...

    @abstractmethod
    def symlinkat(self, target: str, dir_fd: int, name: str) -> None:
        """No error if `name` exists."""

    @abstractmethod
    def close(self, fd: int) -> None: ...

    # --- the privileged file operations of unpacking a layer ---------------
    @abstractmethod
    def fchown(self, fd: int, uid: int, gid: int) -> None: ...

    @abstractmethod
    def lchownat(self, dir_fd: int, name: str, uid: int, gid: int) -> None:
        """fchownat(AT_SYMLINK_NOFOLLOW): the entry itself, never what a symlink names."""

    @abstractmethod
    def setxattr(self, target: int | str, name: str, value: bytes, follow: bool = True) -> None:
        """fsetxattr on an fd; on a path, setxattr (lsetxattr when not `follow`)."""

    @abstractmethod
    def syncfs(self, fd: int) -> None:
        """Flush the file system holding `fd` (not every mounted one, as sync does)."""

    @abstractmethod
    def pivot_root(self, new_root: str, put_old: str) -> None: ...

    @abstractmethod
    def create_file(self, path: str, mode: int = 0o644) -> None:
        """Create an empty file if missing (a bind-mount target)."""

    @abstractmethod
    def is_dir(self, path: str) -> bool: ...

    @abstractmethod
    def file_identity(self, target: str | int) -> tuple[int, int]:
        """(st_dev, st_ino) of a path (symlinks followed) or of an fd."""

    @abstractmethod
    def chdir(self, path: str) -> None: ...

    @abstractmethod
    def umask(self, mask: int) -> int: ...

    # --- credentials and capabilities --------------------------------------
    @abstractmethod
    def setgroups(self, gids: list[int]) -> None: ...

    @abstractmethod
    def setresgid(self, rgid: int, egid: int, sgid: int) -> None: ...

    @abstractmethod
    def setresuid(self, ruid: int, euid: int, suid: int) -> None: ...

    @abstractmethod
    def cap_last(self) -> int:
        """Highest capability number this kernel knows."""

    @abstractmethod
    def permitted_caps(self) -> list[str]:
        """Names of the capabilities this process holds (capget permitted set)."""

    @abstractmethod
    def drop_bounding_caps(self, keep: list[str]) -> None:
        """PR_CAPBSET_DROP every capability not in `keep`."""

    @abstractmethod
    def capset(
        self, effective: list[str], permitted: list[str], inheritable: list[str]
    ) -> None: ...

    @abstractmethod
    def clear_ambient_caps(self) -> None: ...

    @abstractmethod
    def set_keepcaps(self, keep: bool) -> None: ...

    @abstractmethod
    def set_no_new_privs(self) -> None: ...

    @abstractmethod
    def set_seccomp_filter(self, program: bytes) -> None:
        """Install a classic BPF seccomp filter (struct sock_filter[] bytes)."""

    @abstractmethod
    def set_pdeathsig(self, signum: int) -> None: ...

    @abstractmethod
    def set_child_subreaper(self) -> None:
        """PR_SET_CHILD_SUBREAPER: orphaned descendants (an init that runc started
        and left) are re-parented to this process, which can then wait for them."""

    # --- cgroups (v1: one hierarchy per controller) ------------------------
    @abstractmethod
    def cgroup_dir(self, controller: str, path: str) -> str:
        """The host path of a cgroup directory (for bind-mounting it into the container)."""

    @abstractmethod
    def cgroup_create(self, controller: str, path: str) -> None:
        """mkdir /sys/fs/cgroup/<controller>/<path> (parents too)."""

    @abstractmethod
    def cgroup_write(self, controller: str, path: str, name: str, value: str) -> None: ...

    @abstractmethod
    def cgroup_read(self, controller: str, path: str, name: str) -> str: ...

    @abstractmethod
    def cgroup_has(self, controller: str, path: str, name: str) -> bool:
        """Whether the control file exists (e.g. memory.memsw.* needs swapaccount)."""

    @abstractmethod
    def cgroup_add_pid(self, controller: str, path: str, pid: int) -> None:
        """Write pid to cgroup.procs; 0 means the calling process."""

    @abstractmethod
    def cgroup_remove(self, controller: str, path: str, timeout: float = 2.0) -> None:
        """rmdir, retrying on EBUSY while the last tasks are released."""

    @abstractmethod
    def cgroup_attach_device_filter(self, controller: str, path: str, program: bytes) -> None:
        """cgroup v2's device rules: BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE
        program (8-byte instructions), BPF_PROG_ATTACH to the cgroup directory."""

    # --- processes -----------------------------------------------------------
    @abstractmethod
    def fork(self) -> int: ...

    @abstractmethod
    def execve(self, path: str, args: list[str], env: list[str]) -> None:
        """Replaces the process; returns only on a recording kernel."""

    @abstractmethod
    def waitpid(self, pid: int, options: int) -> tuple[int, int]: ...

    @abstractmethod
    def kill(self, pid: int, signum: int) -> None: ...

    @abstractmethod
    def pidfd_open(self, pid: int) -> int: ...

    @abstractmethod
    def setsid(self) -> int: ...

    @abstractmethod
    def set_oom_score_adj(self, value: int) -> None: ...

    @abstractmethod
    def set_rlimit(self, name: str, soft: int, hard: int) -> None:
        """setrlimit(2) by OCI name (RLIMIT_NOFILE...); -1 is RLIM_INFINITY."""

    @abstractmethod
    def write_sysctl(self, name: str, value: str) -> None:
        """Write /proc/sys/<name with dots as slashes> (of this process's namespaces)."""

    @abstractmethod
    def set_signal_handler(self, signum: int, handler: Callable[[int, object], None]) -> None: ...

    @abstractmethod
    def reset_signals(self, signums: list[int]) -> None:
        """Restore SIG_DFL (ignored signals survive execve otherwise)."""

    @abstractmethod
    def exit(self, code: int) -> None:
        """_exit(2): leave without running Python cleanup (after fork)."""

    # --- file descriptors and terminals --------------------------------------
    @abstractmethod
    def dup2(self, fd: int, fd2: int) -> None: ...

    @abstractmethod
    def mark_cloexec_from(self, first: int) -> None:
        """close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every fd >= first closes at execve."""

    @abstractmethod
    def open_pty(self, ptmx: str) -> tuple[int, int, str]:
        """A new pty from the devpts instance of `ptmx`: (master, slave, slave path)."""

    @abstractmethod
    def set_controlling_tty(self, fd: int) -> None:
        """ioctl TIOCSCTTY."""

    @abstractmethod
    def set_winsize(self, fd: int, rows: int, cols: int) -> None:
        """ioctl TIOCSWINSZ."""

    # --- networking: namespaces, links, addresses, routes, firewall ----------
    # A `netns` argument is the path of a bind-mounted network namespace file
    # (e.g. <data-root>/run/netns/<id>); None means the daemon's own namespace.

    @abstractmethod
    def netns_create(self, path: str) -> None:
        """A new network namespace with "lo" up, kept alive by a bind mount of its
        nsfs file at `path` (created), as `ip netns add` does."""

    @abstractmethod
    def netns_delete(self, path: str) -> None:
        """Unmount (lazily) and unlink `path`; the namespace and the interfaces in it
        (a veth's peer too) go when its last user leaves. No error if absent."""

    @abstractmethod
    def link_names(self, netns: str | None = None) -> list[str]:
        """Names of the network interfaces in a namespace."""

    @abstractmethod
    def bridge_create(self, name: str, mtu: int = 1500) -> None:
        """A Linux bridge, down, no address (EEXIST if the name is taken)."""

    @abstractmethod
    def veth_create(
        self,
        host_name: str,
        peer_name: str,
        peer_netns: str,
        mtu: int = 1500,
        *,
        master: str | None = None,
        peer_mac: str | None = None,
    ) -> None:
        """A veth pair: `host_name` in the daemon's namespace, `peer_name` created
        directly inside the namespace file `peer_netns` (with `peer_mac`, down). With
        `master`, the host end is enslaved to that bridge and up, in the same request."""

    @abstractmethod
    def link_delete(self, name: str, netns: str | None = None) -> None:
        """Delete an interface (both ends of a veth). No error if absent."""

    @abstractmethod
    def link_set(
        self,
        name: str,
        *,
        netns: str | None = None,
        up: bool | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        master: str | None = None,
        to_netns: str | None = None,
        hairpin: bool | None = None,
    ) -> None:
        """Change an interface: state, MAC, MTU, bridge master, or move it into the
        namespace file `to_netns`; `hairpin`: as a bridge port, may a frame leave by
        the port it came in (a container reaching itself through a published port)."""

    @abstractmethod
    def addr_add(self, ifname: str, cidr: str, netns: str | None = None) -> None:
        """Add an IPv4 address ("10.0.0.2/24") with its broadcast address."""

    @abstractmethod
    def addr_list(self, netns: str | None = None) -> list[tuple[str, str]]:
        """(interface, "a.b.c.d/len") of every IPv4 address in a namespace."""

    @abstractmethod
    def route_add(self, dst: str, gateway: str, netns: str | None = None) -> None:
        """A route in the main table; `dst` "default" or a CIDR."""

    @abstractmethod
    def route_list(self, netns: str | None = None) -> list[str]:
        """Destinations (CIDR; "0.0.0.0/0" for default) of the main table's IPv4 routes."""

    @abstractmethod
    def sysctl_write(self, key: str, value: str) -> None:
        """Write /proc/sys/<key with dots as slashes> in the daemon's namespace."""

    @abstractmethod
    def firewall_apply(self, rules: str) -> None:
        """Apply iptables-restore input without flushing what is not named in it
        (`iptables-restore --noflush --wait`): atomic per table."""

    @abstractmethod
    def firewall_list(self, table: str) -> list[str]:
        """`iptables -t <table> -S`: the table's chains and rules as command lines."""

    @abstractmethod
    def port_reserve(self, proto: str, host_ip: str, port: int) -> int:
        """Bind (without listening) a socket on host_ip:port (port 0: a free ephemeral
        one) so that no other program can take the port while a container publishes
        it; returns the fd (its port from `port_of`). EADDRINUSE if taken."""

    @abstractmethod
    def port_of(self, fd: int) -> int:
        """The local port a reserved socket is bound to."""

    @abstractmethod
    def close_fd(self, fd: int) -> None: ...

    @abstractmethod
    def lock_file(self, path: str) -> int:
        """flock(LOCK_EX) on `path` (created 0600), waiting for it; returns the fd,
        whose close_fd releases the lock."""

    @abstractmethod
    def try_lock(self, fd: int) -> bool:
        """flock(LOCK_EX | LOCK_NB) on an open fd (a file or a directory): False if
        another open file holds it; held until every fd of this open file is closed."""
