"""Containers' networking: the default bridge, sandboxes and published ports.

For `--network bridge` (the default) a container's start prepares a network
namespace (a bind-mounted nsfs file under <data-root>/run/netns, created by the
daemon) with a veth on the daemon's bridge, an address, a MAC and a default
route, publishes its ports, and hands the namespace's path to the runtime,
which joins it. When the container exits, all of it is released. After a
daemon restart, containers still running get their ports and rules back and
those that died meanwhile are cleaned up.

`none`, `host` and `container:<name>` need no sandbox of their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence

from dockyard.engine.models import Container, ContainerConfig, HostConfig, NetworkingConfig
from dockyard.errors import Conflict, InvalidParameter, KernelError, NotFound
from dockyard.kernel.interface import Kernel
from dockyard.kernel.trace import TRACING, TracingKernel, calls_to_json
from dockyard.network import ports as ports_mod
from dockyard.network.bridge import (
    BridgeDriver,
    BridgeNetwork,
    Endpoint,
    daemon_suffix,
    default_bridge_name,
    default_bridge_subnet,
)
from dockyard.network.firewall import Firewall
from dockyard.network.ipam import Ipam

log = logging.getLogger("dockyard.network")

DEFAULT_NETWORK = "bridge"
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
# Held while a daemon picks a free subnet and creates its bridge, so that two
# daemons starting at once do not pick the same one.
SUBNET_LOCK = "/run/dockyard-network.lock"


class ContainerNetworking:
    def __init__(
        self,
        kernel: Kernel,
        data_root: str,
        *,
        bip: str = "",
        address_pools: Sequence[tuple[str, int]] = (),
        lock_path: str = SUBNET_LOCK,
    ) -> None:
        self.kernel = kernel
        # Every call of the driver is timed: a start's share shows in its start trace.
        self._tracer = TracingKernel(kernel) if TRACING else kernel
        self.ipam = Ipam(os.path.join(data_root, "network-ipam.json"))
        self.firewall = Firewall(self._tracer, daemon_suffix(data_root))
        self.driver = BridgeDriver(
            self._tracer, self.ipam, self.firewall, os.path.join(data_root, "run", "netns")
        )
        self.last_trace: dict[str, list[dict[str, object]]] = {}  # container id -> calls
        self.bridge_name = default_bridge_name(data_root)
        # Stable across restarts, distinct between daemons.
        self.default_network_id = hashlib.sha256(f"bridge:{data_root}".encode()).hexdigest()
        self.default: BridgeNetwork | None = None
        self._bip = bip
        self._pools = list(address_pools)
        self._lock_path = lock_path
        self._lock = asyncio.Lock()
        self._replenishing: asyncio.Future[None] | None = None
        self._closing = False
        # User-defined networks by name (set by engine/network_attach.py), so that the
        # release and the restore of a container treat their endpoints as the default's.
        self.user_network: Callable[[str], BridgeNetwork | None] = lambda name: None

    @property
    def lock(self) -> asyncio.Lock:
        """Held around every driver call (the IPAM is shared)."""
        return self._lock

    # daemon lifetime ------------------------------------------------------------
    # Kernel calls run in worker threads: pyroute2's synchronous API must not be
    # called from a thread with a running event loop.

    async def start(self) -> None:
        """Own firewall chains, then the default bridge (created, or adopted)."""
        await asyncio.to_thread(self._start_sync)

    def _start_sync(self) -> None:
        self.driver.start()
        fd = self.kernel.lock_file(self._lock_path)
        try:
            subnet, gateway = default_bridge_subnet(
                self.kernel, self.bridge_name, bip=self._bip, pools=self._pools
            )
            net = BridgeNetwork(self.default_network_id, self.bridge_name, subnet, gateway)
            self.driver.create_network(net)
        finally:
            self.kernel.close_fd(fd)
        self.default = net
        log.info("default bridge %s: %s (gateway %s)", net.bridge, net.subnet, net.gateway)

    async def restore(
        self, containers: Sequence[Container], save: Callable[[Container], None]
    ) -> None:
        """After a daemon start: reclaim the endpoints of running containers, release
        those of containers that are not running, delete orphaned namespaces."""
        async with self._lock:
            released = await asyncio.to_thread(self._restore_sync, containers)
        for c in released:
            save(c)

    def _restore_sync(self, containers: Sequence[Container]) -> list[Container]:
        released = []
        owners = set()
        for c in containers:
            if c.state.running:
                for name, ep in c.endpoints.items():
                    owners.add(ep.id)
                    net = self._network(name)
                    if net is None:
                        continue
                    for problem in self.driver.reclaim(net, ep):
                        log.warning("container %s: could not reclaim %s", c.id[:12], problem)
            elif c.endpoints or c.sandbox_key:
                self._release_sync(c)
                released.append(c)
        self.ipam.retain(owners)
        in_use = {c.sandbox_key for c in containers if c.state.running and c.sandbox_key}
        for path in self.driver.sandbox_paths():
            if path not in in_use:
                log.info("deleting network namespace %s: no running container uses it", path)
                self.driver.delete_sandbox_path(path)
        return released

    async def shutdown(self, live_restore: bool) -> None:
        """Clean shutdown: without live-restore no container runs any more, so the
        chains and the bridge go; with it, everything stays for the next daemon."""
        self._closing = True  # a start during shutdown (restart policy) makes no new spare
        if self._replenishing is not None:
            # Let it finish: cancelled, its worker thread would go on making a spare
            # after the ones below are gone.
            await asyncio.gather(self._replenishing, return_exceptions=True)
        async with self._lock:
            if live_restore:
                # Spares hold no container: the next daemon would only delete them.
                await asyncio.to_thread(self.driver.drop_spares)
            else:
                await asyncio.to_thread(self._shutdown_sync)

    def _shutdown_sync(self) -> None:
        self.driver.stop()
        # No container runs any more: every namespace file left (a spare handed to a
        # start that failed before it was attached, say) is garbage.
        for path in self.driver.sandbox_paths():
            try:
                self.driver.delete_sandbox_path(path)
            except (OSError, KernelError) as e:
                log.warning("could not delete network namespace %s: %s", path, e)
        if self.default is not None:
            self.kernel.link_delete(self.default.bridge)

    def network_ids(self) -> dict[str, str]:
        """Network name -> id, for what inspect shows of a stopped container."""
        return {DEFAULT_NETWORK: self.default_network_id}

    # create-time checks -------------------------------------------------------------
    def host_gateway(self) -> str:
        """What `--add-host name:host-gateway` maps to (dockerd: the bridge's gateway)."""
        return self.default.gateway if self.default else "127.0.0.1"

    def validate(
        self, config: ContainerConfig, hc: HostConfig, networking: NetworkingConfig | None
    ) -> None:
        mode = hc.network_mode or DEFAULT_NETWORK
        endpoints = (networking.endpoints_config if networking else None) or {}
        for name, ep in endpoints.items():
            ipam = (ep.ipam_config if ep else None) or None
            if (
                ipam
                and (ipam.ipv4_address or ipam.ipv6_address)
                and name
                in (
                    "bridge",
                    "default",
                )
            ):
                raise InvalidParameter(
                    "user specified IP address is supported on user defined networks only"
                )
            if ep and ep.aliases and name in ("bridge", "default"):
                raise InvalidParameter(
                    "network-scoped alias is supported only for containers in user defined networks"
                )
        if mode.startswith("container:"):
            # dockerd's validateNetContainerMode, same words.
            if config.exposed_ports or hc.port_bindings or hc.publish_all_ports:
                raise Conflict(
                    "conflicting options: port publishing and the container type network mode"
                )
            if hc.dns:
                raise Conflict("conflicting options: dns and the network mode")
            if hc.extra_hosts:
                raise Conflict(
                    "conflicting options: custom host-to-IP mapping and the network mode"
                )
            if config.mac_address:
                raise Conflict("conflicting options: mac-address and the network mode")
            if config.hostname:
                raise Conflict("conflicting options: hostname and the network mode")
        if config.mac_address and not _MAC.match(config.mac_address):
            raise InvalidParameter(f"invalid MAC address: {config.mac_address}")
        ports_mod.validate(hc.port_bindings, (config.exposed_ports or {}).keys())

    @staticmethod
    def warnings(hc: HostConfig) -> list[str]:
        """What create answers with beside the id, as dockerd warns."""
        if hc.port_bindings and hc.network_mode in ("host", "none"):
            return [f"Published ports are discarded when using {hc.network_mode} network mode"]
        return []

    # start and stop ---------------------------------------------------------------------
    def _network(self, name: str) -> BridgeNetwork | None:
        return self.default if name == DEFAULT_NETWORK else self.user_network(name)

    async def create_sandbox(self, container_id: str) -> str:
        """A network namespace for a container that is on user-defined networks only."""
        async with self._lock:
            return await asyncio.to_thread(self.driver.create_sandbox, container_id)

    async def prepare(self, c: Container) -> Endpoint | None:
        """The sandbox and the default bridge endpoint of a container about to start
        (bridge mode only). Recorded in `c`; the caller saves it."""
        if c.host_config.network_mode != DEFAULT_NETWORK:
            return None
        if self.default is None:
            raise NotFound("network bridge not found")
        hc = c.host_config
        requests = ports_mod.requests_from(
            hc.port_bindings, (c.config.exposed_ports or {}).keys(), hc.publish_all_ports
        )
        try:
            async with self._lock:
                if (
                    not requests
                    and not c.config.mac_address
                    and self.driver.has_spare(self.default)
                ):
                    # A ready spare and no port: no kernel call, only bookkeeping; a
                    # worker thread would cost more than the work.
                    return self._prepare_sync(c, self.default, requests)
                return await asyncio.to_thread(self._prepare_sync, c, self.default, requests)
        finally:
            self._replenish_later()

    def _replenish_later(self) -> None:
        """A spare sandbox for the next start, made after this one is under way."""
        if self._replenishing is not None or self.default is None or self._closing:
            return
        net = self.default

        async def replenish() -> None:
            await asyncio.sleep(0.02)  # after the runtime's start, not competing with it
            made = False
            try:
                async with self._lock:
                    await asyncio.to_thread(self.driver.replenish, net)
                made = True
            except Exception as e:  # noqa: BLE001 - a start without a spare is just slower
                log.warning("could not make a spare network namespace: %s", e)
            finally:
                self._replenishing = None
            if made and not self.driver.has_spare(net):
                self._replenish_later()  # a start took the new spare while it was made

        self._replenishing = asyncio.ensure_future(replenish())

    def _prepare_sync(
        self, c: Container, net: BridgeNetwork, requests: list[ports_mod.PortRequest]
    ) -> Endpoint:
        tracer = self._tracer
        if not isinstance(tracer, TracingKernel):
            return self._attach_default(c, net, requests)
        tracer.calls.clear()
        try:
            return self._attach_default(c, net, requests)
        finally:
            calls = calls_to_json(tracer.calls)
            for call in calls:
                call["process"] = "daemon"
            self.last_trace[c.id] = calls
            tracer.calls.clear()

    def _attach_default(
        self, c: Container, net: BridgeNetwork, requests: list[ports_mod.PortRequest]
    ) -> Endpoint:
        # A spare is addressed and MAC'd already: not for a container that asks its own MAC.
        spare_for = None if c.config.mac_address else net
        netns = self.driver.create_sandbox(c.id, spare_for=spare_for)
        try:
            ep = self.driver.attach(
                net, c.id, netns, ports=requests, mac=c.config.mac_address or ""
            )
        except ports_mod.AllocationFailed as e:
            self.driver.delete_sandbox_path(netns)
            raise ports_mod.connectivity_failed(c.name[1:], c.id, e) from None
        except BaseException:
            self.driver.delete_sandbox_path(netns)
            raise
        c.sandbox_key = netns
        c.endpoints = {DEFAULT_NETWORK: ep}
        return ep

    async def release(self, c: Container) -> None:
        """Everything `prepare` made for `c`; idempotent."""
        if not c.endpoints and not c.sandbox_key:
            return
        async with self._lock:
            await asyncio.to_thread(self._release_sync, c)

    def _release_sync(self, c: Container) -> None:
        try:
            for name, ep in c.endpoints.items():
                net = self._network(name)
                if net is not None:
                    # The namespace goes next, and its veth with it.
                    self.driver.detach(net, ep, delete_link=False)
        finally:
            if c.sandbox_key:
                self.driver.delete_sandbox_path(c.sandbox_key)
            c.endpoints = {}
            c.sandbox_key = ""

    def network_path(self, c: Container) -> str:
        """The RunSpec network of a prepared container."""
        return c.sandbox_key
