"""The embedded DNS server's answers, over real sockets on loopback (no root)."""

from __future__ import annotations

import asyncio
import socket
import struct

from dnslib import QTYPE, RCODE, DNSRecord
from fakes import async_test

from dockyard.kernel.fake import RecordingKernel
from dockyard.network.dns import DNSAnswerer, DNSListener

NAMES = {"web": ["10.5.0.2"], "www": ["10.5.0.2"], "0123456789ab": ["10.5.0.2"]}


def resolve(name: str) -> list[str] | None:
    return NAMES.get(name)


async def ask(answerer: DNSAnswerer, name: str, qtype: str = "A") -> DNSRecord | None:
    out = await answerer.answer(DNSRecord.question(name, qtype).pack())
    return DNSRecord.parse(out) if out is not None else None


@async_test
async def test_known_names_get_their_address_and_nothing_else():
    a = DNSAnswerer(resolve, [])
    for name in ("web", "WWW", "0123456789ab", "web."):
        reply = await ask(a, name)
        assert reply.header.rcode == RCODE.NOERROR
        assert [str(r.rdata) for r in reply.rr] == ["10.5.0.2"], name
        assert reply.rr[0].ttl == 600
    aaaa = await ask(a, "web", "AAAA")
    assert aaaa.header.rcode == RCODE.NOERROR and aaaa.rr == []


@async_test
async def test_a_name_of_several_containers_answers_all_in_shuffled_order():
    """`compose up --scale api=3`: clients that take the first address spread out."""
    three = ["10.5.0.2", "10.5.0.3", "10.5.0.4"]
    a = DNSAnswerer(lambda name: three if name == "api" else None, [])
    firsts = set()
    for _ in range(60):
        reply = await ask(a, "api")
        got = [str(r.rdata) for r in reply.rr]
        assert sorted(got) == three
        firsts.add(got[0])
    assert firsts == set(three)


@async_test
async def test_unknown_bare_names_are_nxdomain_without_forwarding():
    sent: list[bytes] = []

    class Upstream(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            sent.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Upstream, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        a = DNSAnswerer(resolve, ["127.0.0.1"], port=port)
        reply = await ask(a, "db")
        assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []
        ptr = await ask(a, "2.0.5.10.in-addr.arpa", "PTR")
        assert ptr.header.rcode == RCODE.NXDOMAIN
        await asyncio.sleep(0.05)
        assert sent == []
    finally:
        transport.close()


@async_test
async def test_dotted_names_go_to_the_upstream_and_its_answer_comes_back():
    class Upstream(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            q = DNSRecord.parse(data)
            r = q.reply()
            r.add_answer(*__import__("dnslib").RR.fromZone(f"{q.q.qname} 60 A 10.99.0.1"))
            self.transport.sendto(r.pack(), addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Upstream, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        reply = await ask(DNSAnswerer(resolve, ["127.0.0.1"], port=port), "db.example")
        assert [str(r.rdata) for r in reply.rr] == ["10.99.0.1"]
        # an --internal network: nothing goes out
        reply = await ask(
            DNSAnswerer(resolve, ["127.0.0.1"], forward=False, port=port), "db.example"
        )
        assert reply.header.rcode == RCODE.NXDOMAIN
    finally:
        transport.close()


@async_test
async def test_garbage_and_answers_are_not_answered():
    a = DNSAnswerer(resolve, [])
    assert await a.answer(b"\x00\x01garbage") is None
    assert await a.answer(b"") is None
    reply = DNSRecord.question("web").reply().pack()
    assert await a.answer(reply) is None  # a response (QR set), not a query


@async_test
async def test_listener_serves_udp_and_tcp():
    udp, tcp = RecordingKernel().listen_in_netns("/x", "127.0.0.11", 53)
    port = udp.getsockname()[1]
    listener = DNSListener(udp, tcp, DNSAnswerer(resolve, []))
    await listener.start()
    loop = asyncio.get_running_loop()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", port))
        await loop.sock_sendall(s, DNSRecord.question("www").pack())
        data = await asyncio.wait_for(loop.sock_recv(s, 4096), 2)
        s.close()
        assert [str(r.rdata) for r in DNSRecord.parse(data).rr] == ["10.5.0.2"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for name in ("web", "nobody"):
            q = DNSRecord.question(name).pack()
            writer.write(struct.pack("!H", len(q)) + q)
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            reply = DNSRecord.parse(await reader.readexactly(size))
            assert reply.q.qtype == QTYPE.A
        assert reply.header.rcode == RCODE.NXDOMAIN
        writer.close()
    finally:
        listener.close()
    # closed: the port no longer answers
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        s.close()


@async_test
async def test_a_flood_of_queries_is_bounded():
    release = asyncio.Event()
    started = 0

    class Slow(DNSAnswerer):
        async def answer(self, data):
            nonlocal started
            started += 1
            await release.wait()
            return None

    udp, tcp = RecordingKernel().listen_in_netns("/x", "127.0.0.11", 53)
    port = udp.getsockname()[1]
    listener = DNSListener(udp, tcp, Slow(resolve, []))
    await listener.start()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(500):
            s.sendto(DNSRecord.question("web").pack(), ("127.0.0.1", port))
        await asyncio.sleep(0.3)
        assert started == 64  # MAX_PENDING in flight; the rest dropped
    finally:
        release.set()
        s.close()
        listener.close()
