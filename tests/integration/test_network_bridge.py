"""The default bridge and published ports, with real containers and a real kernel.

Traffic goes only to 127.0.0.0/8, to the test daemon's bridge gateway (an
address of this host that the daemon created), to containers the tests start,
and from a network namespace a test creates itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.network.bridge import daemon_suffix, default_bridge_name

PAGE = "hello from the bridge"
# busybox httpd serving PAGE as /index.html on the given ports.
HTTPD = (
    "mkdir -p /www && echo '" + PAGE + "' > /www/index.html && "
    "for p in $PORTS; do httpd -p $p -h /www; done; exec sleep 300"
)


def _http_get(host: str, port: int, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=timeout) as r:
        return r.read().decode().strip()


def _wait_http(host: str, port: int, deadline: float = 15.0) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            return _http_get(host, port)
        except (OSError, urllib.error.URLError):
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return False
    except ConnectionRefusedError:
        return True


def _bridge_gateway(daemon) -> str:
    bridge = default_bridge_name(str(daemon.data_root))
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", bridge], capture_output=True, text=True
    ).stdout
    return out.split("inet ")[1].split("/")[0]


def _ephemeral_range() -> tuple[int, int]:
    lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(lo), int(hi)


def _host_network_state(daemon) -> dict[str, object]:
    """What the cleanup tests count, of this daemon's (other daemons run meanwhile):
    the interfaces on its bridge and the bridge's addresses, its firewall rules,
    its namespace files and their mounts. (Addresses handed out and not given
    back would show as the cycle test running out of them.)"""
    bridge = default_bridge_name(str(daemon.data_root))
    addrs = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", bridge], capture_output=True, text=True
    ).stdout
    mine = daemon_suffix(str(daemon.data_root))
    rules = {
        t: subprocess.run(["iptables", "-w", "-t", t, "-S"], capture_output=True, text=True).stdout
        for t in ("filter", "nat")
    }
    netns_dir = Path(daemon.data_root) / "run" / "netns"
    return {
        # Counted, not named: a spare sandbox is replaced by another one.
        "links": len(os.listdir(f"/sys/class/net/{bridge}/brif")),
        "addresses": sorted(line.split()[3] for line in addrs.splitlines()),
        "rules": {t: sorted(r for r in v.splitlines() if mine in r) for t, v in rules.items()},
        "netns": len(os.listdir(netns_dir)) if netns_dir.exists() else 0,
        "mounts": sum(1 for line in open("/proc/self/mountinfo") if str(netns_dir) in line),
    }


def _live_peers(netns: Path) -> set[int]:
    """Host-side ifindexes of the veths whose other end is in a namespace that
    still has its file under `netns` (spares and sandboxes of containers)."""
    peers: set[int] = set()
    for name in os.listdir(netns):
        out = subprocess.run(
            ["nsenter", f"--net={netns / name}", "ip", "-o", "link", "show"],
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        peers.update(int(m) for m in re.findall(r"@if(\d+):", out))
    return peers


def _settled_state(daemon) -> dict[str, object]:
    """_host_network_state once it has settled: the daemon's spare sandbox for the
    next start is there with its veth (it is made in the background after a
    start), and the kernel has torn down the namespaces (and so the veths) of
    containers that stopped (it does that in the background too: such a veth is
    still on the bridge, its namespace file gone), so that counts compare."""
    netns = Path(daemon.data_root) / "run" / "netns"
    brif = Path(f"/sys/class/net/{default_bridge_name(str(daemon.data_root))}/brif")
    deadline = time.monotonic() + 30
    while True:
        spares = sum(1 for n in os.listdir(netns) if n.startswith("spare-"))
        running = [
            c
            for c in daemon.request("GET", "/containers/json").json()
            if (c["NetworkSettings"]["Networks"].get("bridge") or {}).get("IPAddress")
        ]
        on_bridge = set()
        for port in os.listdir(brif):
            try:
                on_bridge.add(int(Path(f"/sys/class/net/{port}/ifindex").read_text()))
            except OSError:  # going meanwhile (ENOENT, or EINVAL while it is deleted)
                on_bridge.add(-1)
        if spares and len(on_bridge) == spares + len(running) and on_bridge <= _live_peers(netns):
            state = _host_network_state(daemon)
            # Other tests' containers on this shared daemon may end meanwhile: count
            # the interfaces beyond those of running containers.
            state["links"] = int(state["links"]) - len(running)  # type: ignore[call-overload]
            return state
        assert time.monotonic() < deadline, f"not settled: {spares} spares, {len(running)} running"
        time.sleep(0.05)


@pytest.fixture
def httpd(dockyard, unique) -> Iterator:
    """httpd(ports=[80], *run_flags) -> name of a running web container (removed after)."""
    names: list[str] = []

    def start(*flags: str, ports: tuple[int, ...] = (80,)) -> str:
        name = unique("web")
        names.append(name)
        proc = dockyard(
            "run", "-d", "--name", name, "-e", "PORTS=" + " ".join(map(str, ports)),
            *flags, "busybox", "sh", "-c", HTTPD,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return name

    yield start
    for name in names:
        dockyard("rm", "-f", name)


def test_container_gets_an_address_mac_and_default_route(daemon, dockyard, inspect, unique):
    gateway = _bridge_gateway(daemon)
    proc = dockyard(
        "run", "--rm", "busybox", "sh", "-c",
        "ip -o -4 addr show eth0; cat /sys/class/net/eth0/address; ip route; cat /etc/hosts; hostname",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    cidr = lines[0].split("inet ")[1].split()[0]
    iface = ipaddress.IPv4Interface(cidr)
    assert iface.network == ipaddress.IPv4Interface(f"{gateway}/{iface.network.prefixlen}").network
    assert str(iface.ip) != gateway
    mac = "02:42:" + ":".join(f"{b:02x}" for b in iface.ip.packed)
    assert lines[1] == mac
    assert f"default via {gateway} dev eth0" in proc.stdout
    hostname = lines[-1]
    assert f"{iface.ip}\t{hostname}" in proc.stdout  # /etc/hosts names its own address


def test_inspect_shows_the_endpoint_while_running(dockyard, inspect, httpd):
    name = httpd()
    info = inspect(name)
    ns = info["NetworkSettings"]
    ep = ns["Networks"]["bridge"]
    assert ep["IPAddress"] and ep["IPAddress"] == ns["IPAddress"]
    assert ep["Gateway"] == ns["Gateway"] and ep["MacAddress"] == ns["MacAddress"]
    assert len(ep["NetworkID"]) == 64 and len(ep["EndpointID"]) == 64
    assert os.path.exists(ns["SandboxKey"])
    assert dockyard("stop", "-t", "1", name).returncode == 0
    stopped = inspect(name)["NetworkSettings"]
    assert stopped["IPAddress"] == "" and stopped["Networks"]["bridge"]["IPAddress"] == ""
    assert not os.path.exists(ns["SandboxKey"])


def test_two_containers_reach_each_other_by_ip(dockyard, inspect, httpd):
    server = httpd()
    ip = inspect(server)["NetworkSettings"]["IPAddress"]
    proc = dockyard(
        "run", "--rm", "busybox", "sh", "-c",
        f"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -qO- http://{ip}/index.html && exit 0; sleep 0.3; done; exit 1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == PAGE


def test_published_on_all_addresses_serves_loopback_and_host_addresses(daemon, dockyard, httpd):
    name = httpd("-p", "0:80")
    port = int(dockyard("port", name, "80").stdout.strip().rsplit(":", 1)[1])
    assert _wait_http("127.0.0.1", port) == PAGE
    assert _http_get("127.0.0.2", port) == PAGE  # all of 127/8 is this host
    assert _http_get(_bridge_gateway(daemon), port) == PAGE
    # And from another container, through the host's address (hairpin NAT).
    proc = dockyard(
        "run", "--rm", "busybox", "timeout", "5", "wget", "-qO-",
        f"http://{_bridge_gateway(daemon)}:{port}/index.html",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == PAGE


def test_published_on_127_0_0_1_only(daemon, dockyard, httpd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = httpd("-p", f"127.0.0.1:{port}:80")
    assert dockyard("port", name).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert _wait_http("127.0.0.1", port) == PAGE
    assert _refused(_bridge_gateway(daemon), port)


def test_unpublished_port_is_not_reachable(daemon, dockyard, inspect, httpd):
    name = httpd("-p", "127.0.0.1:0:80", ports=(80, 8081))
    published = int(dockyard("port", name, "80").stdout.strip().rsplit(":", 1)[1])
    assert _wait_http("127.0.0.1", published) == PAGE
    # 8081 serves inside the container (the host reaches the bridge directly)...
    ip = inspect(name)["NetworkSettings"]["IPAddress"]
    assert _wait_http(ip, 8081) == PAGE
    # ...but no host address forwards to it.
    assert _refused("127.0.0.1", 8081)
    assert _refused(_bridge_gateway(daemon), 8081)
    assert "8081" not in dockyard("port", name).stdout


def test_taken_host_port_is_a_clear_error_and_leaves_nothing(daemon, dockyard, unique):
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        assert dockyard("run", "--rm", "busybox", "true").returncode == 0
        before = _settled_state(daemon)
        proc = dockyard("run", "--rm", "-p", f"{port}:80", "busybox", "true")
        assert proc.returncode == 125
        # Another program holds it: dockerd 28's words for a bind that fails.
        assert "failed to set up container networking: driver failed programming external " in (
            proc.stderr
        )
        assert re.search(
            rf"failed to bind host port for 0\.0\.0\.0:{port}:[0-9.]+:80/tcp: address already in use",
            proc.stderr,
        ), proc.stderr
        name = unique("taken")
        proc = dockyard("run", "-d", "--name", name, "-p", f"{port}:80", "busybox", "true")
        assert proc.returncode == 125
        assert "address already in use" in proc.stderr
        state = json.loads(dockyard("inspect", name).stdout)[0]["State"]
        assert not state["Running"] and "address already in use" in state["Error"]
        deadline = time.monotonic() + 20
        while (after := _settled_state(daemon)) != before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert after == before
        dockyard("rm", "-f", name)
    finally:
        holder.close()


def test_publish_all_uses_random_ephemeral_ports(dockyard, inspect, httpd):
    name = httpd("--expose", "80", "--expose", "8081", "-P", ports=(80, 8081))
    ports = inspect(name)["NetworkSettings"]["Ports"]
    lo, hi = _ephemeral_range()
    assert set(ports) == {"80/tcp", "8081/tcp"}
    for key, bindings in ports.items():
        assert bindings[0]["HostIp"] == "0.0.0.0"
        host_port = int(bindings[0]["HostPort"])
        assert lo <= host_port <= hi, (key, host_port)
        assert _wait_http("127.0.0.1", host_port) == PAGE
    listed = dockyard("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout
    for key, bindings in ports.items():
        assert f"0.0.0.0:{bindings[0]['HostPort']}->{key}" in listed


def test_port_range_and_udp(dockyard, inspect, unique):
    lo, _ = _ephemeral_range()
    name = unique("range")
    base = 0
    for candidate in range(lo - 200, lo - 20, 7):  # three free ports below the ephemeral range
        if all(_free(candidate + i) for i in range(3)):
            base = candidate
            break
    assert base
    proc = dockyard(
        "run", "-d", "--name", name, "-p", f"127.0.0.1:{base}-{base + 1}:7000-7001",
        "-p", f"127.0.0.1:{base + 2}:53/udp", "busybox", "sleep", "60",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        out = dockyard("port", name).stdout
        assert f"7000/tcp -> 127.0.0.1:{base}\n" in out
        assert f"7001/tcp -> 127.0.0.1:{base + 1}\n" in out
        assert f"53/udp -> 127.0.0.1:{base + 2}\n" in out
        # The daemon holds the ports: nobody else can bind them meanwhile.
        assert not _free(base)
    finally:
        dockyard("rm", "-f", name)
    assert _free(base)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_bad_publish_specs_are_refused(dockyard):
    proc = dockyard("run", "--rm", "-p", "[::1]:8080:80", "busybox", "true")
    assert proc.returncode == 125 and "IPv6" in proc.stderr
    proc = dockyard("run", "--rm", "-p", "999999:80", "busybox", "true")
    assert proc.returncode == 125 and "invalid" in proc.stderr.lower()
    proc = dockyard("run", "--rm", "--ip", "172.17.0.99", "busybox", "true")
    assert proc.returncode == 125
    assert "user specified IP address is supported on user defined networks only" in proc.stderr


def test_network_none_host_and_container_modes(dockyard, inspect, httpd):
    proc = dockyard("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
    assert proc.returncode == 0 and proc.stdout.split() == ["lo"]
    host_links = sorted(os.listdir("/sys/class/net"))
    proc = dockyard("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
    assert proc.returncode == 0 and set(proc.stdout.split()) & set(host_links)
    proc = dockyard("run", "--rm", "--network", "host", "-p", "80", "busybox", "true")
    assert proc.returncode == 0
    assert "Published ports are discarded when using host network mode" in proc.stderr
    web = httpd()
    ip = inspect(web)["NetworkSettings"]["IPAddress"]
    proc = dockyard(
        "run", "--rm", "--network", f"container:{web}", "busybox", "sh", "-c",
        "ip -o -4 addr show eth0; timeout 5 wget -qO- http://127.0.0.1/index.html",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"inet {ip}/" in proc.stdout and PAGE in proc.stdout


def test_dns_and_hosts_options(dockyard):
    proc = dockyard(
        "run", "--rm", "--dns", "192.0.2.53", "--dns-search", "example.test",
        "--dns-option", "ndots:2", "--add-host", "db.test:192.0.2.7",
        "--add-host", "gw.test:host-gateway", "--hostname", "box", "--domainname", "example.test",
        "busybox", "sh", "-c",
        "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; cat /proc/sys/kernel/domainname",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    resolv, hosts, domain = proc.stdout.split("---\n")
    assert domain == "example.test\n"
    assert "nameserver 192.0.2.53" in resolv
    assert "search example.test" in resolv and "options ndots:2" in resolv
    assert "192.0.2.7\tdb.test" in hosts
    gw_line = next(line for line in hosts.splitlines() if line.endswith("gw.test"))
    assert not gw_line.startswith("127.")  # the bridge's gateway, reachable from inside
    assert hosts.splitlines()[-1].endswith("\tbox.example.test box")


@contextlib.contextmanager
def _outside_namespace(gateway_subnet: str) -> Iterator[tuple[str, str]]:
    """A namespace standing for another machine: a veth to the host with addresses
    this test picks, routed to the host. Yields (namespace, host-side address)."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if = f"dkyt-{tag}", f"dkyt{tag}"
    # A /30 that overlaps nothing of the daemon's.
    used = ipaddress.IPv4Network(gateway_subnet)
    net = next(
        n
        for n in ipaddress.IPv4Network("10.254.0.0/16").subnets(new_prefix=30)
        if not n.overlaps(used)
        and n.network_address + 1
        not in [ipaddress.IPv4Address(a.split("/")[0]) for a in _host_addresses()]
    )
    host_ip, ns_ip = str(net.network_address + 1), str(net.network_address + 2)
    cmds = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", "eth0"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", ns, "route", "add", "default", "via", host_ip],
    ]
    try:
        for argv in cmds:
            subprocess.run(argv, check=True, capture_output=True)
        yield ns, host_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines()]


def _wget_from(ns: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "busybox", "timeout", "3", "wget", "-qO-", url],
        capture_output=True,
        text=True,
    )


def test_from_another_machine_with_forward_policy_drop(daemon, dockyard, inspect, httpd):
    """As on a host where dockerd set FORWARD's policy to DROP: a published port is
    reachable from outside through the host's address; a container's unpublished
    port is not, not even when routed to its address directly."""
    name = httpd("-p", "0:80", ports=(80, 8081))
    port = int(dockyard("port", name, "80").stdout.strip().rsplit(":", 1)[1])
    ip = inspect(name)["NetworkSettings"]["IPAddress"]
    subnet = f"{ip}/{inspect(name)['NetworkSettings']['IPPrefixLen']}"
    policy = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True)
    old = "DROP" if "-P FORWARD DROP" in policy.stdout else "ACCEPT"
    with _outside_namespace(str(ipaddress.IPv4Interface(subnet).network)) as (ns, host_ip):
        subprocess.run(["iptables", "-w", "-P", "FORWARD", "DROP"], check=True)
        try:
            _wait_http("127.0.0.1", port)
            proc = _wget_from(ns, f"http://{host_ip}:{port}/index.html")
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.strip() == PAGE
            assert _wget_from(ns, f"http://{ip}:8081/index.html").returncode != 0
            assert _wget_from(ns, f"http://{ip}:80/index.html").returncode != 0
        finally:
            subprocess.run(["iptables", "-w", "-P", "FORWARD", old], check=True)


@pytest.mark.docker_cli
def test_docker_cli_run_p_and_port(daemon, unique):
    name = unique("dcli")
    proc = daemon.docker(
        "run", "-d", "--name", name, "-p", "127.0.0.1::80", "-e", "PORTS=80",
        "busybox", "sh", "-c", HTTPD,
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        out = daemon.docker("port", name).stdout
        assert out.startswith("80/tcp -> 127.0.0.1:"), out
        port = int(out.strip().rsplit(":", 1)[1])
        assert _wait_http("127.0.0.1", port) == PAGE
        assert daemon.docker("port", name, "80").stdout == f"127.0.0.1:{port}\n"
        listed = daemon.docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout
        assert f"127.0.0.1:{port}->80/tcp" in listed
    finally:
        daemon.docker("rm", "-f", name)


def test_start_stop_cycles_leave_the_host_as_it_was(daemon, unique):
    """Each cycle: a namespace, a veth, an address, a published port, its rule;
    after all of them, the host's interfaces, addresses and rules are as before."""
    # More cycles than a test daemon's /24 has addresses: one not given back at
    # exit would run the subnet dry before the end.
    cycles = int(os.environ.get("DOCKYARD_NET_CYCLES", "300"))
    name = unique("cycle")
    body = {
        "Image": "busybox",
        "Cmd": ["true"],
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
    }
    r = daemon.request("POST", f"/containers/create?name={name}", body)
    assert r.status == 201, r.body
    cid = r.json()["Id"]

    def cycle() -> None:
        r = daemon.request("POST", f"/containers/{cid}/start")
        assert r.status == 204, r.body
        r = daemon.request("POST", f"/containers/{cid}/wait")
        assert r.status == 200 and r.json()["StatusCode"] == 0, r.body

    cycle()
    before = _settled_state(daemon)
    started = time.monotonic()
    try:
        for _ in range(cycles):
            cycle()
        elapsed = time.monotonic() - started
    finally:
        daemon.request("DELETE", f"/containers/{cid}?force=1")
    # A namespace's veth goes when the kernel has torn the namespace down, which
    # it does in the background: wait for that, not for anything else.
    deadline = time.monotonic() + 20
    while (after := _settled_state(daemon)) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert after == before
    print(f"{cycles} start/exit cycles on the bridge with a published port: {elapsed:.1f}s")


def test_sigkill_and_restart_reclaims_and_cleans(daemon_factory):
    """A SIGKILLed daemon's successor keeps what still runs (its port still serves)
    and releases what died meanwhile (namespace, rules, address)."""
    d = daemon_factory()
    d.import_busybox()
    keep, die = "keeper", "goner"
    proc = d.dockyard(
        "run", "-d", "--name", keep, "-p", "127.0.0.1::80", "-e", "PORTS=80",
        "busybox", "sh", "-c", HTTPD,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    port = int(d.dockyard("port", keep, "80").stdout.strip().rsplit(":", 1)[1])
    assert _wait_http("127.0.0.1", port) == PAGE
    proc = d.dockyard("run", "-d", "--name", die, "-p", "127.0.0.1::80", "busybox", "sleep", "2")
    assert proc.returncode == 0, proc.stderr
    die_info = json.loads(d.dockyard("inspect", die).stdout)[0]["NetworkSettings"]
    die_port = die_info["Ports"]["80/tcp"][0]["HostPort"]
    d.kill()  # SIGKILL
    time.sleep(3)  # `goner` exits while no daemon watches
    d.start()
    assert _wait_http("127.0.0.1", port) == PAGE
    assert not os.path.exists(die_info["SandboxKey"])
    nat = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True)
    mine = [
        r
        for r in nat.stdout.splitlines()
        if r.startswith(f"-A DOCKYARD-DNAT{daemon_suffix(str(d.data_root))}")
    ]
    assert (
        len(mine) == 1
        and f"--dport {port} " in mine[0]
        and f"--dport {die_port} " not in nat.stdout
    )
    assert not json.loads(d.dockyard("inspect", die).stdout)[0]["State"]["Running"]
    # A new container must not get `keeper`'s address.
    keep_ip = json.loads(d.dockyard("inspect", keep).stdout)[0]["NetworkSettings"]["IPAddress"]
    proc = d.dockyard("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    assert proc.returncode == 0 and f"inet {keep_ip}/" not in proc.stdout
    assert d.dockyard("rm", "-f", keep, die).returncode == 0


def test_mac_address_option(dockyard):
    proc = dockyard(
        "run", "--rm", "--mac-address", "92:d0:c6:0a:29:33", "busybox",
        "cat", "/sys/class/net/eth0/address",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "92:d0:c6:0a:29:33\n"
    proc = dockyard("run", "--rm", "--mac-address", "nonsense", "busybox", "true")
    assert proc.returncode == 125 and "invalid MAC address" in proc.stderr


def test_a_container_reaches_its_own_published_port_through_the_host(daemon, dockyard):
    """Hairpin NAT: out of the container to the host's address, back into itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = _bridge_gateway(daemon)
    script = (
        "mkdir /www && echo self > /www/index.html && httpd -p 80 -h /www && "
        f"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -qO- http://{gateway}:{port}/index.html"
        " && exit 0; sleep 0.3; done; exit 1"
    )
    proc = dockyard("run", "--rm", "-p", f"{port}:80", "busybox", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "self"
