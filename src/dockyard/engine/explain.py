"""`dockyard explain`: what the engine and the runtime do for a container, as a script.

Gathers the plan the script is rendered from (explain_script.py): the
container's RunSpec rendered as the runtime reads it, the cgroup writes the
runtime's own cgroup code makes for it (run against a recorder, not the
kernel), and its networks with the daemon's firewall rules.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from dockyard.engine.explain_plan import CgroupStep, ExplainPlan, NetworkPlan
from dockyard.engine.explain_script import render
from dockyard.engine.network_attach import bridge_network
from dockyard.kernel.interface import Kernel
from dockyard.network.bridge import BridgeNetwork, mac_for
from dockyard.network.firewall import Firewall
from dockyard.runtime.bundle import ContainerConfig, config_from_oci
from dockyard.runtime.cgroups import available_controllers, create_cgroups, join_cgroups
from dockyard.runtime.cgroups_v2 import hierarchy_of

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.models import Container


class _CgroupRecorder:
    """The cgroup calls of the runtime's cgroup code, recorded instead of made.

    Reads go to the real kernel (which controllers exist, a parent's cpuset);
    the container's own directory does not exist yet, so it reads as new.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.steps: list[CgroupStep] = []
        self.procs: list[str] = []
        self._made: set[tuple[str, str]] = set()

    def cgroup_dir(self, controller: str, path: str) -> str:
        return self.kernel.cgroup_dir(controller, path)

    def _exists(self, controller: str, path: str) -> bool:
        return os.path.isdir(self.kernel.cgroup_dir(controller, path))

    def cgroup_has(self, controller: str, path: str, name: str) -> bool:
        if (controller, path) in self._made and not self._exists(controller, path):
            return self.kernel.cgroup_has(controller, "", name)  # a new dir has its root's files
        return self.kernel.cgroup_has(controller, path, name)

    def cgroup_read(self, controller: str, path: str, name: str) -> str:
        if (controller, path) in self._made and not self._exists(controller, path):
            return ""  # a new cgroup directory: an empty cpuset
        return self.kernel.cgroup_read(controller, path, name)

    def cgroup_create(self, controller: str, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            self._made.add((controller, sub))
            self.steps.append(CgroupStep("mkdir", self.kernel.cgroup_dir(controller, sub)))

    def cgroup_write(self, controller: str, path: str, name: str, value: str) -> None:
        where = self.kernel.cgroup_dir(controller, path)
        if name == "cgroup.procs":
            self.procs.append(os.path.join(where, name))
            return
        self.steps.append(CgroupStep("write", where, name, value))

    def cgroup_add_pid(self, controller: str, path: str, pid: int) -> None:
        self.procs.append(os.path.join(self.kernel.cgroup_dir(controller, path), "cgroup.procs"))

    def cgroup_attach_device_filter(self, controller: str, path: str, program: bytes) -> None:
        self.steps.append(CgroupStep("device-filter", self.kernel.cgroup_dir(controller, path)))


def _oci_of(svc: ContainerService, c: Container) -> tuple[dict[str, Any], str]:
    """The config.json the runtime got (running), or the one a start would write now."""
    if c.state.running:
        try:
            with open(os.path.join(c.bundle, "config.json"), "rb") as f:
                return json.load(f), "the config.json its running start gave the runtime"
        except (OSError, ValueError):
            pass
    spec = svc.run_spec(c)
    return spec.to_oci(c.id), "the RunSpec a start of it would give the runtime now"


def _cgroup_plan(
    kernel: Kernel, cfg: ContainerConfig
) -> tuple[list[CgroupStep], list[str], dict[str, str]]:
    rec = _CgroupRecorder(kernel)
    controllers = available_controllers(kernel, cfg)
    create_cgroups(rec, cfg, controllers)  # type: ignore[arg-type]  # the cgroup calls only
    steps = rec.steps
    rec.steps = []
    join_cgroups(rec, cfg, controllers)  # type: ignore[arg-type]
    h = hierarchy_of(controllers)
    if h is not None:
        mount = {"": kernel.cgroup_dir(h, cfg.cgroup_path)}
    else:
        mount = {c: kernel.cgroup_dir(c, cfg.cgroup_path) for c in controllers}
    return steps, rec.procs, mount


def _seccomp_summary(profile: dict | None) -> str:
    if not profile:
        return ""
    rules = profile.get("syscalls") or []
    names = sum(len(r.get("names") or []) for r in rules)
    return (
        f"default action {profile.get('defaultAction', '?')}, {len(rules)} rules "
        f"naming {names} system calls"
    )


def _free_address(svc: ContainerService, net: BridgeNetwork) -> str:
    pool = svc.networking.ipam.pool(net.id)
    if pool is None:
        return ""
    taken = set(pool.allocated) | {str(pool.gateway)}
    for host in pool.ip_range.hosts():
        if str(host) not in taken and host in pool.subnet:
            return str(host)
    return ""


def _plan_for(
    fw: Firewall,
    net: BridgeNetwork,
    name: str,
    *,
    ip: str,
    prefix_len: int,
    gateway: str,
    mac: str,
    ifname: str,
    ports: list[Any],
    note: str = "",
) -> NetworkPlan:
    embedded_dns = name not in ("bridge", "default")
    return NetworkPlan(
        network=name,
        bridge=net.bridge,
        gateway=gateway,
        prefix_len=prefix_len,
        mtu=net.mtu,
        ip=ip,
        mac=mac or mac_for(ip),
        ifname=ifname,
        default_route=not net.internal,
        chains=fw.chains(),
        jumps=fw.jumps(),
        rules=fw.network_rules(net.rules()),
        port_rules=fw.port_rules(ip, ports) if ports else {},
        ports=[f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.proto}" for p in ports],
        address_note=note,
        embedded_dns=embedded_dns,
    )


def _network_plan(svc: ContainerService, c: Container) -> tuple[str, list[NetworkPlan]]:
    mode = c.host_config.network_mode or "bridge"
    if mode == "host":
        return "host", []
    if mode.startswith("container:"):
        return "join", []
    if mode == "none":
        return "none", []
    networking = svc.networking
    fw = networking.firewall
    plans: list[NetworkPlan] = []
    for name, ep in (c.endpoints or {}).items():
        net = networking.default if name == "bridge" else networking.user_network(name)
        if net is None:
            continue
        plans.append(
            _plan_for(
                fw,
                net,
                name,
                ip=ep.ip,
                prefix_len=ep.prefix_len,
                gateway=ep.gateway,
                mac=ep.mac,
                ifname=ep.ifname,
                ports=list(ep.ports),
            )
        )
    if mode == "bridge" and not c.endpoints and networking.default is not None:
        net = networking.default
        pool = networking.ipam.pool(net.id)
        ip = _free_address(svc, net)
        if pool is not None and ip:
            plans.append(
                _plan_for(
                    fw,
                    net,
                    "bridge",
                    ip=ip,
                    prefix_len=pool.subnet.prefixlen,
                    gateway=str(pool.gateway),
                    mac="",
                    ifname="eth0",
                    ports=[],
                    note="It is not running: the address is the next free one now (the "
                    "daemon allocates one at start),\nand published ports are picked then.",
                )
            )
    for n, e in svc.networks.endpoints_of(c.id):
        if not e.ip_address or any(p.network == n.name for p in plans):
            continue
        net = networking.user_network(n.name) or bridge_network(n)
        plans.append(
            _plan_for(
                fw,
                net,
                n.name,
                ip=e.ip_address,
                prefix_len=e.ip_prefix_len,
                gateway=e.gateway,
                mac=e.mac_address,
                ifname=e.interface or f"eth{len(plans)}",
                ports=[],
            )
        )
    return "bridge", plans


def _own_bundle(c: Container, cfg: ContainerConfig) -> dict[str, str | None]:
    """What a script of its own bundle makes in it (path -> text, None: a directory):
    the bundle's files the container binds (hosts, hostname, resolv.conf), and an
    empty directory for each anonymous volume (removed with the container). The
    volumes' mounts in `cfg` are pointed there."""
    made: dict[str, str | None] = {}
    anonymous = {
        m.source: m.name for m in c.mount_points or [] if m.type == "volume" and m.anonymous
    }
    for m in cfg.mounts:
        if not m.is_bind:
            continue
        if m.source in anonymous:
            m.source = os.path.join(cfg.bundle, "volumes", anonymous[m.source])
            made[m.source] = None
        elif os.path.dirname(m.source) == cfg.bundle:
            try:
                with open(m.source, encoding="utf-8") as f:
                    made[m.source] = f.read()
            except (OSError, UnicodeDecodeError):
                continue
    return made


def explain_container(svc: ContainerService, ref: str, own_bundle: bool = False) -> dict[str, str]:
    """{"Id", "Script"}: the container built by hand, as a POSIX shell script.

    `own_bundle`: the script makes a temporary bundle of its own instead of using
    the container's (for a container removed once it is explained)."""
    c = svc.get(ref)
    oci, source = _oci_of(svc, c)
    cfg = config_from_oci(c.bundle, oci)
    kernel = svc.networking.kernel
    steps, procs, mount = _cgroup_plan(kernel, cfg)
    mode, networks = _network_plan(svc, c)
    plan = ExplainPlan(
        container_id=c.id,
        name=c.name,
        source=source,
        cfg=cfg,
        cgroup_steps=steps,
        cgroup_procs=procs,
        cgroup_mount=mount,
        network_mode=mode,
        networks=networks,
        seccomp=_seccomp_summary(cfg.seccomp),
        bundle_files=_own_bundle(c, cfg) if own_bundle else None,
    )
    return {"Id": c.id, "Script": render(plan)}
