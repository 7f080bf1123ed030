"""User-defined networks with real containers: DNS by name, alias and short id on the
same network only, isolation between networks, live connect/disconnect, --internal,
and nothing left on the host after `network rm`.

Traffic goes only to addresses of the containers these tests start."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.root


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def rules_mentioning(word: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if word in line]


@pytest.fixture
def net(dockyard, unique):
    """net(*flags) -> (name, id): a network removed (with its containers) at the end."""
    made: list[str] = []
    containers: list[str] = []

    def make(*flags: str) -> tuple[str, str]:
        name = unique("net")
        proc = dockyard("network", "create", *flags, name)
        assert proc.returncode == 0, proc.stderr
        made.append(name)
        return name, proc.stdout.strip()

    make.containers = containers  # type: ignore[attr-defined]
    yield make
    if containers:
        dockyard("rm", "-f", *containers)
    for name in made:
        dockyard("network", "rm", "-f", name)


def run_d(dockyard, net, *args: str) -> str:
    proc = dockyard("run", "-d", *args)
    assert proc.returncode == 0, proc.stderr
    net.containers.append(proc.stdout.strip())
    return proc.stdout.strip()


def sh(
    dockyard, network: str, script: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return dockyard(
        "run", "--rm", "--network", network, "busybox", "sh", "-c", script, timeout=timeout
    )


def test_create_ls_inspect_rm_and_the_bridge_comes_and_goes(dockyard, net):
    name, nid = net("--subnet", "10.231.0.0/24", "--gateway", "10.231.0.254",
                    "--ip-range", "10.231.0.128/25", "--label", "team=blue")  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", nid)
    bridge = f"br-{nid[:12]}"
    assert bridge in links()
    assert rules_mentioning(bridge), "the bridge's firewall rules"

    ls = dockyard("network", "ls")
    assert ls.stdout.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert re.search(rf"^{nid[:12]}\s+{name}\s+bridge\s+local$", ls.stdout, re.M), ls.stdout
    q = dockyard("network", "ls", "-q", "--no-trunc", "--filter", f"name={name}")
    assert q.stdout.split() == [nid]
    q = dockyard("network", "ls", "-q", "--filter", "label=team=blue")
    assert nid[:12] in q.stdout.split()
    fmt = dockyard(
        "network", "ls", "--filter", f"id={nid[:10]}", "--format", "{{.Name}} {{.Internal}}"
    )
    assert fmt.stdout == f"{name} false\n"

    info = json.loads(dockyard("network", "inspect", name).stdout)[0]
    assert info["IPAM"]["Config"] == [
        {"Subnet": "10.231.0.0/24", "IPRange": "10.231.0.128/25", "Gateway": "10.231.0.254"}
    ]
    assert info["Labels"] == {"team": "blue"} and info["Driver"] == "bridge"
    subnet = dockyard("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", name)
    assert subnet.stdout == "10.231.0.0/24\n"

    dup = dockyard("network", "create", name)
    assert dup.returncode == 1
    assert (
        dup.stderr.strip() == f"Error response from daemon: network with name {name} already exists"
    )
    overlap = dockyard("network", "create", "--subnet", "10.231.0.64/26", name + "x")
    assert "Pool overlaps with other one on this address space" in overlap.stderr
    bad = dockyard("network", "create", "-d", "overlay", name + "y")
    assert bad.stderr.strip() == 'Error response from daemon: plugin "overlay" not found'

    rm = dockyard("network", "rm", name)
    assert rm.returncode == 0 and rm.stdout == f"{name}\n"
    assert bridge not in links()
    assert rules_mentioning(bridge) == []
    again = dockyard("network", "rm", name)
    assert again.returncode == 1
    assert again.stderr.strip() == f"Error response from daemon: network {name} not found"
    missing = dockyard("network", "inspect", name)
    assert missing.returncode == 1 and f"No such network: {name}" in missing.stderr


def test_predefined_networks_stay(dockyard):
    names = dockyard("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"bridge", "host", "none"} <= set(names)
    rm = dockyard("network", "rm", "bridge")
    assert rm.returncode == 1
    assert rm.stderr.strip() == (
        "Error response from daemon: bridge is a pre-defined network and cannot be removed"
    )


def test_names_aliases_and_short_ids_resolve_and_reach_on_one_network_only(dockyard, net, unique):
    front, _ = net()
    other, _ = net()
    web, peer = unique("web"), unique("peer")
    web_id = run_d(dockyard, net, "--name", web, "--network", front, "--network-alias", "www",
                   "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")  # fmt: skip
    run_d(dockyard, net, "--name", peer, "--network", front, "busybox", "sleep", "300")
    web_ip = json.loads(dockyard("inspect", web).stdout)[0]["NetworkSettings"]["Networks"][front][
        "IPAddress"
    ]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", web_ip), web_ip

    same = sh(
        dockyard,
        front,
        f"cat /etc/resolv.conf; for n in {web} www {web_id[:12]} {peer}; do nslookup $n; done;"
        f" ping -c1 -W3 {peer} >/dev/null && echo PING-OK;"
        f" timeout 5 wget -qO- http://www:8080/hostname",
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "nameserver 127.0.0.11" in same.stdout
    assert same.stdout.count(f"Address: {web_ip}") >= 3, same.stdout
    assert "PING-OK" in same.stdout
    assert same.stdout.rstrip().endswith(web_id[:12]), same.stdout  # the served /etc/hostname

    elsewhere = sh(
        dockyard,
        other,
        f"nslookup {web}; nslookup www; ping -c1 -W2 {web_ip} && echo PING-OK;"
        f" timeout 5 wget -qO- http://{web_ip}:8080/hostname && echo WGET-OK; true",
    )
    assert f"Address: {web_ip}" not in elsewhere.stdout, elsewhere.stdout
    assert "NXDOMAIN" in elsewhere.stdout
    assert "PING-OK" not in elsewhere.stdout and "WGET-OK" not in elsewhere.stdout
    # the default bridge is isolated from it too
    default = dockyard(
        "run", "--rm", "busybox", "sh", "-c", f"ping -c1 -W2 {web_ip} && echo PING-OK; true"
    )
    assert "PING-OK" not in default.stdout

    info = json.loads(dockyard("inspect", web).stdout)[0]
    ep = info["NetworkSettings"]["Networks"][front]
    assert ep["Aliases"] == ["www"] and ep["DNSNames"] == [web, "www", web_id[:12]]
    members = json.loads(dockyard("network", "inspect", front).stdout)[0]["Containers"]
    assert members[web_id]["Name"] == web
    assert members[web_id]["IPv4Address"] == f"{web_ip}/{ep['IPPrefixLen']}"


def test_connect_and_disconnect_a_running_container(dockyard, net, unique):
    side, _ = net("--subnet", "10.232.0.0/24")
    box = unique("box")
    run_d(dockyard, net, "--name", box, "busybox", "sleep", "300")  # on the default bridge
    pid = dockyard("inspect", "-f", "{{.State.Pid}}", box).stdout.strip()

    def ifaces() -> str:
        return subprocess.run(
            ["nsenter", "-t", pid, "-n", "ip", "-o", "-4", "addr"], capture_output=True, text=True
        ).stdout

    assert "eth1" not in ifaces()
    con = dockyard("network", "connect", "--alias", "boxy", "--ip", "10.232.0.77", side, box)
    assert con.returncode == 0, con.stderr
    assert re.search(r"eth1\s+inet 10\.232\.0\.77/24", ifaces()), ifaces()
    seen = sh(dockyard, side, "nslookup boxy; ping -c1 -W3 10.232.0.77 >/dev/null && echo PING-OK")
    assert "Address: 10.232.0.77" in seen.stdout and "PING-OK" in seen.stdout, seen.stdout
    twice = dockyard("network", "connect", side, box)
    assert twice.returncode == 1 and "already exists in network" in twice.stderr

    dis = dockyard("network", "disconnect", side, box)
    assert dis.returncode == 0, dis.stderr
    assert "eth1" not in ifaces()
    gone = sh(dockyard, side, "nslookup boxy; ping -c1 -W2 10.232.0.77 && echo PING-OK; true")
    assert "PING-OK" not in gone.stdout and "NXDOMAIN" in gone.stdout
    networks = dockyard("inspect", "-f", "{{json .NetworkSettings.Networks}}", box).stdout
    assert side not in networks


def test_internal_network_has_no_way_out(dockyard, net, unique):
    inner, _ = net("--internal")
    a = unique("in")
    run_d(dockyard, net, "--name", a, "--network", inner, "busybox", "sleep", "300")
    out = sh(dockyard, inner, f"ip route; ping -c1 -W3 {a} >/dev/null && echo PEER-OK")
    assert out.returncode == 0, out.stderr
    assert "default" not in out.stdout
    assert "PEER-OK" in out.stdout  # inside the network, containers still meet
    info = json.loads(dockyard("network", "inspect", inner).stdout)[0]
    assert info["Internal"] is True
    bridge = f"br-{info['Id'][:12]}"
    assert not [r for r in rules_mentioning(bridge) if "MASQUERADE" in r]


def test_network_in_use_is_not_removed_and_cleanup_leaves_nothing(dockyard, net, unique):
    busy, nid = net()
    c = unique("user")
    cid = run_d(dockyard, net, "--name", c, "--network", busy, "busybox", "sleep", "300")
    bridge = f"br-{nid[:12]}"
    assert os.listdir(f"/sys/class/net/{bridge}/brif"), "the container's veth on the bridge"
    rm = dockyard("network", "rm", busy)
    assert rm.returncode == 1
    assert rm.stderr.strip() == (
        f"Error response from daemon: error while removing network: network {busy} id {nid} "
        "has active endpoints"
    )
    assert dockyard("stop", "-t", "1", c).returncode == 0
    # The veth goes with the container's namespace, which the kernel frees shortly after.
    deadline = time.monotonic() + 10
    while os.listdir(f"/sys/class/net/{bridge}/brif") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(f"/sys/class/net/{bridge}/brif") == []
    assert dockyard("rm", c).returncode == 0
    net.containers.remove(cid)
    prune = dockyard("network", "prune", "-f", "--filter", f"label=none-{nid[:6]}")
    assert prune.stdout == ""  # nothing matched the label
    prune = dockyard("network", "prune", "-f")
    assert prune.returncode == 0 and busy in prune.stdout.splitlines(), prune.stdout
    # (other test runs on this host add and remove interfaces meanwhile: count ours)
    assert bridge not in links()
    assert rules_mentioning(bridge) == []


def test_networks_and_dns_survive_daemon_restarts(daemon_factory):
    """After a SIGKILL the next daemon serves the running container's names again;
    after a clean stop (bridges and rules removed) the network comes back at start."""
    d = daemon_factory()
    d.import_busybox()
    made = d.dockyard("network", "create", "--subnet", "10.236.0.0/24", "keep")
    assert made.returncode == 0, made.stderr
    bridge = f"br-{made.stdout.strip()[:12]}"
    srv = d.dockyard("run", "-d", "--name", "srv", "--network", "keep", "--network-alias", "sv",
                     "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")  # fmt: skip
    assert srv.returncode == 0, srv.stderr

    def ask(name: str) -> str:
        out = d.dockyard("run", "--rm", "--network", "keep", "busybox", "sh", "-c",
                         f"nslookup {name}; timeout 5 wget -qO- http://{name}:8080/hostname")  # fmt: skip
        return out.stdout

    assert srv.stdout.strip()[:12] in ask("sv")
    d.kill()
    d.start()
    assert bridge in links()
    assert srv.stdout.strip()[:12] in ask("sv"), "the DNS listener and the route are back"

    assert d.stop() == 0
    assert bridge not in links() and rules_mentioning(bridge) == []
    d.start()
    assert bridge in links() and rules_mentioning(bridge)
    assert d.dockyard("start", "srv").returncode == 0
    assert srv.stdout.strip()[:12] in ask("srv")
    assert d.dockyard("rm", "-f", "srv").returncode == 0
    assert d.dockyard("network", "rm", "keep").returncode == 0
    assert bridge not in links() and rules_mentioning(bridge) == []


def test_cycles_on_a_user_network_leave_no_interfaces_fds_or_rules(daemon, dockyard, net, unique):
    """Each run opens a sandbox, a veth, an address and a DNS listener (two sockets in
    the daemon): after many runs the bridge has no port left and the daemon holds
    no more descriptors than before."""
    name, nid = net("--subnet", "10.237.0.0/24")
    bridge = f"br-{nid[:12]}"
    fds = f"/proc/{daemon.proc.pid}/fd"

    def settled_ports() -> list[str]:
        deadline = time.monotonic() + 20
        while os.listdir(f"/sys/class/net/{bridge}/brif") and time.monotonic() < deadline:
            time.sleep(0.1)
        return os.listdir(f"/sys/class/net/{bridge}/brif")

    assert dockyard("run", "--rm", "--network", name, "busybox", "true").returncode == 0
    settled_ports()
    before_fds = len(os.listdir(fds))
    before_rules = len(rules_mentioning(bridge))
    for _ in range(20):
        me = unique("cyc")
        proc = dockyard("run", "--rm", "--network", name, "--name", me, "busybox", "nslookup", me)
        assert proc.returncode == 0 and "Address: 10.237.0." in proc.stdout, proc.stdout
    assert settled_ports() == []
    assert len(os.listdir(fds)) <= before_fds + 2, "descriptors left in the daemon"
    assert len(rules_mentioning(bridge)) == before_rules


def test_concurrent_starts_get_distinct_addresses_never_an_aux_address(dockyard, net, unique):
    from concurrent.futures import ThreadPoolExecutor

    name, _ = net("--subnet", "10.239.0.0/29", "--aux-address", "printer=10.239.0.2")
    names = [unique("par") for _ in range(4)]

    def start(n: str) -> subprocess.CompletedProcess[str]:
        return dockyard("run", "-d", "--name", n, "--network", name, "busybox", "sleep", "300")

    with ThreadPoolExecutor(4) as pool:
        procs = list(pool.map(start, names))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
        net.containers.append(proc.stdout.strip())
    ips = [
        json.loads(dockyard("inspect", n).stdout)[0]["NetworkSettings"]["Networks"][name][
            "IPAddress"
        ]
        for n in names
    ]
    # /29: .1 the gateway, .2 reserved, .7 broadcast: .3 to .6 for the four
    assert sorted(ips) == ["10.239.0.3", "10.239.0.4", "10.239.0.5", "10.239.0.6"], ips
    full = dockyard("run", "--rm", "--network", name, "busybox", "true")
    assert full.returncode != 0 and "no available IPv4 addresses" in full.stderr, full.stderr
