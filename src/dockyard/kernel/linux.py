"""LinuxKernel: the Kernel interface on the real kernel, via os and libc (_ctypes)."""

from __future__ import annotations

# The C module behind signal (signal's and socket's enums cost `dockyard-runtime
# run`, a whole process per container, ~3 ms; no socket module at all here since
# bring_loopback_up calls libc), suppress rather than contextlib, and libc rather
# than ctypes, fcntl, struct and resource (~2 ms more).
import _signal as signal
import errno
import os
import sys
import time

from dockyard.errors import KernelError
from dockyard.kernel import libc
from dockyard.kernel.flags import (
    AT_FDCWD,
    CAPABILITIES,
    CLONE_NEWNET,
    CLONE_NEWNS,
    MS_REC,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RLIMITS,
    cap_number,
)
from dockyard.kernel.interface import Kernel
from dockyard.kernel.linux_net import LinuxNetworking
from dockyard.suppress import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}[os.uname().machine]
_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_MOVE_MOUNT = 430, 431, 432, 429  # same on all arches
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 1
_MOVE_MOUNT_F_EMPTY_PATH = 4
_SYS_OPEN_TREE, _SYS_OPENAT2, _SYS_MOUNT_SETATTR = 428, 437, 442  # same on all arches
_OPEN_TREE_CLONE = 1
_AT_RECURSIVE = 0x8000
_AT_EMPTY_PATH = 0x1000
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_OPENAT2_RETRIES = 64  # EAGAIN: a rename raced with a ".." lookup; the kernel asks to retry
_SYS_CLOSE_RANGE = 436  # same on all arches
_SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_BPF_PROG_TYPE_CGROUP_DEVICE, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI = 15, 6, 2
_BPF_ATTR_SIZE = 128  # bytes past what this kernel knows must be zero, and are
_CLOSE_RANGE_CLOEXEC = 1 << 2
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90}[os.uname().machine]
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}[os.uname().machine]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_KEEPCAPS = 8
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_AF_INET = 2
_SOCK_DGRAM = 2
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_TIOCSCTTY = 0x540E
_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441
_TIOCSWINSZ = 0x5414

CGROUP_ROOT = "/sys/fs/cgroup"
# Where the cgroup filesystem is mounted, if not at CGROUP_ROOT: e.g. a cgroup2
# mount of its own, to run containers on cgroup v2 on a host whose v1 hierarchies
# hold the controllers (tests/integration/test_cgroups_v2_container.py).
CGROUP_ROOT_ENV = "DOCKYARD_CGROUP_ROOT"


# The kernel's structures, built as bytes in this machine's byte order:
# struct __user_cap_header_struct {u32 version; int pid}, then two
# struct __user_cap_data_struct {u32 effective, permitted, inheritable}.
_CAP_HEADER = libc.cbytes(_LINUX_CAPABILITY_VERSION_3, 4) + bytes(4)
_CAP_DATA_SIZE = 2 * 12


def _open_how(flags: int, mode: int, resolve: int) -> bytes:
    """struct open_how {u64 flags, mode, resolve} (openat2)."""
    return libc.cbytes(flags, 8) + libc.cbytes(mode, 8) + libc.cbytes(resolve, 8)


def _mount_attr(attr_set: int, propagation: int) -> bytes:
    """struct mount_attr {u64 attr_set, attr_clr, propagation, userns_fd}."""
    return libc.cbytes(attr_set, 8) + bytes(8) + libc.cbytes(propagation, 8) + bytes(8)


def _ifreq_flags(name: bytes, flags: int) -> bytes:
    """struct ifreq with ifr_flags: the name in 16 bytes, a short, padding to 40."""
    return name.ljust(16, b"\0") + libc.cbytes(flags, 2) + bytes(22)


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def _check(ret: int, syscall: str, *args: object) -> int:
    if ret < 0:
        raise KernelError(syscall, args, libc.get_errno())
    return ret


def _oserror(syscall: str, args: tuple[object, ...], exc: OSError) -> KernelError:
    return KernelError(syscall, args, exc.errno or errno.EIO)


def _cap_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


class LinuxKernel(LinuxNetworking, Kernel):
    def __init__(self, cgroup_root: str = "") -> None:
        self.cgroup_root = cgroup_root or os.environ.get(CGROUP_ROOT_ENV) or CGROUP_ROOT
        self._cap_last: int | None = None
        self._permitted: list[str] | None = None
        LinuxNetworking.__init__(self)

    # --- namespaces -------------------------------------------------------
    def unshare(self, flags: int) -> None:
        _check(libc.unshare(flags), "unshare", hex(flags))

    def setns(self, path: str, nstype: int) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _oserror("open", (path,), exc) from None
        try:
            _check(libc.setns(fd, nstype), "setns", path, hex(nstype))
        finally:
            os.close(fd)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(libc.sethostname(raw, len(raw)), "sethostname", name)

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        _check(libc.setdomainname(raw, len(raw)), "setdomainname", name)

    def bring_loopback_up(self) -> None:
        # socket(2) through libc, not `_socket`: the container init (`dockyard-runtime
        # run`) loads no socket module for this one ioctl pair.
        fd = _check(
            libc.socket(_AF_INET, _SOCK_DGRAM | os.O_CLOEXEC, 0), "socket", "AF_INET", "SOCK_DGRAM"
        )
        try:
            ifreq = libc.buffer(_ifreq_flags(b"lo", 0))
            ret = libc.ioctl(fd, _SIOCGIFFLAGS, libc.pointer(ifreq))
            _check(ret, "ioctl", "lo", "SIOCGIFFLAGS")
            flags = int.from_bytes(ifreq[16:18], sys.byteorder) | _IFF_UP
            up = libc.buffer(_ifreq_flags(b"lo", flags))
            ret = libc.ioctl(fd, _SIOCSIFFLAGS, libc.pointer(up))
            _check(ret, "ioctl", "lo", "SIOCSIFFLAGS")
        finally:
            os.close(fd)

    def listen_in_netns(
        self, netns_path: str, address: str, port: int
    ) -> tuple[socket.socket, socket.socket]:
        # setns(CLONE_NEWNET) changes only the calling thread: do it on a thread of
        # its own that ends right after, so no other thread (the event loop) ever runs
        # in the container's namespace.
        result: list[tuple[socket.socket, socket.socket]] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                self.setns(netns_path, CLONE_NEWNET)
                self.bring_loopback_up()
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    udp.bind((address, port))
                    tcp.bind((address, port))
                    tcp.listen(64)
                except OSError as exc:
                    udp.close()
                    tcp.close()
                    raise _oserror("bind", (netns_path, address, port), exc) from None
                result.append((udp, tcp))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failure.append(exc)

        import socket  # here: `dockyard-runtime run` needs neither
        import threading

        thread = threading.Thread(target=work, name="netns-listen", daemon=True)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return result[0]

    # --- mounts and files ----------------------------------------------------
    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        ret = libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
        _check(ret, "mount", source, target, fstype, hex(flags), data)

    def mount_overlay(self, target: str, lowerdirs: list[str], upperdir: str, workdir: str) -> None:
        fs = _check(libc.syscall(_SYS_FSOPEN, b"overlay", _FSOPEN_CLOEXEC), "fsopen", "overlay")
        try:
            options = [("lowerdir+", d) for d in lowerdirs] + [
                ("upperdir", upperdir),
                ("workdir", workdir),
            ]
            for key, value in options:
                ret = libc.syscall(
                    _SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, key.encode(), _b(value), 0
                )
                _check(ret, "fsconfig", key, value)
            _check(
                libc.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0),
                "fsconfig",
                "create",
            )
            mnt = _check(libc.syscall(_SYS_FSMOUNT, fs, _FSMOUNT_CLOEXEC, 0), "fsmount", "overlay")
            try:
                ret = libc.syscall(
                    _SYS_MOVE_MOUNT, mnt, b"", AT_FDCWD, _b(target), _MOVE_MOUNT_F_EMPTY_PATH
                )
                _check(ret, "move_mount", target)
            finally:
                os.close(mnt)
        finally:
            os.close(fs)

    def umount2(self, target: str, flags: int) -> None:
        _check(libc.umount2(_b(target), flags), "umount2", target, flags)

    def mount_at(
        self, source: str | None, target_fd: int, fstype: str | None, flags: int, data: str | None
    ) -> None:
        target = f"/proc/self/fd/{target_fd}".encode()
        ret = libc.mount(_b(source), target, _b(fstype), flags, _b(data))
        _check(ret, "mount", source, f"fd {target_fd}", fstype, hex(flags), data)

    def bind_mount_at(
        self, source: str, target_fd: int, recursive: bool, attrs: int, propagation: int
    ) -> None:
        flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | (_AT_RECURSIVE if recursive else 0)
        tree = _check(
            libc.syscall(_SYS_OPEN_TREE, AT_FDCWD, _b(source), flags), "open_tree", source
        )
        try:
            if attrs:  # the top mount only, as a bind remount does ("rro" is not asked for)
                self._mount_setattr(tree, 0, attrs, 0)
            if propagation:  # "rprivate": MS_REC is AT_RECURSIVE to mount_setattr
                scope = _AT_RECURSIVE if propagation & MS_REC else 0
                self._mount_setattr(tree, scope, 0, propagation & ~MS_REC)
            ret = libc.syscall(
                _SYS_MOVE_MOUNT,
                tree,
                b"",
                target_fd,
                b"",
                _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH,
            )
            _check(ret, "move_mount", source, f"fd {target_fd}")
        finally:
            os.close(tree)

    def clone_mount_from_ns(self, mnt_ns: str, path: str) -> int:
        try:
            home = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            there = os.open(mnt_ns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _oserror("open", (mnt_ns,), exc) from None
        try:
            _check(libc.setns(there, CLONE_NEWNS), "setns", mnt_ns, hex(CLONE_NEWNS))
            try:
                flags = _OPEN_TREE_CLONE | os.O_CLOEXEC
                return _check(
                    libc.syscall(_SYS_OPEN_TREE, AT_FDCWD, _b(path), flags), "open_tree", path
                )
            finally:
                # Back home whatever happened: nothing else may run in their namespace.
                _check(libc.setns(home, CLONE_NEWNS), "setns", "/proc/self/ns/mnt")
        finally:
            os.close(there)
            os.close(home)

    def move_mount_fd(self, tree_fd: int, target_fd: int) -> None:
        ret = libc.syscall(
            _SYS_MOVE_MOUNT,
            tree_fd,
            b"",
            target_fd,
            b"",
            _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH,
        )
        _check(ret, "move_mount", f"fd {tree_fd}", f"fd {target_fd}")

    def _mount_setattr(self, fd: int, flags: int, attr_set: int, propagation: int) -> None:
        attr = _mount_attr(attr_set, propagation)
        ret = libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH | flags, attr, len(attr))
        _check(ret, "mount_setattr", hex(attr_set), hex(propagation))

    def open_in_root(self, root_fd: int, path: str, flags: int) -> int:
        how = _open_how(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        raw = _b(path)
        for _ in range(_OPENAT2_RETRIES):
            fd = libc.syscall(_SYS_OPENAT2, root_fd, raw, how, len(how))
            if fd >= 0:
                return fd
            err = libc.get_errno()
            if err != errno.EAGAIN:
                break
        raise KernelError("openat2", (root_fd, path, "RESOLVE_IN_ROOT"), err)

    def open_at(self, dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
        try:
            return os.open(
                path, flags | os.O_CLOEXEC, mode, dir_fd=None if dir_fd == AT_FDCWD else dir_fd
            )
        except OSError as exc:
            raise _oserror("openat", (dir_fd, path, hex(flags)), exc) from None

    def mkdirat(self, dir_fd: int, name: str, mode: int) -> None:
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
        except OSError as exc:
            raise _oserror("mkdirat", (dir_fd, name, oct(mode)), exc) from None

    def readlinkat(self, dir_fd: int, name: str) -> str:
        try:
            return os.readlink(name, dir_fd=dir_fd)
        except OSError as exc:
            raise _oserror("readlinkat", (dir_fd, name), exc) from None

    def mknodat(self, dir_fd: int, name: str, mode: int, major: int, minor: int) -> None:
        try:
            os.mknod(name, mode, os.makedev(major, minor), dir_fd=dir_fd)
        except OSError as exc:
            raise _oserror("mknodat", (dir_fd, name, oct(mode), major, minor), exc) from None

    def symlinkat(self, target: str, dir_fd: int, name: str) -> None:
        try:
            os.symlink(target, name, dir_fd=dir_fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _oserror("symlinkat", (target, dir_fd, name), exc) from None

    def close(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError as exc:
            raise _oserror("close", (fd,), exc) from None

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        try:
            os.fchown(fd, uid, gid)
        except OSError as exc:
            raise _oserror("fchown", (fd, uid, gid), exc) from None

    def syncfs(self, fd: int) -> None:
        _check(libc.syncfs(fd), "syncfs", fd)

    def lchownat(self, dir_fd: int, name: str, uid: int, gid: int) -> None:
        try:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            raise _oserror(
                "fchownat", (dir_fd, name, uid, gid, "AT_SYMLINK_NOFOLLOW"), exc
            ) from None

    def setxattr(self, target: int | str, name: str, value: bytes, follow: bool = True) -> None:
        try:
            os.setxattr(target, name, value, follow_symlinks=follow)
        except OSError as exc:
            call = "fsetxattr" if isinstance(target, int) else "setxattr" if follow else "lsetxattr"
            raise _oserror(call, (target, name), exc) from None

    def pivot_root(self, new_root: str, put_old: str) -> None:
        ret = libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old))
        _check(ret, "pivot_root", new_root, put_old)

    def create_file(self, path: str, mode: int = 0o644) -> None:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode))
        except OSError as exc:
            raise _oserror("open", (path, "O_CREAT"), exc) from None

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def file_identity(self, target: str | int) -> tuple[int, int]:
        try:
            st = os.stat(target)
        except OSError as exc:
            raise _oserror("stat", (target,), exc) from None
        return st.st_dev, st.st_ino

    def chdir(self, path: str) -> None:
        try:
            os.chdir(path)
        except OSError as exc:
            raise _oserror("chdir", (path,), exc) from None

    def umask(self, mask: int) -> int:
        return os.umask(mask)

    # --- credentials and capabilities --------------------------------------
    def setgroups(self, gids: list[int]) -> None:
        try:
            os.setgroups(gids)
        except OSError as exc:
            raise _oserror("setgroups", (gids,), exc) from None

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        try:
            os.setresgid(rgid, egid, sgid)
        except OSError as exc:
            raise _oserror("setresgid", (rgid, egid, sgid), exc) from None

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        try:
            os.setresuid(ruid, euid, suid)
        except OSError as exc:
            raise _oserror("setresuid", (ruid, euid, suid), exc) from None

    def cap_last(self) -> int:
        if self._cap_last is None:
            # os.read, not open(): the io stack's objects cost the init ~0.1 ms.
            fd = os.open("/proc/sys/kernel/cap_last_cap", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._cap_last = int(os.read(fd, 32))
            finally:
                os.close(fd)
        return self._cap_last

    def permitted_caps(self) -> list[str]:
        # Asked once (the forkserver warms it up); forked monitors inherit the answer.
        if self._permitted is None:
            self._permitted = self._capget_permitted()
        return list(self._permitted)

    def _capget_permitted(self) -> list[str]:
        header = libc.buffer(_CAP_HEADER)
        data = libc.buffer(_CAP_DATA_SIZE)
        _check(libc.syscall(_SYS_CAPGET, libc.pointer(header), libc.pointer(data)), "capget")
        mask = libc.u32(data, 4) | (libc.u32(data, 16) << 32)
        return [name for name, bit in CAPABILITIES.items() if mask & (1 << bit)]

    def drop_bounding_caps(self, keep: list[str]) -> None:
        kept = _cap_mask(keep)
        for cap in range(self.cap_last() + 1):
            if not kept & (1 << cap):
                _check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl", "PR_CAPBSET_DROP", cap)

    def capset(self, effective: list[str], permitted: list[str], inheritable: list[str]) -> None:
        masks = [_cap_mask(names) for names in (effective, permitted, inheritable)]
        data = b"".join(libc.cbytes(m & 0xFFFFFFFF, 4) for m in masks) + b"".join(
            libc.cbytes(m >> 32, 4) for m in masks
        )
        header = libc.buffer(_CAP_HEADER)  # capset may write its version back
        ret = libc.syscall(_SYS_CAPSET, libc.pointer(header), data)
        _check(ret, "capset", len(effective), len(permitted), len(inheritable))

    def clear_ambient_caps(self) -> None:
        ret = libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        _check(ret, "prctl", "PR_CAP_AMBIENT_CLEAR_ALL")

    def set_keepcaps(self, keep: bool) -> None:
        _check(libc.prctl(_PR_SET_KEEPCAPS, int(keep), 0, 0, 0), "prctl", "PR_SET_KEEPCAPS")

    def set_no_new_privs(self) -> None:
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl", "PR_SET_NO_NEW_PRIVS")

    def set_seccomp_filter(self, program: bytes) -> None:
        count = len(program) // 8
        if not 0 < count <= 0xFFFF:  # sock_fprog.len is an unsigned short
            raise KernelError("prctl", ("PR_SET_SECCOMP", f"{count} instructions"), errno.EINVAL)
        filters = libc.buffer(program)
        # struct sock_fprog {unsigned short len; (padding) struct sock_filter *filter}
        fprog = libc.buffer(
            libc.cbytes(count, 2) + bytes(6) + libc.cbytes(libc.pointer(filters).value, 8)
        )
        ret = libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, libc.pointer(fprog), 0, 0)
        _check(ret, "prctl", "PR_SET_SECCOMP", f"{count} instructions")

    def set_pdeathsig(self, signum: int) -> None:
        _check(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0), "prctl", "PR_SET_PDEATHSIG")

    def set_child_subreaper(self) -> None:
        _check(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl", "PR_SET_CHILD_SUBREAPER")

    # --- cgroups ---------------------------------------------------------------
    def _cg(self, controller: str, path: str, name: str = "") -> str:
        # Callers validate cgroup paths; this keeps a missed one from reaching the host's
        # directories through /sys/fs/cgroup/<controller>/../..
        if ".." in path.split("/") or ".." in controller.split("/") or "/" in name:
            raise KernelError("cgroup", (controller, path, name), errno.EINVAL)
        base = f"{self.cgroup_root}/{controller}/{path.strip('/')}"
        return f"{base}/{name}" if name else base

    def cgroup_dir(self, controller: str, path: str) -> str:
        return self._cg(controller, path)

    def cgroup_create(self, controller: str, path: str) -> None:
        target = self._cg(controller, path)
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as exc:
            raise _oserror("mkdir", (target,), exc) from None

    def cgroup_write(self, controller: str, path: str, name: str, value: str) -> None:
        target = self._cg(controller, path, name)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise _oserror("write", (target, value), exc) from None

    def cgroup_read(self, controller: str, path: str, name: str) -> str:
        target = self._cg(controller, path, name)
        try:
            with open(target) as f:
                return f.read()
        except OSError as exc:
            raise _oserror("read", (target,), exc) from None

    def cgroup_has(self, controller: str, path: str, name: str) -> bool:
        return os.path.exists(self._cg(controller, path, name))

    def cgroup_add_pid(self, controller: str, path: str, pid: int) -> None:
        # A process moving itself (pid 0) through `tasks` skips the kernel's global
        # cgroup_threadgroup_rwsem, whose write side waits for an RCU grace period
        # (~10-15 ms here). Our init is single-threaded, so `tasks` moves all of it.
        if pid == 0:
            self.cgroup_write(controller, path, "tasks", "0")
        else:
            self.cgroup_write(controller, path, "cgroup.procs", str(pid))

    def cgroup_remove(self, controller: str, path: str, timeout: float = 2.0) -> None:
        target = self._cg(controller, path)
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                os.rmdir(target)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                # EBUSY: the last tasks of a dying pid namespace are still being released.
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise _oserror("rmdir", (target,), exc) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def cgroup_attach_device_filter(self, controller: str, path: str, program: bytes) -> None:
        target = self._cg(controller, path)
        insns = libc.buffer(program)
        license_ = libc.buffer(b"Apache-2.0\0")
        log = libc.buffer(1 << 16)
        # union bpf_attr for BPF_PROG_LOAD: u32 prog_type, insn_cnt; u64 insns, license;
        # u32 log_level, log_size; u64 log_buf; the rest zero.
        attr = (
            libc.cbytes(_BPF_PROG_TYPE_CGROUP_DEVICE, 4)
            + libc.cbytes(len(program) // 8, 4)
            + libc.cbytes(libc.pointer(insns).value, 8)
            + libc.cbytes(libc.pointer(license_).value, 8)
            + libc.cbytes(1, 4)  # log_level: the verifier says why it refuses
            + libc.cbytes(len(log), 4)
            + libc.cbytes(libc.pointer(log).value, 8)
        ).ljust(_BPF_ATTR_SIZE, b"\0")
        attr_buf = libc.buffer(attr)  # the kernel writes log_true_size back (Linux 6.4+)
        prog = libc.syscall(_SYS_BPF, _BPF_PROG_LOAD, libc.pointer(attr_buf), _BPF_ATTR_SIZE)
        if prog < 0:
            err = libc.get_errno()
            text = bytes(log).split(b"\0", 1)[0]
            detail = text.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise KernelError("bpf", ("BPF_PROG_LOAD", "cgroup device", detail[0]), err)
        try:
            cg = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            os.close(prog)
            raise _oserror("open", (target,), exc) from None
        try:
            # BPF_PROG_ATTACH: u32 target_fd, attach_bpf_fd, attach_type, attach_flags.
            attach = b"".join(
                libc.cbytes(v, 4) for v in (cg, prog, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI)
            ).ljust(_BPF_ATTR_SIZE, b"\0")
            ret = libc.syscall(_SYS_BPF, _BPF_PROG_ATTACH, attach, _BPF_ATTR_SIZE)
            _check(ret, "bpf", "BPF_PROG_ATTACH", target)
        finally:
            # The attachment holds the program: neither fd is needed past this.
            os.close(cg)
            os.close(prog)

    # --- processes ---------------------------------------------------------------
    def fork(self) -> int:
        try:
            return os.fork()
        except OSError as exc:
            raise _oserror("fork", (), exc) from None

    def execve(self, path: str, args: list[str], env: list[str]) -> None:
        envmap = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        try:
            os.execve(path, args, envmap)
        except OSError as exc:
            raise _oserror("execve", (path,), exc) from None

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        while True:
            try:
                return os.waitpid(pid, options)
            except ChildProcessError as exc:
                raise _oserror("waitpid", (pid, options), exc) from None
            except InterruptedError:
                continue

    def kill(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except OSError as exc:
            raise _oserror("kill", (pid, signum), exc) from None

    def pidfd_open(self, pid: int) -> int:
        try:
            return os.pidfd_open(pid)
        except OSError as exc:
            raise _oserror("pidfd_open", (pid,), exc) from None

    def setsid(self) -> int:
        try:
            return os.setsid()
        except OSError as exc:
            raise _oserror("setsid", (), exc) from None

    def set_oom_score_adj(self, value: int) -> None:
        try:
            fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(value).encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise _oserror("write", ("/proc/self/oom_score_adj", value), exc) from None

    def set_rlimit(self, name: str, soft: int, hard: int) -> None:
        kind = RLIMITS.get(name)
        if kind is None:
            raise KernelError("setrlimit", (name,), errno.EINVAL)

        def lim(v: int) -> bytes:  # rlim_t; RLIM_INFINITY is all ones
            return libc.cbytes((1 << 64) - 1 if v < 0 else v, 8)

        if soft >= 1 << 64 or hard >= 1 << 64:
            raise KernelError("setrlimit", (name, soft, hard), errno.EINVAL)
        ret = libc.setrlimit(kind, lim(soft) + lim(hard))
        _check(ret, "setrlimit", name, soft, hard)

    def write_sysctl(self, name: str, value: str) -> None:
        parts = name.split(".")
        if any(p in ("", "..") or "/" in p for p in parts):
            raise KernelError("write", (name, value), errno.EINVAL)
        path = "/proc/sys/" + "/".join(parts)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise _oserror("write", (path, value), exc) from None

    def set_signal_handler(self, signum: int, handler: Callable[[int, object], None]) -> None:
        signal.signal(signum, handler)

    def reset_signals(self, signums: list[int]) -> None:
        for signum in signums:
            signal.signal(signum, signal.SIG_DFL)

    def exit(self, code: int) -> None:
        os._exit(code)

    # --- file descriptors and terminals -----------------------------------------
    def dup2(self, fd: int, fd2: int) -> None:
        try:
            os.dup2(fd, fd2)
        except OSError as exc:
            raise _oserror("dup2", (fd, fd2), exc) from None

    def mark_cloexec_from(self, first: int) -> None:
        ret = libc.syscall(_SYS_CLOSE_RANGE, first, libc.uint(0xFFFFFFFF), _CLOSE_RANGE_CLOEXEC)
        if ret == 0:
            return
        if libc.get_errno() not in (errno.ENOSYS, errno.EINVAL):
            _check(ret, "close_range", first, "CLOSE_RANGE_CLOEXEC")
        # Before Linux 5.11: flag each open fd.
        try:
            fds = [int(name) for name in os.listdir("/proc/self/fd")]
        except OSError:
            fds = list(range(first, os.sysconf("SC_OPEN_MAX")))
        for fd in fds:
            if fd >= first:
                with suppress(OSError):
                    os.set_inheritable(fd, False)

    def open_pty(self, ptmx: str) -> tuple[int, int, str]:
        try:
            master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise _oserror("open", (ptmx,), exc) from None
        try:
            unlock = libc.buffer(4)  # int 0
            ret = libc.ioctl(master, _TIOCSPTLCK, libc.pointer(unlock))
            _check(ret, "ioctl", ptmx, "TIOCSPTLCK")
            number = libc.buffer(4)
            _check(libc.ioctl(master, _TIOCGPTN, libc.pointer(number)), "ioctl", ptmx, "TIOCGPTN")
            # TIOCGPTPEER opens the slave through the master: no path lookup to race with.
            flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
            slave = _check(libc.ioctl(master, _TIOCGPTPEER, flags), "ioctl", ptmx, "TIOCGPTPEER")
        except KernelError:
            os.close(master)
            raise
        return master, slave, f"{os.path.dirname(ptmx)}/{libc.u32(number)}"

    def set_controlling_tty(self, fd: int) -> None:
        _check(libc.ioctl(fd, _TIOCSCTTY, 0), "ioctl", fd, "TIOCSCTTY")

    def set_winsize(self, fd: int, rows: int, cols: int) -> None:
        # struct winsize {unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel}
        if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
            raise KernelError("ioctl", (fd, "TIOCSWINSZ", rows, cols), errno.EINVAL)
        size = libc.cbytes(rows, 2) + libc.cbytes(cols, 2) + bytes(4)
        _check(libc.ioctl(fd, _TIOCSWINSZ, size), "ioctl", fd, "TIOCSWINSZ", rows, cols)
