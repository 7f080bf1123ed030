"""The bridge driver, IPAM, port publishing and firewall rules over the recording kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeLauncher, World, async_test, eventually, exit_with

from dockyard.engine.models import (
    ContainerConfig,
    EndpointIPAMConfig,
    EndpointSettings,
    HostConfig,
    NetworkingConfig,
    PortBinding,
)
from dockyard.errors import Conflict, InvalidParameter, KernelError, Unavailable
from dockyard.kernel.fake import RecordingKernel
from dockyard.network.bridge import (
    BridgeDriver,
    BridgeNetwork,
    daemon_suffix,
    default_bridge_name,
    default_bridge_subnet,
    mac_for,
)
from dockyard.network.firewall import Firewall
from dockyard.network.ipam import Ipam, choose_subnet, parse_address_pools
from dockyard.network.ports import AllocationFailed, PortMapping, PortRequest, requests_from

# -- IPAM --------------------------------------------------------------------------


def test_ipam_hands_out_each_address_once_skipping_gateway(tmp_path):
    ipam = Ipam(str(tmp_path / "ipam.json"))
    ipam.add_pool("n", "10.9.0.0/29")  # .1 gateway, .2-.6 for endpoints, .7 broadcast
    got = [ipam.allocate("n", f"e{i}") for i in range(5)]
    assert got == [f"10.9.0.{i}" for i in range(2, 7)]
    with pytest.raises(Unavailable):
        ipam.allocate("n", "e5")
    ipam.release("n", "10.9.0.3")
    assert ipam.allocate("n", "e6") == "10.9.0.3"


def test_ipam_does_not_reuse_a_released_address_at_once(tmp_path):
    ipam = Ipam(str(tmp_path / "ipam.json"))
    ipam.add_pool("n", "10.9.0.0/24")
    first = ipam.allocate("n", "a")
    ipam.release("n", first)
    assert ipam.allocate("n", "b") != first


def test_ipam_survives_a_restart_and_retain_drops_the_dead(tmp_path):
    path = str(tmp_path / "ipam.json")
    ipam = Ipam(path)
    ipam.add_pool("n", "10.9.0.0/24")
    a, b = ipam.allocate("n", "alive"), ipam.allocate("n", "dead")
    again = Ipam(path)
    assert again.add_pool("n", "10.9.0.0/24").allocated == {a: "alive", b: "dead"}
    again.retain({"alive"})
    assert again.allocations("n") == {a: "alive"}
    assert json.loads(Path(path).read_text())["n"]["allocated"] == {a: "alive"}


def test_ipam_preferred_address_rules(tmp_path):
    ipam = Ipam(None)
    ipam.add_pool("n", "10.9.0.0/24", ip_range="10.9.0.128/25")
    assert ipam.allocate("n", "a") == "10.9.0.129"  # from the range only
    assert ipam.allocate("n", "b", "10.9.0.5") == "10.9.0.5"  # outside the range, in subnet
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.allocate("n", "c", "10.9.0.5")
    with pytest.raises(Conflict):
        ipam.allocate("n", "c", "10.9.0.1")  # the gateway
    with pytest.raises(InvalidParameter):
        ipam.allocate("n", "c", "10.10.0.5")
    with pytest.raises(InvalidParameter):
        ipam.add_pool("m", "10.8.0.0/24", gateway="10.7.0.1")


def test_choose_subnet_skips_what_the_host_uses():
    pools = [("172.17.0.0/16", 16), ("172.18.0.0/15", 16), ("192.168.0.0/16", 20)]
    assert choose_subnet(pools, ["0.0.0.0/0", "192.0.2.0/24"]) == "172.17.0.0/16"
    assert choose_subnet(pools, ["172.17.5.0/24"]) == "172.18.0.0/16"
    assert choose_subnet(pools, ["172.16.0.0/12"]) == "192.168.0.0/20"
    with pytest.raises(Unavailable):
        choose_subnet([("10.0.0.0/24", 24)], ["10.0.0.128/25"])


def test_default_address_pools_from_daemon_json():
    assert parse_address_pools([{"base": "10.10.0.0/16", "size": 24}]) == [("10.10.0.0/16", 24)]
    with pytest.raises(InvalidParameter):
        parse_address_pools([{"base": "10.10.0.0/16", "size": 8}])
    with pytest.raises(InvalidParameter):
        parse_address_pools([{"base": "nonsense"}])


def test_default_bridge_subnet_prefers_bip_then_the_bridge_address_then_a_free_pool():
    k = RecordingKernel()
    k.routes[None] = ["0.0.0.0/0", "172.17.0.0/16"]  # say dockerd's docker0
    assert default_bridge_subnet(k, "dky0") == ("172.18.0.0/16", "172.18.0.1")
    assert default_bridge_subnet(k, "dky0", bip="10.5.0.1/24") == ("10.5.0.0/24", "10.5.0.1")
    k.links[None]["dky0"] = {}
    k.addrs[None] = [("dky0", "172.25.0.1/16")]
    assert default_bridge_subnet(k, "dky0") == ("172.25.0.0/16", "172.25.0.1")
    with pytest.raises(InvalidParameter):
        default_bridge_subnet(k, "dky0", bip="10.5.0.1")


def test_names_are_distinct_per_data_root():
    assert default_bridge_name("/var/lib/dockyard") == "dockyard0"
    assert daemon_suffix("/var/lib/dockyard") == ""
    a, b = default_bridge_name("/tmp/dky-a/root"), default_bridge_name("/tmp/dky-b/root")
    assert a != b and len(a) <= 15 and len(b) <= 15
    assert daemon_suffix("/tmp/dky-a/root") != daemon_suffix("/tmp/dky-b/root")


def test_mac_is_derived_from_the_address_as_dockerd_does():
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"


# -- ports ---------------------------------------------------------------------------


def test_port_requests_from_bindings_and_publish_all():
    bindings = {
        "80/tcp": [PortBinding(host_ip="127.0.0.1", host_port="8080")],
        "53/udp": [PortBinding(host_port="5300-5301")],
        "9000": None,
    }
    reqs = requests_from(bindings, ["80/tcp", "443/tcp", "9000/tcp"], True)
    assert PortRequest("tcp", 80, "127.0.0.1", 8080, 8080) in reqs
    assert PortRequest("udp", 53, "0.0.0.0", 5300, 5301) in reqs
    assert PortRequest("tcp", 9000, "0.0.0.0", 0, 0) in reqs
    assert PortRequest("tcp", 443, "0.0.0.0", 0, 0) in reqs  # -P: exposed and not bound
    assert len(reqs) == 4


@pytest.mark.parametrize(
    "key,binding,message",
    [
        ("80/tcp", PortBinding(host_ip="::1", host_port="80"), "IPv6"),
        ("80/tcp", PortBinding(host_ip="not-an-ip"), "invalid host IP"),
        ("80/tcp", PortBinding(host_port="70000"), "invalid hostPort"),
        ("80/tcp", PortBinding(host_port="90-80"), "invalid hostPort"),
        ("0/tcp", PortBinding(), "invalid containerPort"),
        ("80/icmp", PortBinding(), "invalid proto"),
        ("80/sctp", PortBinding(), "sctp"),
    ],
)
def test_bad_port_bindings_are_refused(key, binding, message):
    with pytest.raises(InvalidParameter, match=message):
        requests_from({key: [binding]}, None, False)


# -- the driver over the recording kernel ---------------------------------------------


def _driver(tmp_path) -> tuple[RecordingKernel, BridgeDriver, BridgeNetwork]:
    k = RecordingKernel()
    drv = BridgeDriver(k, Ipam(str(tmp_path / "ipam.json")), Firewall(k, "-t1"), str(tmp_path))
    drv.start()
    net = BridgeNetwork("net1", "dkyt0", "10.20.0.0/16")
    drv.create_network(net)
    return k, drv, net


def test_firewall_chains_are_hooked_first_and_owned_per_daemon(tmp_path):
    k, drv, net = _driver(tmp_path)
    setup = k.firewall[0]
    assert "-I FORWARD 1 -j DOCKYARD-FORWARD-t1" in setup
    assert ":DOCKYARD-DNAT-t1 - [0:0]" in setup and ":DOCKYARD-POST-t1 - [0:0]" in setup
    rules = k.firewall[1]
    assert "-A DOCKYARD-FORWARD-t1 -o dkyt0 -m conntrack --ctstate DNAT -j ACCEPT" in rules
    assert "-A DOCKYARD-FORWARD-t1 ! -i dkyt0 -o dkyt0 -j DROP" in rules
    masq = "-A DOCKYARD-POST-t1 -s 10.20.0.0/16 ! -d 10.20.0.0/16 ! -o dkyt0 -j MASQUERADE"
    # Within the network no NAT, first (br_netfilter brings bridged traffic to
    # POSTROUTING, where another daemon's MASQUERADE for the same subnet waits).
    within = (
        "-A DOCKYARD-POST-t1 -s 10.20.0.0/16 -d 10.20.0.0/16 -o dkyt0"
        " -m conntrack ! --ctstate DNAT -j ACCEPT"
    )
    assert within in rules and masq in rules and rules.index(within) < rules.index(masq)
    assert k.sysctls["net.ipv4.conf.dkyt0.route_localnet"] == "1"
    assert k.links[None]["dkyt0"]["up"] and ("dkyt0", "10.20.0.1/16") in k.addrs[None]


def test_attach_configures_the_namespace_and_detach_undoes_it(tmp_path):
    k, drv, net = _driver(tmp_path)
    ns = drv.create_sandbox("c1")
    ep = drv.attach(net, "c1", ns, ports=[PortRequest("tcp", 80, "127.0.0.1", 8080, 8080)])
    assert (ep.ip, ep.gateway, ep.prefix_len, ep.mac) == (
        "10.20.0.2",
        "10.20.0.1",
        16,
        "02:42:0a:14:00:02",
    )
    assert k.links[ns]["eth0"]["up"] and k.links[ns]["eth0"]["mac"] == ep.mac
    assert k.links[None][ep.host_ifname]["master"] == "dkyt0"
    assert ("eth0", "10.20.0.2/16") in k.addrs[ns] and "0.0.0.0/0" in k.routes[ns]
    dnat = k.firewall[-1]
    assert (
        "-A DOCKYARD-DNAT-t1 -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 "
        "-j DNAT --to-destination 10.20.0.2:80" in dnat
    )
    assert [v for v in k.reserved.values()] == [("tcp", "127.0.0.1", 8080)]
    drv.detach(net, ep, delete_link=False)
    drv.delete_sandbox("c1")
    assert "-D DOCKYARD-DNAT-t1 -d 127.0.0.1/32" in k.firewall[-1]
    assert k.reserved == {} and drv.ipam.allocations("net1") == {}
    assert ns not in k.netns and ep.host_ifname not in k.links[None]


def test_a_taken_host_port_leaves_nothing_behind(tmp_path):
    k, drv, net = _driver(tmp_path)
    k.taken_ports.add(("tcp", 8081))
    ns = drv.create_sandbox("c1")
    applied = len(k.firewall)
    reqs = [
        PortRequest("tcp", 80, "0.0.0.0", 8080, 8080),
        PortRequest("tcp", 81, "0.0.0.0", 8081, 8081),
    ]
    # Another program holds 8081: dockerd's bind error, naming the container's side.
    with pytest.raises(
        AllocationFailed,
        match=r"failed to bind host port for 0\.0\.0\.0:8081:10\.\d+\.\d+\.\d+:81/tcp: "
        "address already in use",
    ):
        drv.attach(net, "c1", ns, ports=reqs)
    assert k.reserved == {}  # 8080, taken first, was given back
    assert drv.ipam.allocations("net1") == {}
    assert [n for n in k.links[None] if n.startswith("veth")] == []
    assert len(k.firewall) == applied


def test_a_host_port_range_takes_the_first_free_port(tmp_path):
    k, drv, net = _driver(tmp_path)
    k.taken_ports.update({("tcp", 9000), ("tcp", 9001)})
    ep = drv.attach(
        net, "c1", drv.create_sandbox("c1"), ports=[PortRequest("tcp", 80, "0.0.0.0", 9000, 9005)]
    )
    assert ep.ports[0].host_port == 9002


def test_internal_networks_get_no_route_out_and_no_masquerade(tmp_path):
    k, drv, _ = _driver(tmp_path)
    net = BridgeNetwork("net2", "dkyt1", "10.21.0.0/24", internal=True)
    drv.create_network(net)
    assert "-A DOCKYARD-FORWARD-t1 -i dkyt1 ! -o dkyt1 -j DROP" in k.firewall[-1]
    assert "MASQUERADE" not in k.firewall[-1]
    assert "-A DOCKYARD-POST-t1 -s 10.21.0.0/24 -d 10.21.0.0/24 -o dkyt1" in k.firewall[-1]
    ns = drv.create_sandbox("c2")
    drv.attach(net, "c2", ns)
    assert k.routes[ns] == []


def test_stop_removes_the_chains(tmp_path):
    k, drv, net = _driver(tmp_path)
    k.firewall_list = lambda table: (  # type: ignore[method-assign]
        ["-N DOCKYARD-FORWARD-t1", "-A FORWARD -j DOCKYARD-FORWARD-t1"]
        if table == "filter"
        else ["-N DOCKYARD-DNAT-t1", "-N DOCKYARD-POST-t1", "-A POSTROUTING -j DOCKYARD-POST-t1"]
    )
    drv.stop()
    text = k.firewall[-1]
    assert "-D FORWARD -j DOCKYARD-FORWARD-t1" in text and "-X DOCKYARD-FORWARD-t1" in text
    assert "-X DOCKYARD-DNAT-t1" in text and "-D POSTROUTING -j DOCKYARD-POST-t1" in text


# -- the engine: containers on the default bridge ------------------------------------------


@async_test
async def test_a_bridge_container_gets_an_endpoint_released_at_exit(tmp_path):
    w = World(tmp_path)
    await w.image("ubuntu")
    hc = HostConfig(port_bindings={"80/tcp": [PortBinding(host_port="8080")]})
    c = await w.run(cmd=["/bin/sleep"], host_config=hc)
    ep = c.endpoints["bridge"]
    assert c.sandbox_key == ep.netns and ep.netns in w.kernel.netns
    oci = json.loads(Path(c.bundle, "config.json").read_text())
    assert {"type": "network", "path": ep.netns} in oci["linux"]["namespaces"]
    assert Path(c.hosts_path).read_text().endswith(f"{ep.ip}\t{c.config.hostname}\n")
    assert [m.host_port for m in ep.ports] == [8080]
    w.launcher.last(c.id).exit(0)
    await eventually(lambda: not c.state.running)
    assert c.endpoints == {} and c.sandbox_key == ""
    assert ep.netns not in w.kernel.netns and w.kernel.reserved == {}
    held = w.networking.ipam.allocations(w.networking.default_network_id)
    assert all(owner.startswith("spare-") for owner in held.values()), held
    # What is left is one spare for the next start, wired and waiting.
    # (made on a worker thread: its namespace exists a moment before its veth)
    await eventually(
        lambda: (
            len(w.kernel.netns) == 1
            and "eth0" in w.kernel.links.get(next(iter(w.kernel.netns)), {})
        )
    )
    (spare,) = w.kernel.netns
    assert "spare-" in spare and w.kernel.links[spare]["eth0"]["peer"] in w.kernel.links[None]
    calls = len(w.kernel.calls)
    c2 = await w.run(cmd=["/bin/sleep"])
    # The spare was complete: the start itself made no network call at all.
    assert c2.sandbox_key == spare
    assert [n for n, _ in w.kernel.calls[calls:]] == []
    ep2 = c2.endpoints["bridge"]
    assert ("eth0", f"{ep2.ip}/16") in w.kernel.addrs[spare] and ep2.mac == mac_for(ep2.ip)
    held = w.networking.ipam.allocations(w.networking.default_network_id)
    assert held[ep2.ip] == ep2.id


@async_test
async def test_none_and_host_modes_get_no_sandbox(tmp_path):
    w = World(tmp_path)
    await w.image("ubuntu")
    w.launcher.programs["/bin/true"] = exit_with(0)
    for mode in ("none", "host"):
        c = await w.run(host_config=HostConfig(network_mode=mode))
        assert c.endpoints == {}
    assert w.kernel.find("netns_create") == []


def test_a_port_one_of_our_endpoints_holds_is_already_allocated(tmp_path):
    """dockerd's port allocator: a second container on a port ours holds, on any address
    that overlaps (0.0.0.0 covers 127.0.0.1), gets "port is already allocated"."""
    k, drv, net = _driver(tmp_path)
    first = drv.create_sandbox("c1")
    drv.attach(net, "c1", first, ports=[PortRequest("tcp", 80, "0.0.0.0", 8080, 8080)])
    second = drv.create_sandbox("c2")
    for ip in ("0.0.0.0", "127.0.0.1"):
        with pytest.raises(
            AllocationFailed, match=f"Bind for {ip}:8080 failed: port is already allocated"
        ):
            drv.attach(net, "c2", second, ports=[PortRequest("tcp", 80, ip, 8080, 8080)])
    # udp on the same number is another port: not ours, so the kernel's word stands.
    k.taken_ports.add(("udp", 8080))
    with pytest.raises(AllocationFailed, match="8080:.*:80/udp: address already in use"):
        drv.attach(net, "c2", second, ports=[PortRequest("udp", 80, "0.0.0.0", 8080, 8080)])


@async_test
async def test_a_port_conflict_fails_the_start_and_records_the_error(tmp_path):
    w = World(tmp_path)
    await w.image("ubuntu")
    w.kernel.taken_ports.add(("tcp", 8080))
    hc = HostConfig(port_bindings={"80/tcp": [PortBinding(host_port="8080")]})
    c = await w.create(host_config=hc, name="web")
    with pytest.raises(AllocationFailed, match="0.0.0.0:8080:.*:80/tcp: address already in use"):
        await w.containers.start(c.id)
    assert c.state.error.startswith(
        "failed to set up container networking: driver failed programming external "
        f"connectivity on endpoint web ({c.id}): failed to bind host port for 0.0.0.0:8080:"
    )
    assert not c.state.running and not [n for n in w.kernel.netns if c.id in n]
    assert w.launcher.runs(c.id) == 0


@async_test
async def test_create_refuses_what_dockerd_refuses(tmp_path):
    w = World(tmp_path)
    await w.image("ubuntu")
    ip = NetworkingConfig(
        endpoints_config={
            "bridge": EndpointSettings(ipam_config=EndpointIPAMConfig(ipv4_address="10.0.0.9"))
        }
    )
    with pytest.raises(InvalidParameter, match="user defined networks only"):
        await w.containers.create(ContainerConfig(image="ubuntu", cmd=["x"]), HostConfig(), "", ip)
    other = await w.create(name="other")
    hc = HostConfig(
        network_mode=f"container:{other.id}",
        port_bindings={"80/tcp": [PortBinding(host_port="80")]},
    )
    with pytest.raises(Conflict, match="port publishing and the container type network mode"):
        await w.create(host_config=hc)
    with pytest.raises(InvalidParameter, match="IPv6"):
        await w.create(host_config=HostConfig(port_bindings={"80": [PortBinding(host_ip="::")]}))
    assert w.networking.warnings(
        HostConfig(network_mode="host", port_bindings={"80/tcp": None})
    ) == ["Published ports are discarded when using host network mode"]


def test_resolv_conf_drops_loopback_resolvers_and_falls_back_as_dockerd(tmp_path, monkeypatch):
    from dockyard.engine import etc_files

    real_open = open

    def fake_open(path, *a, **kw):
        if path == "/etc/resolv.conf":
            path = tmp_path / "resolv.conf"
        return real_open(path, *a, **kw)

    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\nsearch lan\noptions edns0\n")
    monkeypatch.setattr("builtins.open", fake_open)
    text = etc_files.resolv_conf(HostConfig(), False)
    assert "127.0.0.53" not in text and "nameserver 8.8.8.8\nnameserver 8.8.4.4" in text
    assert "search lan" in text and "options edns0" in text
    assert "nameserver 127.0.0.53" in etc_files.resolv_conf(HostConfig(), True)
    custom = etc_files.resolv_conf(HostConfig(dns=["192.0.2.1"], dns_search=["x.test"]), False)
    assert custom == "search x.test\nnameserver 192.0.2.1\noptions edns0\n"


def test_daemon_flag_default_address_pool():
    from dockyard.daemon import parse_args

    cfg = parse_args(
        ["--config-file", "/nonexistent", "--default-address-pool", "base=10.200.0.0/14,size=24"]
    )
    assert cfg.default_address_pools == [("10.200.0.0/14", 24)]
    assert (
        parse_args(["--config-file", "/nonexistent", "--bip", "10.1.0.1/24"]).bip == "10.1.0.1/24"
    )


def test_removing_rules_a_restart_already_flushed_skips_them(tmp_path):
    class Flushed(RecordingKernel):
        def firewall_apply(self, rules: str) -> None:
            if rules.count("-D ") > 1:  # iptables-restore fails on a missing rule
                raise KernelError("firewall_apply", (rules,), 22)
            super().firewall_apply(rules)

        def firewall_list(self, table: str) -> list[str]:
            present = (
                "-A DOCKYARD-DNAT-t1 -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.0.0.2:81"
            )
            return [present] if table == "nat" else []

    k = Flushed()
    fw = Firewall(k, "-t1")
    rules = fw.port_rules(
        "10.0.0.2",
        [PortMapping("tcp", 80, "0.0.0.0", 80), PortMapping("tcp", 81, "0.0.0.0", 81)],
    )
    fw.remove(rules)
    assert k.firewall == [
        "*nat\n-D DOCKYARD-DNAT-t1 -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.0.0.2:81\n"
        "COMMIT\n"
    ]


@async_test
async def test_after_a_crash_a_running_container_keeps_the_address_it_took_from_a_spare(tmp_path):
    w = World(tmp_path)
    await w.image("ubuntu")
    net_id = w.networking.default_network_id
    c1 = await w.run(cmd=["/bin/sleep"])
    await eventually(lambda: w.networking.driver.has_spare(w.networking.default))
    c2 = await w.run(cmd=["/bin/sleep"])
    ep2 = c2.endpoints["bridge"]
    on_disk = json.loads((tmp_path / "network-ipam.json").read_text())
    assert on_disk[net_id]["allocated"][ep2.ip].startswith("spare-")  # not written at start
    # The daemon dies here; the next one starts over the same data root.
    w2 = World(tmp_path, FakeLauncher())
    for c in (c1, c2):
        w2.launcher.alive[c.id] = w.launcher.last(c.id)
    await w2.containers.restore()
    held = w2.networking.ipam.allocations(net_id)
    assert held[ep2.ip] == ep2.id and held[c1.endpoints["bridge"].ip] == c1.endpoints["bridge"].id
    assert w2.networking.ipam.allocate(net_id, "new") not in (ep2.ip, c1.endpoints["bridge"].ip)


def test_an_address_released_without_saving_is_dropped_by_the_next_daemon(tmp_path):
    path = str(tmp_path / "ipam.json")
    ipam = Ipam(path)
    ipam.add_pool("n", "10.9.0.0/24")
    a = ipam.allocate("n", "gone")
    ipam.release("n", a, persist=False)
    assert ipam.allocations("n") == {}
    after_crash = Ipam(path)
    assert after_crash.allocations("n") == {a: "gone"}
    after_crash.retain(set())
    assert after_crash.allocations("n") == {}
