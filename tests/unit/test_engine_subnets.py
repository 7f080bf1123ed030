"""Address rules of user-defined networks (pure functions, no root)."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard.engine import subnets
from dockyard.engine.network_models import IPAMPool
from dockyard.errors import Forbidden, InvalidParameter

Net4 = ipaddress.IPv4Network


def test_the_first_free_default_pool_avoids_networks_and_host_routes():
    pool = subnets.choose_subnet(["172.17.0.0/16", ""], [Net4("172.18.0.0/16")])
    assert (pool.subnet, pool.gateway) == ("172.19.0.0/16", "172.19.0.1")
    # every 172.x taken: dockerd's next pool is 192.168.0.0/20
    taken = [f"172.{i}.0.0/16" for i in range(17, 32)]
    assert subnets.choose_subnet(taken, []).subnet == "192.168.0.0/20"
    # a host route covering a pool makes it busy too (a VPN's 172.16.0.0/12)
    assert subnets.choose_subnet([], [Net4("172.16.0.0/12")]).subnet == "192.168.0.0/20"


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (
            IPAMPool(gateway="10.0.0.1"),
            "invalid network config: every ip-range or gateway must have a corresponding subnet",
        ),
        (
            IPAMPool(subnet="10.0.0.300/24"),
            "invalid subnet 10.0.0.300/24: invalid CIDR address: 10.0.0.300/24",
        ),
        (IPAMPool(subnet="10.0.0.1/24"), "invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24"),
        (IPAMPool(subnet="10.0.0.0/31"), "invalid subnet 10.0.0.0/31: too small for a network"),
        (IPAMPool(subnet="fd00::/64"), None),
        (IPAMPool(subnet="10.0.0.0/24", ip_range="10.0.1.0/25"), None),
        (
            IPAMPool(subnet="10.0.0.0/24", gateway="10.0.1.1"),
            "no matching subnet for gateway 10.0.1.1",
        ),
    ],
)
def test_bad_pools_are_refused(pool, message):
    with pytest.raises(InvalidParameter) as err:
        subnets.check_pool(pool)
    if message:
        assert err.value.message == message


def test_overlap_is_forbidden_with_dockerds_words():
    subnets.check_no_overlap("10.1.0.0/24", ["10.2.0.0/16", ""])
    with pytest.raises(Forbidden) as err:
        subnets.check_no_overlap("10.2.3.0/24", ["10.2.0.0/16"])
    assert err.value.message == subnets.OVERLAP


def test_addresses_come_from_the_range_and_skip_reserved_ones():
    pool = subnets.check_pool(IPAMPool(subnet="10.5.0.0/29", auxiliary_addresses={"x": "10.5.0.2"}))
    assert pool.gateway == "10.5.0.1"
    # .0 network, .1 gateway, .2 aux, .3 in use -> .4
    assert subnets.pick_address(pool, {"10.5.0.3"}) == "10.5.0.4"
    ranged = subnets.check_pool(IPAMPool(subnet="10.5.0.0/24", ip_range="10.5.0.128/25"))
    assert subnets.pick_address(ranged, set()) == "10.5.0.129"
    assert subnets.pick_address(ranged, set(), "10.5.0.9") == "10.5.0.9"  # asked for: any in subnet
    with pytest.raises(Forbidden):
        subnets.pick_address(ranged, {"10.5.0.9"}, "10.5.0.9")
    with pytest.raises(Forbidden):
        subnets.pick_address(ranged, set(), "10.5.0.1")  # the gateway
    with pytest.raises(InvalidParameter):
        subnets.pick_address(ranged, set(), "10.6.0.9")
    full = {f"10.5.0.{i}" for i in range(3, 7)}
    with pytest.raises(Exception, match="no available IPv4 addresses"):
        subnets.pick_address(pool, full)
