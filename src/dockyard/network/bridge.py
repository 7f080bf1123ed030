"""The bridge driver: Linux bridges as networks, veth pairs as endpoints.

Public interface (used by the engine for the default `bridge` network and for
user-defined bridge networks):

    driver = BridgeDriver(kernel, ipam, firewall, netns_dir)
    driver.start()                        # daemon start: own firewall chains, ip_forward
    driver.create_network(net)            # bridge + gateway address + rules (idempotent)
    path = driver.create_sandbox(cid, spare_for=net)  # a network namespace (nsfs file)
    ep = driver.attach(net, cid, path, ports=requests)   # veth, address, MAC, route, ports
    driver.detach(net, ep)                # rules, ports, veth, address released
    driver.delete_sandbox_path(path)      # (delete_sandbox(cid) for one made for cid)
    driver.replenish(net)                 # off the start path: a spare sandbox, pre-wired
    driver.delete_network(net)
    driver.stop()                         # daemon shutdown: chains removed

Spares: all the kernel work of a start on a bridge (the namespace, the veth
pair, raising it, an address, a route: a few ms) can happen before the start.
`replenish(net)` does it in the background for one spare sandbox, complete with
an address of `net` held by the spare; `create_sandbox(cid, spare_for=net)`
hands it out (its path is then not named after the container: keep the path it
returns), and `attach` without a requested address or MAC just takes it over:
no kernel call at all unless ports are published.

After a daemon restart, `reclaim(net, ep)` takes back the address, ports and
rules of an endpoint whose container is still running; `sandbox_paths()` lists
namespace files left behind (spares too), for the engine to delete those no
running container uses. Nothing here knows about containers' records or the
Engine API.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from dockyard.errors import InvalidParameter, KernelError
from dockyard.kernel.interface import Kernel
from dockyard.network import ports as ports_mod
from dockyard.network.firewall import BridgeRules, Firewall
from dockyard.network.ipam import Ipam
from dockyard.network.ports import PortMapping, PortRequest

DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_BRIDGE = "dockyard0"
DEFAULT_MTU = 1500


def daemon_suffix(data_root: str) -> str:
    """ "" for the default data root, else "-" + 8 hex of its path: what keeps the
    bridge and chain names of daemons sharing a host apart."""
    if os.path.abspath(data_root) == DEFAULT_DATA_ROOT:
        return ""
    return "-" + hashlib.sha256(os.path.abspath(data_root).encode()).hexdigest()[:8]


def default_bridge_name(data_root: str) -> str:
    suffix = daemon_suffix(data_root)
    return DEFAULT_BRIDGE if not suffix else "dky" + suffix[1:] + "0"


def mac_for(ip: str) -> str:
    """dockerd's MAC for an address: 02:42 followed by the IPv4 bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


@dataclass
class BridgeNetwork:
    """A bridge network as the driver needs it."""

    id: str
    bridge: str  # interface name
    subnet: str  # "172.17.0.0/16"
    gateway: str = ""  # default: the subnet's first address
    ip_range: str = ""
    internal: bool = False
    icc: bool = True
    mtu: int = DEFAULT_MTU

    def rules(self) -> BridgeRules:
        return BridgeRules(self.bridge, self.subnet, self.internal, self.icc)


class Endpoint(msgspec.Struct):
    """A container's attachment to a network; the engine keeps it in its record."""

    id: str
    network_id: str
    container_id: str
    netns: str
    ifname: str  # inside the container
    host_ifname: str  # the veth's host end
    ip: str
    prefix_len: int
    gateway: str
    mac: str
    ports: list[PortMapping] = msgspec.field(default_factory=list)


@dataclass
class _Spare:
    network_id: str
    netns: str
    veth: str
    ip: str  # held in IPAM by the spare's name until a container takes it


class BridgeDriver:
    def __init__(self, kernel: Kernel, ipam: Ipam, firewall: Firewall, netns_dir: str) -> None:
        self.kernel = kernel
        self.ipam = ipam
        self.firewall = firewall
        self.netns_dir = netns_dir
        self._rules_on: set[str] = set()  # networks whose rules are in the chains
        self._port_fds: dict[str, list[int]] = {}  # endpoint id -> reserved sockets
        self._port_maps: dict[str, list[PortMapping]] = {}  # endpoint id -> what they hold
        self._spares: dict[str, list[_Spare]] = {}  # network id -> ready sandboxes
        self._prewired: dict[str, _Spare] = {}  # netns -> the spare it was

    # daemon lifetime -----------------------------------------------------------
    def start(self) -> None:
        os.makedirs(self.netns_dir, mode=0o700, exist_ok=True)
        self.firewall.setup()
        self._rules_on.clear()
        # Containers reach out and published ports reach in only with forwarding on,
        # as dockerd sets it.
        self.kernel.sysctl_write("net.ipv4.ip_forward", "1")

    def stop(self) -> None:
        self.drop_spares()
        for fds in self._port_fds.values():
            ports_mod.release(self.kernel, fds)
        self._port_fds.clear()
        self._port_maps.clear()
        self.firewall.teardown()
        self._rules_on.clear()

    # networks ------------------------------------------------------------------
    def create_network(self, net: BridgeNetwork) -> None:
        """Create the bridge (or adopt it after a restart) with its gateway address,
        route_localnet (DNAT of 127.0.0.1), up, and its firewall rules."""
        pool = self.ipam.add_pool(net.id, net.subnet, net.gateway, net.ip_range)
        net.gateway = str(pool.gateway)
        net.subnet = str(pool.subnet)
        cidr = f"{pool.gateway}/{pool.subnet.prefixlen}"
        if net.bridge not in self.kernel.link_names():
            self.kernel.bridge_create(net.bridge, net.mtu)
        if (net.bridge, cidr) not in self.kernel.addr_list():
            self.kernel.addr_add(net.bridge, cidr)
        self.kernel.sysctl_write(f"net.ipv4.conf.{net.bridge}.route_localnet", "1")
        self.kernel.link_set(net.bridge, up=True)
        if net.id not in self._rules_on:
            self.firewall.add(self.firewall.network_rules(net.rules()))
            self._rules_on.add(net.id)

    def delete_network(self, net: BridgeNetwork) -> None:
        self.drop_spares(net)
        if net.id in self._rules_on:
            self.firewall.remove(self.firewall.network_rules(net.rules()))
            self._rules_on.discard(net.id)
        self.kernel.link_delete(net.bridge)
        self.ipam.remove_pool(net.id)

    # sandboxes (a container's network namespace) ---------------------------------
    def sandbox_path(self, container_id: str) -> str:
        return os.path.join(self.netns_dir, container_id)

    def create_sandbox(self, container_id: str, spare_for: BridgeNetwork | None = None) -> str:
        """A network namespace for a container: a spare pre-wired to `spare_for` if
        there is one, else a new one named after the container."""
        if spare_for is not None and self._spares.get(spare_for.id):
            spare = self._spares[spare_for.id].pop()
            self._prewired[spare.netns] = spare
            return spare.netns
        path = self.sandbox_path(container_id)
        if os.path.exists(path):
            self.kernel.netns_delete(path)  # a leftover of a crash: start afresh
        self.kernel.netns_create(path)
        return path

    def delete_sandbox(self, container_id: str) -> None:
        self.delete_sandbox_path(self.sandbox_path(container_id))

    def delete_sandbox_path(self, path: str) -> None:
        spare = self._prewired.pop(path, None)
        if spare is not None:  # handed out, never attached: its address goes back
            self.ipam.release(spare.network_id, spare.ip)
        self.kernel.netns_delete(path)

    def sandbox_paths(self) -> list[str]:
        """Every namespace file here (containers' and spares)."""
        try:
            return [os.path.join(self.netns_dir, n) for n in os.listdir(self.netns_dir)]
        except FileNotFoundError:
            return []

    def sandboxes(self) -> list[str]:
        """Names of the namespace files here (container ids, "spare-*")."""
        return [os.path.basename(p) for p in self.sandbox_paths()]

    def has_spare(self, net: BridgeNetwork) -> bool:
        return bool(self._spares.get(net.id))

    def replenish(self, net: BridgeNetwork, keep: int = 1) -> None:
        """Make spare sandboxes for `net` until `keep` wait (kernel work: run it off
        the start path)."""
        spares = self._spares.setdefault(net.id, [])
        pool = self.ipam.pool(net.id)
        if pool is None:
            return
        while len(spares) < keep:
            name = "spare-" + secrets.token_hex(8)
            path = os.path.join(self.netns_dir, name)
            self.kernel.netns_create(path)
            ip = ""
            try:
                ip = self.ipam.allocate(net.id, name)
                veth = self._veth_pair("eth0", path, net.mtu, net.bridge, mac_for(ip))
                self.kernel.link_set("eth0", netns=path, up=True)
                self.kernel.addr_add("eth0", f"{ip}/{pool.subnet.prefixlen}", path)
                if not net.internal:
                    self.kernel.route_add("default", str(pool.gateway), path)
            except BaseException:
                if ip:
                    self.ipam.release(net.id, ip)
                self.kernel.netns_delete(path)
                raise
            spares.append(_Spare(net.id, path, veth, ip))

    def drop_spares(self, net: BridgeNetwork | None = None) -> None:
        for net_id in [net.id] if net else list(self._spares):
            for spare in self._spares.pop(net_id, []):
                self.ipam.release(net_id, spare.ip)
                self.kernel.netns_delete(spare.netns)

    # endpoints -------------------------------------------------------------------
    def attach(
        self,
        net: BridgeNetwork,
        container_id: str,
        netns: str,
        *,
        ifname: str = "eth0",
        ip: str = "",
        mac: str = "",
        ports: Sequence[PortRequest] = (),
        default_route: bool = True,
        endpoint_id: str = "",
    ) -> Endpoint:
        """Connect the namespace `netns` to `net`. All or nothing: a failure (a host
        port taken, an address in use) leaves no address, port, rule or interface."""
        endpoint_id = endpoint_id or secrets.token_hex(32)
        pool = self.ipam.pool(net.id)
        if pool is None:
            raise KeyError(f"network {net.id} was not created")
        spare = self._prewired.pop(netns, None)
        if spare is not None:
            if (
                spare.network_id != net.id
                or ifname != "eth0"
                or (ip and ip != spare.ip)
                or (mac and mac != mac_for(spare.ip))
                or (not default_route and not net.internal)
            ):
                self._prewired[netns] = spare
                raise KeyError("a spare sandbox takes no requested address, MAC or interface")
            return self._take_spare(net, spare, container_id, endpoint_id, ports)
        address = self.ipam.allocate(net.id, endpoint_id, ip)
        held: list[tuple[PortMapping, int]] = []
        host_if = ""
        try:
            if ports and not net.internal:
                held = ports_mod.reserve(self.kernel, ports, address, self._held_by_us)
            mac = mac or mac_for(address)
            host_if = self._veth_pair(ifname, netns, net.mtu, net.bridge, mac)
            self.kernel.link_set(ifname, netns=netns, up=True)
            ep = Endpoint(
                id=endpoint_id,
                network_id=net.id,
                container_id=container_id,
                netns=netns,
                ifname=ifname,
                host_ifname=host_if,
                ip=address,
                prefix_len=pool.subnet.prefixlen,
                gateway=str(pool.gateway),
                mac=mac,
                ports=[m for m, _ in held],
            )
            self.kernel.addr_add(ifname, f"{address}/{ep.prefix_len}", netns)
            if default_route and not net.internal:
                self.kernel.route_add("default", ep.gateway, netns)
            if ep.ports:
                self.firewall.add(self.firewall.port_rules(address, ep.ports))
        except BaseException:
            ports_mod.release(self.kernel, [fd for _, fd in held])
            if host_if:
                try:
                    self.kernel.link_delete(host_if)
                except KernelError:
                    pass
            self.ipam.release(net.id, address)
            raise
        self._port_fds[endpoint_id] = [fd for _, fd in held]
        self._port_maps[endpoint_id] = [m for m, _ in held]
        return ep

    def _take_spare(
        self,
        net: BridgeNetwork,
        spare: _Spare,
        container_id: str,
        endpoint_id: str,
        ports: Sequence[PortRequest],
    ) -> Endpoint:
        """A spare's namespace is wired and addressed already: only ports remain."""
        pool = self.ipam.pool(net.id)
        assert pool is not None
        held: list[tuple[PortMapping, int]] = []
        try:
            if ports and not net.internal:
                held = ports_mod.reserve(self.kernel, ports, spare.ip, self._held_by_us)
            ep = Endpoint(
                id=endpoint_id,
                network_id=net.id,
                container_id=container_id,
                netns=spare.netns,
                ifname="eth0",
                host_ifname=spare.veth,
                ip=spare.ip,
                prefix_len=pool.subnet.prefixlen,
                gateway=str(pool.gateway),
                mac=mac_for(spare.ip),
                ports=[m for m, _ in held],
            )
            if ep.ports:
                self.firewall.add(self.firewall.port_rules(ep.ip, ep.ports))
        except BaseException:
            ports_mod.release(self.kernel, [fd for _, fd in held])
            self._prewired[spare.netns] = spare  # the caller deletes the sandbox
            raise
        # Not written to disk now (a rename costs about a millisecond here): a
        # restart's reclaim() claims the address for the endpoint anyway.
        self.ipam.reassign(net.id, spare.ip, endpoint_id, persist=False)
        self._port_fds[endpoint_id] = [fd for _, fd in held]
        self._port_maps[endpoint_id] = [m for m, _ in held]
        return ep

    def _veth_pair(self, ifname: str, netns: str, mtu: int, bridge: str, mac: str | None) -> str:
        for _ in range(3):
            host_if = "veth" + secrets.token_hex(4)[:7]
            try:
                self.kernel.veth_create(host_if, ifname, netns, mtu, master=bridge, peer_mac=mac)
            except KernelError as e:
                if e.errno != 17:  # EEXIST: another daemon's veth has this name
                    raise
                continue
            try:
                # With br_netfilter, a container's packet to its own published port is
                # DNATed and bridged back out of the port it came in by.
                self.kernel.link_set(host_if, hairpin=True)
            except BaseException:
                self.kernel.link_delete(host_if)
                raise
            return host_if
        raise KernelError("veth_create", (ifname, netns), 17)

    def _held_by_us(self, proto: str, host_ip: str, port: int) -> bool:
        """Whether one of our endpoints holds the port (0.0.0.0 overlaps every address)."""
        return any(
            m.proto == proto
            and m.host_port == port
            and (m.host_ip == host_ip or "0.0.0.0" in (m.host_ip, host_ip))
            for maps in self._port_maps.values()
            for m in maps
        )

    def detach(self, net: BridgeNetwork, ep: Endpoint, *, delete_link: bool = True) -> None:
        """Undo `attach`. `delete_link=False` when the namespace is deleted next:
        its veth goes with it, without the wait of deleting it here."""
        try:
            if ep.ports:
                self.firewall.remove(self.firewall.port_rules(ep.ip, ep.ports))
        finally:
            ports_mod.release(self.kernel, self._port_fds.pop(ep.id, []))
            self._port_maps.pop(ep.id, None)
            # On the exit path: the file can wait (a restart's retain() drops it).
            self.ipam.release(net.id, ep.ip, persist=False)
            if delete_link:
                self.kernel.link_delete(ep.host_ifname)

    def reclaim(self, net: BridgeNetwork, ep: Endpoint) -> list[str]:
        """After a daemon restart, for a container still running: hold its address,
        its host ports and its rules again. Returns problems (a port another
        program took meanwhile), which the caller logs; the rest is restored."""
        problems = []
        try:
            self.ipam.claim(net.id, ep.ip, ep.id)
        except Exception as e:  # noqa: BLE001 - reported, the endpoint keeps working
            problems.append(f"address {ep.ip}: {e}")
        fds = []
        for m in ep.ports:
            try:
                fds.append(self.kernel.port_reserve(m.proto, m.host_ip, m.host_port))
            except KernelError as e:
                problems.append(f"port {m.host_ip}:{m.host_port}/{m.proto}: {e.message}")
        self._port_fds[ep.id] = fds
        self._port_maps[ep.id] = list(ep.ports)
        if ep.ports:
            self.firewall.add(self.firewall.port_rules(ep.ip, ep.ports))
        return problems


def default_bridge_subnet(
    kernel: Kernel,
    bridge: str,
    *,
    bip: str = "",
    pools: Sequence[tuple[str, int]] = (),
    exclude: Sequence[str] = (),
) -> tuple[str, str]:
    """(subnet, gateway) of the default bridge: `--bip` if given; else the address
    the bridge already has (a restart); else the first pool subnet that overlaps
    no host route or address and nothing in `exclude` (other networks)."""
    from dockyard.network.ipam import DEFAULT_ADDRESS_POOLS, choose_subnet

    if bip:
        try:
            if "/" not in bip:
                raise ValueError(bip)
            iface = ipaddress.IPv4Interface(bip)
            if iface.network.prefixlen > 30:
                raise ValueError(bip)
        except ValueError:
            raise InvalidParameter(
                f"invalid bip {bip!r}: an address with its prefix, as 172.18.0.1/16"
            ) from None
        return str(iface.network), str(iface.ip)
    for name, cidr in kernel.addr_list():
        if name == bridge:
            iface = ipaddress.IPv4Interface(cidr)
            return str(iface.network), str(iface.ip)
    in_use = list(kernel.route_list()) + [c for _, c in kernel.addr_list()] + list(exclude)
    subnet = choose_subnet(pools or DEFAULT_ADDRESS_POOLS, in_use)
    return subnet, str(ipaddress.IPv4Network(subnet).network_address + 1)
