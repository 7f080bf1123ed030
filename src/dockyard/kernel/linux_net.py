"""The networking half of LinuxKernel: netlink (pyroute2), network namespaces,
sysctls, iptables and port reservations.

A netlink socket keeps the namespace it was created in, so the socket of a
container's namespace is opened while creating the namespace (or by entering it
briefly: setns there and back) and used from the daemon's namespace after.
pyroute2 (0.9) gives each thread its own lazily opened socket; so that every
socket is opened once, where it is meant to be, all netlink work runs in one
thread of its own, and a namespace's IPRoute is handed a socket opened inside
it. pyroute2 is imported on first use: the container init and the CLI, which
share the kernel module, never pay for it.

The firewall is iptables (iptables-restore for atomic batches): on a host where
dockerd runs, its FORWARD policy DROP lives in iptables' filter table, and only a
rule in that same chain (as dockerd's DOCKER-USER) lets our traffic through.
"""

from __future__ import annotations

import _thread  # not threading: `dockyard-runtime run` never starts a thread
import errno
import os

from dockyard.errors import KernelError
from dockyard.kernel import libc
from dockyard.suppress import suppress

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

_NETLINK_ROUTE = 0

_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MNT_DETACH = 2
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_MAIN_TABLE = 254


def _fail(call: str, args: tuple[object, ...], code: int | None = None) -> KernelError:
    return KernelError(call, args, code if code is not None else libc.get_errno() or errno.EIO)


class _entered:  # noqa: N801 - a context manager named for its `with` use
    """Run a block inside the network namespace file `path`, in this thread only.
    (A class, not @contextlib.contextmanager: contextlib is not on the run path.)"""

    def __init__(self, path: str) -> None:
        self.path = path
        self.home = -1

    def __enter__(self) -> None:
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise _fail("open", (self.path,), exc.errno) from None
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise _fail("setns", (self.path, "CLONE_NEWNET"))
            finally:
                os.close(fd)
        except BaseException:
            os.close(self.home)
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            # A daemon thread left in a container's namespace would be a silent
            # disaster: better to die loudly.
            if libc.setns(self.home, _CLONE_NEWNET) != 0:
                os.abort()
        finally:
            os.close(self.home)


def _loopback_up() -> None:
    import fcntl  # here (and socket, struct): dockyard-runtime's run path never needs them
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _ifindex(ipr: Any, name: str, call: str) -> int:
    try:
        return int(ipr.link("get", ifname=name)[0]["index"])
    except Exception as exc:  # pyroute2's NetlinkError: ENODEV
        code = getattr(exc, "code", None) or errno.ENODEV
        raise KernelError(call, (name,), int(code)) from None


def _iptables(argv: list[str], stdin: str | None, call: str) -> str:
    import subprocess

    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise KernelError(call, (argv[0], "not installed"), errno.ENOENT) from None
    if proc.returncode != 0:
        raise KernelError(call, ((proc.stderr or "").strip() or (stdin or ""),), errno.EINVAL)
    return proc.stdout


class LinuxNetworking:
    """Mixed into LinuxKernel; see the Kernel interface for each call's contract."""

    def __init__(self) -> None:
        self._net_executor: Any = None
        self._net_tid = 0
        self._net_start = _thread.allocate_lock()
        self._host_nl: Any = None
        self._ns_nl: dict[str, Any] = {}
        # Interface indexes inside container namespaces (stable while the namespace
        # lives and only we change it): spares a lookup per call.
        self._ns_index: dict[tuple[str, str], int] = {}

    # --- the netlink thread and its sockets ---------------------------------------
    def _in_net_thread(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the netlink thread (serialised with every other network call)."""
        if _thread.get_ident() == self._net_tid:
            return fn()
        if self._net_executor is None:
            with self._net_start:
                if self._net_executor is None:
                    from concurrent.futures import ThreadPoolExecutor

                    def mark() -> None:
                        self._net_tid = _thread.get_ident()

                    self._net_executor = ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="netlink", initializer=mark
                    )
        return self._net_executor.submit(fn).result()

    def _nl(self, netns: str | None) -> Any:
        import socket  # here: dockyard-runtime's run path never needs it

        from pyroute2 import IPRoute

        if netns is None:
            if self._host_nl is None:
                self._host_nl = IPRoute()
            return self._host_nl
        ipr = self._ns_nl.get(netns)
        if ipr is None:
            with _entered(netns):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
            ipr = self._ns_nl[netns] = IPRoute(use_socket=sock)
        return ipr

    def _net(
        self, call: str, args: tuple[object, ...], netns: str | None, fn: Callable[[Any], Any]
    ) -> Any:
        def run() -> Any:
            try:
                return fn(self._nl(netns))
            except KernelError:
                raise
            except Exception as exc:  # pyroute2's NetlinkError and OSError carry the errno
                code = getattr(exc, "code", None) or getattr(exc, "errno", None) or errno.EIO
                raise KernelError(call, args, int(code)) from None

        return self._in_net_thread(run)

    def _index(self, ipr: Any, name: str, netns: str | None, call: str) -> int:
        if netns is None:
            return _ifindex(ipr, name, call)
        index = self._ns_index.get((netns, name))
        if index is None:
            index = self._ns_index[(netns, name)] = _ifindex(ipr, name, call)
        return index

    # --- namespaces ----------------------------------------------------------
    def netns_create(self, path: str) -> None:
        self._in_net_thread(lambda: self._netns_create(path))

    def _netns_create(self, path: str) -> None:
        import socket  # here: dockyard-runtime's run path never needs it

        from pyroute2 import IPRoute

        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
        except OSError as exc:
            raise _fail("open", (path, "O_CREAT|O_EXCL"), exc.errno) from None
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        sock = None
        try:
            if libc.unshare(_CLONE_NEWNET) != 0:
                raise _fail("unshare", ("CLONE_NEWNET",))
            try:
                _loopback_up()
                src = b"/proc/thread-self/ns/net"
                if libc.mount(src, os.fsencode(path), None, _MS_BIND, None) != 0:
                    raise _fail("mount", (src.decode(), path, "MS_BIND"))
                # Its netlink socket now, while we are inside: no setns later.
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
            finally:
                if libc.setns(home, _CLONE_NEWNET) != 0:
                    os.abort()
            self._ns_nl[path] = IPRoute(use_socket=sock)
        except BaseException:
            if sock is not None:
                sock.close()
            libc.umount2(os.fsencode(path), _MNT_DETACH)
            with suppress(OSError):
                os.unlink(path)
            raise
        finally:
            os.close(home)

    def netns_delete(self, path: str) -> None:
        self._in_net_thread(lambda: self._netns_delete(path))

    def _netns_delete(self, path: str) -> None:
        ipr = self._ns_nl.pop(path, None)
        if ipr is not None:
            ipr.close()
        for key in [k for k in self._ns_index if k[0] == path]:
            del self._ns_index[key]
        if libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
            code = libc.get_errno()
            if code not in (errno.EINVAL, errno.ENOENT):
                raise _fail("umount2", (path, "MNT_DETACH"), code)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _fail("unlink", (path,), exc.errno) from None

    # --- links -------------------------------------------------------------------
    def link_names(self, netns: str | None = None) -> list[str]:
        return self._net(
            "link_names",
            (netns,),
            netns,
            lambda ipr: [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()],
        )

    def bridge_create(self, name: str, mtu: int = 1500) -> None:
        self._net(
            "bridge_create",
            (name, mtu),
            None,
            lambda ipr: ipr.link("add", ifname=name, kind="bridge", mtu=mtu),
        )

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
        args = (host_name, peer_name, peer_netns, mtu, master, peer_mac)
        try:
            fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _fail("open", (peer_netns,), exc.errno) from None

        def create(ipr: Any) -> None:
            peer: dict[str, object] = {"ifname": peer_name, "net_ns_fd": fd, "mtu": mtu}
            if peer_mac:
                peer["address"] = peer_mac
            extra: dict[str, object] = {}
            if master is not None:
                extra = {"master": _ifindex(ipr, master, "veth_create"), "state": "up"}
            ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, peer=peer, **extra)

        try:
            self._net("veth_create", args, None, create)
        finally:
            os.close(fd)
        # A new interface of that name (an eth1 connected again): its old index is void.
        self._ns_index.pop((peer_netns, peer_name), None)

    def link_delete(self, name: str, netns: str | None = None) -> None:
        def delete(ipr: Any) -> None:
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])
            if netns is not None:
                self._ns_index.pop((netns, name), None)

        self._net("link_delete", (name, netns), netns, delete)

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
        args = (name, netns, up, mac, mtu, master, to_netns, hairpin)
        if hairpin is not None:
            # A bridge port's flag, in sysfs (the daemon's namespace: host ends only).
            path = f"/sys/class/net/{name}/brport/hairpin_mode"
            try:
                with open(path, "w") as f:
                    f.write("1" if hairpin else "0")
            except OSError as exc:
                raise _fail("link_set", (name, "hairpin", hairpin), exc.errno) from None
            if up is mac is mtu is master is to_netns is None:
                return

        def change(ipr: Any) -> None:
            index = self._index(ipr, name, netns, "link_set")
            attrs: dict[str, object] = {}
            if mac is not None:
                attrs["address"] = mac
            if mtu is not None:
                attrs["mtu"] = mtu
            if master is not None:
                attrs["master"] = _ifindex(ipr, master, "link_set")
            if up is not None and to_netns is None:
                attrs["state"] = "up" if up else "down"
            if attrs:
                ipr.link("set", index=index, **attrs)
            if to_netns is not None:
                fd = os.open(to_netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    ipr.link("set", index=index, net_ns_fd=fd)
                finally:
                    os.close(fd)
                if netns is not None:
                    self._ns_index.pop((netns, name), None)

        self._net("link_set", args, netns, change)

    # --- addresses and routes -----------------------------------------------------
    def addr_add(self, ifname: str, cidr: str, netns: str | None = None) -> None:
        import ipaddress

        iface = ipaddress.IPv4Interface(cidr)

        def add(ipr: Any) -> None:
            ipr.addr(
                "add",
                index=self._index(ipr, ifname, netns, "addr_add"),
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                broadcast=str(iface.network.broadcast_address),
            )

        self._net("addr_add", (ifname, cidr, netns), netns, add)

    def addr_list(self, netns: str | None = None) -> list[tuple[str, str]]:
        def listing(ipr: Any) -> list[tuple[str, str]]:
            import socket  # here: dockyard-runtime's run path never needs it

            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            return [
                (names.get(a["index"], ""), f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
                for a in ipr.get_addr(family=socket.AF_INET)
            ]

        return self._net("addr_list", (netns,), netns, listing)

    def route_add(self, dst: str, gateway: str, netns: str | None = None) -> None:
        target = "0.0.0.0/0" if dst == "default" else dst
        self._net(
            "route_add",
            (dst, gateway, netns),
            netns,
            lambda ipr: ipr.route("add", dst=target, gateway=gateway),
        )

    def route_list(self, netns: str | None = None) -> list[str]:
        def listing(ipr: Any) -> list[str]:
            import socket  # here: dockyard-runtime's run path never needs it

            return [
                f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}"
                for r in ipr.get_routes(family=socket.AF_INET, table=_MAIN_TABLE)
            ]

        return self._net("route_list", (netns,), netns, listing)

    # --- sysctl, firewall, ports -----------------------------------------------
    def sysctl_write(self, key: str, value: str) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as exc:
            raise _fail("sysctl", (key, value), exc.errno) from None

    def firewall_apply(self, rules: str) -> None:
        _iptables(["iptables-restore", "--noflush", "--wait"], rules, "firewall_apply")

    def firewall_list(self, table: str) -> list[str]:
        return _iptables(
            ["iptables", "--wait", "-t", table, "-S"], None, "firewall_list"
        ).splitlines()

    def port_reserve(self, proto: str, host_ip: str, port: int) -> int:
        import socket  # here: dockyard-runtime's run path never needs it

        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
        s = socket.socket(family, kind | socket.SOCK_CLOEXEC)
        try:
            # No SO_REUSEADDR: nobody else may bind the port while we hold it.
            s.bind((host_ip, port))
        except OSError as exc:
            s.close()
            raise _fail("bind", (proto, host_ip, port), exc.errno) from None
        return s.detach()

    def port_of(self, fd: int) -> int:
        import socket  # here: dockyard-runtime's run path never needs it

        s = socket.socket(fileno=fd)
        try:
            return int(s.getsockname()[1])
        finally:
            s.detach()

    def close_fd(self, fd: int) -> None:
        os.close(fd)

    def lock_file(self, path: str) -> int:
        import fcntl  # here: dockyard-runtime's run path never needs it

        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _fail("open", (path,), exc.errno) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            raise _fail("flock", (path, "LOCK_EX"), exc.errno) from None
        return fd

    def try_lock(self, fd: int) -> bool:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise _fail("flock", (fd, "LOCK_EX|LOCK_NB"), exc.errno) from None
        return True
