"""The DNS listener opened inside a network namespace the test creates, queried from
inside it with busybox nslookup (only 127.0.0.11 of that namespace is ever asked)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from dockyard.kernel.linux import LinuxKernel
from dockyard.network.dns import DNS_ADDRESS, DNSAnswerer, DNSListener

pytestmark = pytest.mark.root

BUSYBOX = shutil.which("busybox")


def nslookup(netns: str, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={netns}", BUSYBOX or "busybox", "nslookup", name, DNS_ADDRESS],
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.skipif(os.geteuid() != 0 or BUSYBOX is None, reason="needs root and busybox")
def test_listener_in_a_netns_answers_there_and_not_on_the_host(tmp_path):
    kernel = LinuxKernel()
    netns = str(tmp_path / "ns")
    kernel.netns_create(netns)
    names = {"web": ["10.123.0.2"]}

    async def scenario() -> tuple[subprocess.CompletedProcess[str], ...]:
        udp, tcp = await asyncio.to_thread(kernel.listen_in_netns, netns, DNS_ADDRESS, 53)
        # The sockets live in the namespace: on the host 127.0.0.11:53 stays free.
        probe = __import__("socket").socket()
        try:
            assert probe.connect_ex((DNS_ADDRESS, 53)) != 0
        finally:
            probe.close()
        listener = DNSListener(udp, tcp, DNSAnswerer(names.get, [], forward=False))
        await listener.start()
        try:
            found = await asyncio.to_thread(nslookup, netns, "web")
            missing = await asyncio.to_thread(nslookup, netns, "db")
        finally:
            listener.close()
        return found, missing

    try:
        found, missing = asyncio.run(scenario())
    finally:
        kernel.netns_delete(netns)
    assert "10.123.0.2" in found.stdout, found.stdout + found.stderr
    assert "10.123.0.2" not in missing.stdout
    assert "NXDOMAIN" in missing.stdout + missing.stderr or missing.returncode != 0
    assert not os.path.exists(netns)
