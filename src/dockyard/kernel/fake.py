"""RecordingKernel: records every call in order; touches nothing.

Unit tests run the container init and the monitor's setup against it and
assert which calls happened, in which order, with which flags.
"""

from __future__ import annotations

import errno as E
import os
import posixpath
import socket
from collections.abc import Callable

from dockyard.errors import KernelError
from dockyard.kernel.flags import AT_FDCWD, CAPABILITIES, MS_BIND
from dockyard.kernel.interface import Kernel


class RecordingKernel(Kernel):
    def __init__(
        self,
        *,
        fail: dict[str, int] | None = None,
        dirs: set[str] | None = None,
        absent: set[str] | None = None,
        real_files: bool = False,
    ) -> None:
        # With real_files, the unprivileged calls that resolve and create paths
        # (openat2, openat, mkdirat, readlinkat, close) are recorded and also made,
        # on the real file system: a layer unpacked without root is a real tree,
        # while chown, mknod and xattrs are only recorded.
        self._files: Kernel | None = None
        if real_files:
            from dockyard.kernel.linux import LinuxKernel

            self._files = LinuxKernel()
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self._fail = dict(fail or {})  # call name -> errno to raise (once per matching call)
        self._dirs = dirs if dirs is not None else set()
        # Paths that do not exist (everything else does) until mkdirat/open_at(O_CREAT).
        self.absent = set(absent or ())
        self.fd_paths: dict[int, str] = {}  # every fd handed out -> the path it names
        self.open_fds: set[int] = set()
        self._fresh: set[str] = set()  # where a new (empty) filesystem was mounted
        self._created: set[str] = set()
        # path -> the path whose file it is (a mount of that source covers it)
        self.identities: dict[str, str] = {}
        self._next_pid = 1000
        self._next_fd = 100
        self._umask = 0o022
        # A model of the network state, so drivers can be tested for what they leave.
        self.netns: set[str] = set()
        self.links: dict[str | None, dict[str, dict[str, object]]] = {None: {}}
        self.addrs: dict[str | None, list[tuple[str, str]]] = {None: []}
        self.routes: dict[str | None, list[str]] = {None: []}
        self.firewall: list[str] = []  # every iptables-restore input applied, in order
        self.sysctls: dict[str, str] = {}
        self.reserved: dict[int, tuple[str, str, int]] = {}
        self.taken_ports: set[tuple[str, int]] = set()  # (proto, port) held by others
        self.locks_held_elsewhere = False  # try_lock finds every lock taken
        self._next_port = 49153

    def _rec(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        errno = self._fail.get(name)
        if errno is not None:
            raise KernelError(name, args, errno)

    def _new_fd(self, path: str) -> int:
        self._next_fd += 1
        self.fd_paths[self._next_fd] = path
        self.open_fds.add(self._next_fd)
        return self._next_fd

    def _missing(self, path: str) -> bool:
        if path in self._created:
            return False
        if any(path.startswith(p.rstrip("/") + "/") for p in self._fresh):
            return True  # below a filesystem mounted here: empty until created
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.absent)

    def path_of(self, fd: int) -> str:
        return self.fd_paths.get(fd, f"<fd {fd}>")

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def find(self, name: str) -> list[tuple[object, ...]]:
        return [args for n, args in self.calls if n == name]

    # --- namespaces
    def unshare(self, flags: int) -> None:
        self._rec("unshare", flags)

    def setns(self, path: str, nstype: int) -> None:
        self._rec("setns", path, nstype)

    def sethostname(self, name: str) -> None:
        self._rec("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._rec("setdomainname", name)

    def bring_loopback_up(self) -> None:
        self._rec("bring_loopback_up")

    def listen_in_netns(
        self, netns_path: str, address: str, port: int
    ) -> tuple[socket.socket, socket.socket]:
        # Real sockets on an ephemeral loopback port of this namespace, so that a
        # server on them can be exercised without root.
        self._rec("listen_in_netns", netns_path, address, port)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        tcp.listen(8)
        return udp, tcp

    # --- mounts and files
    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        self._rec("mount", source, target, fstype, flags, data)

    def mount_overlay(self, target: str, lowerdirs: list[str], upperdir: str, workdir: str) -> None:
        self._rec("mount_overlay", target, list(lowerdirs), upperdir, workdir)

    def umount2(self, target: str, flags: int) -> None:
        self._rec("umount2", target, flags)

    def mount_at(
        self, source: str | None, target_fd: int, fstype: str | None, flags: int, data: str | None
    ) -> None:
        self._rec("mount_at", source, target_fd, fstype, flags, data)
        if fstype:
            self._fresh.add(self.path_of(target_fd))
        elif source and flags & MS_BIND:
            self.identities[self.path_of(target_fd)] = source

    def bind_mount_at(
        self, source: str, target_fd: int, recursive: bool, attrs: int, propagation: int
    ) -> None:
        self._rec("bind_mount_at", source, target_fd, recursive, attrs, propagation)

    def clone_mount_from_ns(self, mnt_ns: str, path: str) -> int:
        self._rec("clone_mount_from_ns", mnt_ns, path)
        return self._new_fd(f"<tree {mnt_ns}:{path}>")

    def move_mount_fd(self, tree_fd: int, target_fd: int) -> None:
        self._rec("move_mount_fd", tree_fd, target_fd)

    def open_in_root(self, root_fd: int, path: str, flags: int) -> int:
        self._rec("open_in_root", root_fd, path, flags)
        if self._files is not None:
            return self._files.open_in_root(root_fd, path, flags)
        # Lexical here: the fake has no symlinks; the real kernel resolves them.
        full = posixpath.normpath(self.path_of(root_fd) + "/" + posixpath.normpath("/" + path))
        if self._missing(full):
            raise KernelError("openat2", (root_fd, path), E.ENOENT)
        return self._new_fd(full)

    def open_at(self, dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
        self._rec("open_at", dir_fd, path, flags, mode)
        if self._files is not None:
            return self._files.open_at(dir_fd, path, flags, mode)
        full = path if dir_fd == AT_FDCWD else posixpath.join(self.path_of(dir_fd), path)
        if self._missing(full):
            if not flags & os.O_CREAT:
                raise KernelError("openat", (dir_fd, path), E.ENOENT)
            self._created.add(full)
        elif flags & os.O_EXCL:
            raise KernelError("openat", (dir_fd, path), E.EEXIST)
        return self._new_fd(full)

    def mkdirat(self, dir_fd: int, name: str, mode: int) -> None:
        self._rec("mkdirat", dir_fd, name, mode)
        if self._files is not None:
            return self._files.mkdirat(dir_fd, name, mode)
        full = posixpath.join(self.path_of(dir_fd), name)
        if not self._missing(full):
            raise KernelError("mkdirat", (dir_fd, name), E.EEXIST)
        self._created.add(full)
        self._dirs.add(full)

    def readlinkat(self, dir_fd: int, name: str) -> str:
        self._rec("readlinkat", dir_fd, name)
        if self._files is not None:
            return self._files.readlinkat(dir_fd, name)
        raise KernelError("readlinkat", (dir_fd, name), E.EINVAL)  # no symlinks here

    def mknodat(self, dir_fd: int, name: str, mode: int, major: int, minor: int) -> None:
        # A real directory's fd (an unpacker's) is recorded as its path: it is closed
        # by the time a test looks.
        where: int | str = dir_fd if dir_fd in self.fd_paths else self._real_path(dir_fd)
        self._rec("mknodat", where, name, mode, major, minor)
        if self._files is not None:
            # The node itself where this user may make it (an overlay whiteout, 0:0,
            # on Linux >= 5.8), else an empty file in its place: the tree stays
            # complete for the plain file calls that follow (chmod, utime).
            try:
                os.mknod(name, mode, os.makedev(major, minor), dir_fd=dir_fd)
            except PermissionError:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd))

    def symlinkat(self, target: str, dir_fd: int, name: str) -> None:
        self._rec("symlinkat", target, dir_fd, name)

    def close(self, fd: int) -> None:
        self._rec("close", fd)
        if self._files is not None:
            return self._files.close(fd)
        self.open_fds.discard(fd)

    def _real_path(self, fd: int) -> str:
        """The path of an fd: one of ours, else a real one (an unpacker's directory)."""
        if fd in self.fd_paths:
            return self.fd_paths[fd]
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return f"<fd {fd}>"

    # Recorded with the paths they act on, so an unpacking test without root can
    # assert who would own what and which xattrs were set.
    def fchown(self, fd: int, uid: int, gid: int) -> None:
        self._rec("fchown", self._real_path(fd), uid, gid)

    def syncfs(self, fd: int) -> None:
        self._rec("syncfs", self._real_path(fd))

    def lchownat(self, dir_fd: int, name: str, uid: int, gid: int) -> None:
        self._rec("lchownat", posixpath.join(self._real_path(dir_fd), name), uid, gid)

    def setxattr(self, target: int | str, name: str, value: bytes, follow: bool = True) -> None:
        path = self._real_path(target) if isinstance(target, int) else target
        if path.startswith("/proc/self/fd/"):  # <dir fd>/<name>, as an unpacker names a link
            fd, _, rest = path[len("/proc/self/fd/") :].partition("/")
            path = posixpath.join(self._real_path(int(fd)), rest)
        self._rec("setxattr", path, name, value, follow)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._rec("pivot_root", new_root, put_old)

    def create_file(self, path: str, mode: int = 0o644) -> None:
        self._rec("create_file", path, mode)

    def is_dir(self, path: str) -> bool:
        return path in self._dirs

    def file_identity(self, target: str | int) -> tuple[int, int]:
        # Same path, same file: an fd names the path it was opened for.
        path = self.path_of(target) if isinstance(target, int) else target
        return 0, hash(self.identities.get(path, path))

    def chdir(self, path: str) -> None:
        self._rec("chdir", path)

    def umask(self, mask: int) -> int:
        self._rec("umask", mask)
        old, self._umask = self._umask, mask
        return old

    # --- credentials and capabilities
    def setgroups(self, gids: list[int]) -> None:
        self._rec("setgroups", list(gids))

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        self._rec("setresgid", rgid, egid, sgid)

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        self._rec("setresuid", ruid, euid, suid)

    def cap_last(self) -> int:
        return 40

    def permitted_caps(self) -> list[str]:
        return list(CAPABILITIES)

    def drop_bounding_caps(self, keep: list[str]) -> None:
        self._rec("drop_bounding_caps", sorted(keep))

    def capset(self, effective: list[str], permitted: list[str], inheritable: list[str]) -> None:
        self._rec("capset", sorted(effective), sorted(permitted), sorted(inheritable))

    def clear_ambient_caps(self) -> None:
        self._rec("clear_ambient_caps")

    def set_keepcaps(self, keep: bool) -> None:
        self._rec("set_keepcaps", keep)

    def set_no_new_privs(self) -> None:
        self._rec("set_no_new_privs")

    def set_seccomp_filter(self, program: bytes) -> None:
        self._rec("set_seccomp_filter", len(program) // 8)

    def set_pdeathsig(self, signum: int) -> None:
        self._rec("set_pdeathsig", signum)

    def set_child_subreaper(self) -> None:
        self._rec("set_child_subreaper")

    # --- cgroups
    def cgroup_dir(self, controller: str, path: str) -> str:
        return f"/sys/fs/cgroup/{controller}/{path}"

    def cgroup_create(self, controller: str, path: str) -> None:
        self._rec("cgroup_create", controller, path)

    def cgroup_write(self, controller: str, path: str, name: str, value: str) -> None:
        self._rec("cgroup_write", controller, path, name, value)

    def cgroup_read(self, controller: str, path: str, name: str) -> str:
        self._rec("cgroup_read", controller, path, name)
        return (
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n" if name == "memory.oom_control" else ""
        )

    def cgroup_has(self, controller: str, path: str, name: str) -> bool:
        return True

    def cgroup_add_pid(self, controller: str, path: str, pid: int) -> None:
        self._rec("cgroup_add_pid", controller, path, pid)

    def cgroup_remove(self, controller: str, path: str, timeout: float = 2.0) -> None:
        self._rec("cgroup_remove", controller, path)

    def cgroup_attach_device_filter(self, controller: str, path: str, program: bytes) -> None:
        self._rec("cgroup_attach_device_filter", controller, path, len(program) // 8)

    # --- processes
    def fork(self) -> int:
        self._rec("fork")
        self._next_pid += 1
        return self._next_pid

    def execve(self, path: str, args: list[str], env: list[str]) -> None:
        self._rec("execve", path, list(args), list(env))

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        self._rec("waitpid", pid, options)
        return pid, 0

    def kill(self, pid: int, signum: int) -> None:
        self._rec("kill", pid, signum)

    def pidfd_open(self, pid: int) -> int:
        self._rec("pidfd_open", pid)
        self._next_fd += 1
        return self._next_fd

    def setsid(self) -> int:
        self._rec("setsid")
        return 1

    def set_oom_score_adj(self, value: int) -> None:
        self._rec("set_oom_score_adj", value)

    def set_rlimit(self, name: str, soft: int, hard: int) -> None:
        self._rec("set_rlimit", name, soft, hard)

    def write_sysctl(self, name: str, value: str) -> None:
        self._rec("write_sysctl", name, value)

    def set_signal_handler(self, signum: int, handler: Callable[[int, object], None]) -> None:
        self._rec("set_signal_handler", signum)

    def reset_signals(self, signums: list[int]) -> None:
        self._rec("reset_signals", sorted(signums))

    def exit(self, code: int) -> None:
        self._rec("exit", code)

    # --- fds and terminals
    def dup2(self, fd: int, fd2: int) -> None:
        self._rec("dup2", fd, fd2)

    def mark_cloexec_from(self, first: int) -> None:
        self._rec("mark_cloexec_from", first)

    def open_pty(self, ptmx: str) -> tuple[int, int, str]:
        self._rec("open_pty", ptmx)
        self._next_fd += 2
        return self._next_fd - 1, self._next_fd, ptmx.rsplit("/", 1)[0] + "/0"

    def set_controlling_tty(self, fd: int) -> None:
        self._rec("set_controlling_tty", fd)

    def set_winsize(self, fd: int, rows: int, cols: int) -> None:
        self._rec("set_winsize", fd, rows, cols)

    # --- networking
    def _ns(self, netns: str | None) -> dict[str, dict[str, object]]:
        if netns is not None and netns not in self.netns:
            raise KernelError("setns", (netns,), 2)
        return self.links.setdefault(netns, {})

    def netns_create(self, path: str) -> None:
        self._rec("netns_create", path)
        if path in self.netns:
            raise KernelError("open", (path,), 17)
        self.netns.add(path)
        self.links[path] = {"lo": {"up": True}}
        self.addrs[path] = [("lo", "127.0.0.1/8")]
        self.routes[path] = []

    def netns_delete(self, path: str) -> None:
        self._rec("netns_delete", path)
        if path not in self.netns:
            return
        self.netns.discard(path)
        # The namespace dies with its last user: veth peers outside go with it.
        for name, link in list(self.links.pop(path, {}).items()):
            peer = link.get("peer")
            if peer is not None:
                self.links[None].pop(str(peer), None)
                self.addrs[None] = [a for a in self.addrs[None] if a[0] != peer]
            del name
        self.addrs.pop(path, None)
        self.routes.pop(path, None)

    def link_names(self, netns: str | None = None) -> list[str]:
        return list(self._ns(netns))

    def bridge_create(self, name: str, mtu: int = 1500) -> None:
        self._rec("bridge_create", name, mtu)
        if name in self.links[None]:
            raise KernelError("bridge_create", (name,), 17)
        self.links[None][name] = {"kind": "bridge", "mtu": mtu, "up": False}

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
        self._rec("veth_create", host_name, peer_name, peer_netns, mtu, master, peer_mac)
        inner = self._ns(peer_netns)
        if host_name in self.links[None] or peer_name in inner:
            raise KernelError("veth_create", (host_name, peer_name), 17)
        if master is not None and master not in self.links[None]:
            raise KernelError("veth_create", (master,), 19)
        self.links[None][host_name] = {
            "kind": "veth",
            "mtu": mtu,
            "up": master is not None,
            "master": master,
        }
        inner[peer_name] = {
            "kind": "veth",
            "mtu": mtu,
            "up": False,
            "peer": host_name,
            "mac": peer_mac,
        }

    def link_delete(self, name: str, netns: str | None = None) -> None:
        self._rec("link_delete", name, netns)
        links = self._ns(netns)
        link = links.pop(name, None)
        self.addrs[netns] = [a for a in self.addrs.get(netns, []) if a[0] != name]
        if link is None:
            return
        for other in self.links.values():
            for peer_name, peer in list(other.items()):
                if peer.get("peer") == name:
                    del other[peer_name]

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
        self._rec("link_set", name, netns, up, mac, mtu, master, to_netns, hairpin)
        links = self._ns(netns)
        if name not in links:
            raise KernelError("link_set", (name,), 19)
        link = links[name]
        for key, value in (
            ("up", up),
            ("mac", mac),
            ("mtu", mtu),
            ("master", master),
            ("hairpin", hairpin),
        ):
            if value is not None:
                link[key] = value
        if to_netns is not None:
            self._ns(to_netns)[name] = links.pop(name)

    def addr_add(self, ifname: str, cidr: str, netns: str | None = None) -> None:
        self._rec("addr_add", ifname, cidr, netns)
        if ifname not in self._ns(netns):
            raise KernelError("addr_add", (ifname,), 19)
        self.addrs.setdefault(netns, []).append((ifname, cidr))

    def addr_list(self, netns: str | None = None) -> list[tuple[str, str]]:
        self._ns(netns)
        return list(self.addrs.get(netns, []))

    def route_add(self, dst: str, gateway: str, netns: str | None = None) -> None:
        self._rec("route_add", dst, gateway, netns)
        self._ns(netns)
        self.routes.setdefault(netns, []).append("0.0.0.0/0" if dst == "default" else dst)

    def route_list(self, netns: str | None = None) -> list[str]:
        self._ns(netns)
        return list(self.routes.get(netns, []))

    def sysctl_write(self, key: str, value: str) -> None:
        self._rec("sysctl_write", key, value)
        self.sysctls[key] = value

    def firewall_apply(self, rules: str) -> None:
        self._rec("firewall_apply", rules)
        self.firewall.append(rules)

    def firewall_list(self, table: str) -> list[str]:
        return []

    def port_reserve(self, proto: str, host_ip: str, port: int) -> int:
        self._rec("port_reserve", proto, host_ip, port)
        if port == 0:
            port = self._next_port
            self._next_port += 1
        held = {(p, hp) for p, _, hp in self.reserved.values()} | self.taken_ports
        if (proto, port) in held:
            raise KernelError("bind", (proto, host_ip, port), 98)
        self._next_fd += 1
        self.reserved[self._next_fd] = (proto, host_ip, port)
        return self._next_fd

    def port_of(self, fd: int) -> int:
        return self.reserved[fd][2]

    def close_fd(self, fd: int) -> None:
        self._rec("close_fd", fd)
        self.reserved.pop(fd, None)

    def lock_file(self, path: str) -> int:
        self._rec("lock_file", path)
        self._next_fd += 1
        return self._next_fd

    def try_lock(self, fd: int) -> bool:
        self._rec("try_lock", fd)
        return not self.locks_held_elsewhere
