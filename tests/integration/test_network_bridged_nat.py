"""Traffic between two containers of one network is never NATed, whatever else
on the host masquerades the same subnet.

With br_netfilter loaded and net.bridge.bridge-nf-call-iptables=1 (as on any host
where dockerd ran), packets bridged between two ports of a bridge pass the nat
table's POSTROUTING with -o the bridge. A bridge elsewhere on the same subnet
with dockerd's rule for it, `-s S ! -o that-bridge -j MASQUERADE`, then rewrote
the pinger's address to our gateway; the reply, un-NATed on the host, was routed
out of the other bridge (its route came first) and the ping got no answer.

Skipped where br_netfilter is not loaded or the sysctl is 0: bridged packets
never reach iptables there and the bug cannot show. The tests never load a
module nor change the sysctl. Traffic goes only between the tests' containers."""

from __future__ import annotations

import ipaddress
import random
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.root

BRNF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def require_bridged_iptables() -> None:
    try:
        with open(BRNF) as f:
            value = f.read().strip()
    except FileNotFoundError:
        pytest.skip(f"br_netfilter is not loaded (no {BRNF}): bridged packets skip iptables")
    if value != "1":
        pytest.skip(f"{BRNF} is {value}: bridged packets skip iptables")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", *args], check=check, capture_output=True, text=True)


def ping_within_a_network(d, subnet: str) -> str:
    """A container of a network on `subnet` pings another one; returns the output."""
    tag = uuid.uuid4().hex[:8]
    name, box = f"nat-{tag}", f"box-{tag}"
    # A random address: an earlier run's conntrack entry for the same echo (busybox
    # ping's id repeats) would let the packets pass without a NAT decision.
    addr = str(ipaddress.IPv4Network(subnet)[random.randrange(10, 250)])
    made = d.dockyard("network", "create", "--subnet", subnet, name)
    assert made.returncode == 0, made.stderr
    try:
        run = d.dockyard("run", "-d", "--name", box, "--network", name, "--ip", addr,
                         "busybox", "sleep", "60")  # fmt: skip
        assert run.returncode == 0, run.stderr
        out = d.dockyard("run", "--rm", "--network", name, "busybox", "sh", "-c",
                         f"ping -c1 -W3 {addr} && echo PING-OK")  # fmt: skip
        return out.stdout + out.stderr
    finally:
        d.dockyard("rm", "-f", box)
        d.dockyard("network", "rm", name)


def test_a_dockerd_style_masquerade_of_the_same_subnet_leaves_bridged_traffic_alone(daemon):
    """What dockerd (or any daemon started before ours) leaves for its own bridge on
    the subnet: the bridge with its address and route, and its MASQUERADE rule
    hooked into POSTROUTING after ours."""
    require_bridged_iptables()
    subnet = "10.238.0.0/24"
    tag = uuid.uuid4().hex[:8]
    other, chain = f"dkyt{tag}", f"DKYTEST-{tag}"
    ip("link", "add", other, "type", "bridge")
    try:
        ip("addr", "add", "10.238.0.1/24", "dev", other)
        ip("link", "set", other, "up")
        iptables("-t", "nat", "-N", chain)
        iptables("-t", "nat", "-A", chain, "-s", subnet, "!", "-o", other, "-j", "MASQUERADE")
        iptables("-t", "nat", "-A", "POSTROUTING", "-j", chain)
        out = ping_within_a_network(daemon, subnet)
    finally:
        iptables("-t", "nat", "-D", "POSTROUTING", "-j", chain, check=False)
        iptables("-t", "nat", "-F", chain, check=False)
        iptables("-t", "nat", "-X", chain, check=False)
        ip("link", "del", other)
    assert "PING-OK" in out, out


def test_another_dockyard_daemon_on_the_same_subnet_does_not_nat_our_bridged_traffic(
    daemon, daemon_factory
):
    """A daemon started after ours (its jumps come first) with its default bridge
    on the subnet our network then takes."""
    require_bridged_iptables()
    other = daemon_factory(extra_args=["--bip", "10.238.1.1/24"])
    assert other.dockyard("network", "inspect", "bridge").returncode == 0
    out = ping_within_a_network(daemon, "10.238.1.0/24")
    assert "PING-OK" in out, out
