"""The embedded DNS server that containers on user-defined networks query at 127.0.0.11.

As dockerd's: each container gets its own listener (UDP and TCP on 127.0.0.11:53),
opened inside the container's network namespace by the kernel layer and served
from the daemon's event loop (a socket keeps the namespace it was created in, so
no process runs in the container for it and no DNAT is needed). A listener knows
whose it is, so it answers only names of the networks that container is on:
container names, network aliases and short ids. Other names with a dot are
forwarded to the host's resolvers; a bare name that is not ours is answered
NXDOMAIN here (forwarding it would leak a container name of another network to
the host's resolvers, and no resolver outside knows it).

Wire format: dnslib (parsing and packing only; the sockets are ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Callable

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

log = logging.getLogger("dockyard.dns")

DNS_ADDRESS = "127.0.0.11"
TTL = 600  # dockerd's
MAX_TCP_MESSAGE = 65535
FORWARD_TIMEOUT = 2.0
# What one container may have in flight: queries past this are dropped (a resolver
# retries), so a container flooding its DNS cannot exhaust the daemon's descriptors.
MAX_PENDING = 64
MAX_TCP_CLIENTS = 16

# name (lower case, no trailing dot) -> IPv4 addresses; None when the name is not ours.
Resolver = Callable[[str], list[str] | None]


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's resolvers, as the daemon (in the host's namespace) reaches them."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    out.append(parts[1])
    except OSError:
        pass
    return out


class DNSAnswerer:
    """Builds the reply to one query: local names first, else forward or NXDOMAIN."""

    def __init__(
        self, resolve: Resolver, upstreams: list[str], forward: bool = True, port: int = 53
    ) -> None:
        self._resolve = resolve
        self._upstreams = upstreams
        self._forward = forward  # False on --internal networks: no way out
        self._port = port  # of the upstreams

    async def answer(self, data: bytes) -> bytes | None:
        try:
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - dnslib raises several types on garbage
            return None  # not a DNS message: no answer, as a resolver would
        if query.header.qr or not query.questions:
            return None
        reply = query.reply()
        reply.header.ra = 1
        q = query.questions[0]
        name = str(q.qname).rstrip(".").lower()
        qtype = q.qtype
        addrs = self._resolve(name) if qtype != QTYPE.PTR else None
        if addrs is not None:
            if qtype in (QTYPE.A, QTYPE.ANY):
                # Shuffled as libnetwork's resolver does: a name that several containers
                # share (a scaled compose service) spreads clients that take the first.
                addrs = random.sample(addrs, len(addrs))
                for ip in addrs:
                    reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
            # An AAAA (or other) query for a name we know: NOERROR with no records,
            # so resolvers use the A answer instead of asking elsewhere.
            return reply.pack()
        if self._forward and "." in name and qtype != QTYPE.PTR and self._upstreams:
            forwarded = await self._forward_query(data)
            if forwarded is not None:
                return forwarded
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()

    async def _forward_query(self, data: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        for server in self._upstreams:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (server, self._port))
                await loop.sock_sendall(sock, data)
                return await asyncio.wait_for(loop.sock_recv(sock, 65535), FORWARD_TIMEOUT)
            except (OSError, TimeoutError):
                continue
            finally:
                sock.close()
        return None


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, answerer: DNSAnswerer, tasks: set[asyncio.Task[None]]) -> None:
        self._answerer = answerer
        self._tasks = tasks
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self._tasks) >= MAX_PENDING:
            return
        task = asyncio.ensure_future(self._reply(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        out = await self._answerer.answer(data)
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


class DNSListener:
    """One container's DNS server on a UDP and a listening TCP socket (already bound)."""

    def __init__(self, udp: socket.socket, tcp: socket.socket, answerer: DNSAnswerer) -> None:
        self._udp_sock = udp
        self._tcp_sock = tcp
        self._answerer = answerer
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tcp_clients = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp_sock.setblocking(False)
        self._tcp_sock.setblocking(False)
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self._answerer, self._tasks), sock=self._udp_sock
        )
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=self._tcp_sock)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # RFC 7766 framing: a two-byte length before each message; several per connection.
        if self._tcp_clients >= MAX_TCP_CLIENTS:
            writer.close()
            return
        self._tcp_clients += 1
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), 10)
                (size,) = struct.unpack("!H", head)
                data = await asyncio.wait_for(reader.readexactly(size), 10)
                out = await self._answerer.answer(data)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        else:
            self._udp_sock.close()
        if self._tcp is not None:
            self._tcp.close()
        else:
            self._tcp_sock.close()
        for task in list(self._tasks):
            task.cancel()


__all__ = ["DNS_ADDRESS", "DNSAnswerer", "DNSListener", "Resolver", "host_nameservers"]
