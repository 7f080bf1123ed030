"""IP address management: subnets for networks, addresses for endpoints.

`Ipam` holds one `AddressPool` per network. An address is handed out to one
owner (an endpoint or container id) at a time; allocation goes round the
range from the last address given, as dockerd's does, so a freshly released
address is not reused at once (a peer's ARP cache may still point at it).

State is a small JSON document, rewritten atomically (temp file + rename) at
every change, so a daemon that restarts after a crash finds which addresses
it handed out; `retain()` then drops the owners that did not survive. It
skips fsync: after a reboot no endpoint exists anyway.

`choose_subnet` is dockerd's default-address-pools: the first subnet of the
configured pools that overlaps no route or address of the host and no other
network's subnet.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from dockyard.errors import Conflict, InvalidParameter, Unavailable, storage_full

IPv4Network = ipaddress.IPv4Network

# dockerd's default-address-pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
DEFAULT_ADDRESS_POOLS: list[tuple[str, int]] = [
    ("172.17.0.0/16", 16),
    ("172.18.0.0/15", 16),
    ("172.20.0.0/14", 16),
    ("172.24.0.0/13", 16),
    ("192.168.0.0/16", 20),
]


def parse_address_pools(raw: list[dict[str, object]]) -> list[tuple[str, int]]:
    """daemon.json's "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}]."""
    pools = []
    for entry in raw:
        try:
            base = IPv4Network(str(entry["base"]))
            size = int(entry["size"])  # type: ignore[call-overload]
        except (KeyError, ValueError, TypeError) as e:
            raise InvalidParameter(f"invalid default-address-pools entry {entry}: {e}") from None
        if not base.prefixlen <= size <= 30:
            raise InvalidParameter(
                f"invalid default-address-pools entry {entry}: size must be between "
                f"{base.prefixlen} and 30"
            )
        pools.append((str(base), size))
    return pools


def choose_subnet(pools: Iterable[tuple[str, int]], in_use: Iterable[str]) -> str:
    """The first subnet of `pools` that overlaps nothing in `in_use` (CIDRs)."""
    used = [ipaddress.ip_network(c, strict=False) for c in in_use]
    used4 = [n for n in used if n.version == 4 and n.prefixlen > 0]  # a default route overlaps all
    for base, size in pools:
        for candidate in IPv4Network(base).subnets(new_prefix=size):
            if not any(candidate.overlaps(n) for n in used4):
                return str(candidate)
    raise Unavailable(
        "could not find an available, non-overlapping IPv4 address pool among the defaults "
        "to assign to the network"
    )


@dataclass
class AddressPool:
    subnet: IPv4Network
    gateway: ipaddress.IPv4Address
    ip_range: IPv4Network
    allocated: dict[str, str] = field(default_factory=dict)  # address -> owner
    last: int = 0  # the last address handed out, as an integer

    def to_json(self) -> dict[str, object]:
        return {
            "subnet": str(self.subnet),
            "gateway": str(self.gateway),
            "ip_range": str(self.ip_range),
            "allocated": self.allocated,
            "last": self.last,
        }

    @classmethod
    def from_json(cls, doc: dict) -> AddressPool:
        return cls(
            subnet=IPv4Network(doc["subnet"]),
            gateway=ipaddress.IPv4Address(doc["gateway"]),
            ip_range=IPv4Network(doc["ip_range"]),
            allocated=dict(doc.get("allocated") or {}),
            last=int(doc.get("last") or 0),
        )


log = logging.getLogger("dockyard.network")


class Ipam:
    def __init__(self, state_path: str | None = None) -> None:
        self._path = state_path
        self._pools: dict[str, AddressPool] = {}
        if state_path and os.path.exists(state_path):
            try:
                with open(state_path) as f:
                    doc = json.load(f)
                self._pools = {k: AddressPool.from_json(v) for k, v in doc.items()}
            except (OSError, ValueError, KeyError, TypeError):
                self._pools = {}  # unreadable: start empty, as after a reboot

    def _save(self) -> None:
        if not self._path:
            return
        tmp = self._path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump({k: p.to_json() for k, p in self._pools.items()}, f)
            os.rename(tmp, self._path)
        except OSError as e:
            full = storage_full(e)
            if full is None:
                raise
            # A full data root must not fail a release (an exit, a removal, a daemon
            # start): the allocations stay right in memory; the next save writes them all.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.error("address allocations not saved (%s): kept in memory", full)

    # pools -----------------------------------------------------------------
    def add_pool(
        self, pool_id: str, subnet: str, gateway: str = "", ip_range: str = ""
    ) -> AddressPool:
        """Register a network's subnet (the gateway defaults to its first address).
        Re-adding the same subnet keeps the allocations (a daemon restart)."""
        try:
            net = IPv4Network(subnet, strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid subnet {subnet}") from None
        if net.prefixlen > 30:
            raise InvalidParameter(f"subnet {subnet} is too small for a network")
        try:
            gw = ipaddress.IPv4Address(gateway) if gateway else net.network_address + 1
            rng = IPv4Network(ip_range, strict=False) if ip_range else net
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        if gw not in net:
            raise InvalidParameter(f"no matching subnet for gateway {gateway}")
        if not rng.subnet_of(net):
            raise InvalidParameter(f"no matching subnet for range {ip_range}")
        old = self._pools.get(pool_id)
        if old is not None and old.subnet == net and old.gateway == gw and old.ip_range == rng:
            return old
        pool = AddressPool(net, gw, rng)
        self._pools[pool_id] = pool
        self._save()
        return pool

    def remove_pool(self, pool_id: str) -> None:
        if self._pools.pop(pool_id, None) is not None:
            self._save()

    def pool(self, pool_id: str) -> AddressPool | None:
        return self._pools.get(pool_id)

    def pool_ids(self) -> list[str]:
        return list(self._pools)

    # addresses -----------------------------------------------------------------
    def allocate(self, pool_id: str, owner: str, preferred: str = "") -> str:
        pool = self._pools[pool_id]
        reserved = {pool.subnet.network_address, pool.subnet.broadcast_address, pool.gateway}
        if preferred:
            try:
                addr = ipaddress.IPv4Address(preferred)
            except ValueError:
                raise InvalidParameter(f"invalid IP address: {preferred}") from None
            if addr not in pool.subnet:
                raise InvalidParameter(
                    f"no configured subnet contains IP address {preferred}"
                )  # dockerd's wording
            holder = pool.allocated.get(str(addr))
            if addr in reserved or (holder is not None and holder != owner):
                raise Conflict(f"Address already in use: {preferred}")
            pool.allocated[str(addr)] = owner
            self._save()
            return str(addr)
        first, last = int(pool.ip_range.network_address), int(pool.ip_range.broadcast_address)
        if pool.ip_range.prefixlen < 31:
            first, last = first + 1, last - 1
        count = last - first + 1
        start = pool.last + 1 if first <= pool.last < last else first
        for i in range(count):
            n = first + (start - first + i) % count
            addr = ipaddress.IPv4Address(n)
            if addr in reserved or str(addr) in pool.allocated:
                continue
            pool.allocated[str(addr)] = owner
            pool.last = n
            self._save()
            return str(addr)
        raise Unavailable(
            f"no available IPv4 addresses on this network's address pools: {pool.subnet}"
        )

    def reassign(self, pool_id: str, address: str, owner: str, *, persist: bool = True) -> None:
        """Hand an allocated address to another owner (a spare's, to an endpoint).
        `persist=False` leaves the file to the next change: the address is held
        either way, and after a crash `claim` gives it to whoever the records say."""
        pool = self._pools[pool_id]
        if address not in pool.allocated:
            raise KeyError(f"{address} is not allocated")
        pool.allocated[address] = owner
        if persist:
            self._save()

    def claim(self, pool_id: str, address: str, owner: str) -> None:
        """Record `owner` as the holder of `address`, whoever held it (a daemon
        restart: the containers' records are what is true)."""
        pool = self._pools[pool_id]
        if ipaddress.IPv4Address(address) not in pool.subnet:
            raise InvalidParameter(f"no configured subnet contains IP address {address}")
        if pool.allocated.get(address) != owner:
            pool.allocated[address] = owner
            self._save()

    def release(self, pool_id: str, address: str, *, persist: bool = True) -> None:
        """`persist=False`: the file keeps the address until the next change; after
        a crash, `retain` drops it (its owner is not among the living)."""
        pool = self._pools.get(pool_id)
        if pool is not None and pool.allocated.pop(address, None) is not None and persist:
            self._save()

    def release_owner(self, owner: str) -> None:
        changed = False
        for pool in self._pools.values():
            for addr in [a for a, o in pool.allocated.items() if o == owner]:
                del pool.allocated[addr]
                changed = True
        if changed:
            self._save()

    def retain(self, owners: set[str]) -> None:
        """After a restart: forget every allocation whose owner is not in `owners`."""
        changed = False
        for pool in self._pools.values():
            for addr in [a for a, o in pool.allocated.items() if o not in owners]:
                del pool.allocated[addr]
                changed = True
        if changed:
            self._save()

    def allocations(self, pool_id: str) -> dict[str, str]:
        pool = self._pools.get(pool_id)
        return dict(pool.allocated) if pool else {}
