"""`dockyard network` flag handling as the docker CLI does it (no daemon)."""

from __future__ import annotations

import pytest

from dockyard.cli.commands.network import ipam_config, network_row
from dockyard.cli.context import CLIError
from dockyard.cli.formatting import Formatter


def test_each_range_gateway_and_aux_address_joins_the_subnet_that_holds_it():
    pools = ipam_config(
        ["10.1.0.0/16", "10.2.0.0/16"],
        ["10.2.1.0/24"],
        ["10.1.0.254", "10.2.0.1"],
        {"printer": "10.1.0.5"},
    )
    assert pools == [
        {
            "Subnet": "10.1.0.0/16",
            "Gateway": "10.1.0.254",
            "AuxiliaryAddresses": {"printer": "10.1.0.5"},
        },
        {"Subnet": "10.2.0.0/16", "IPRange": "10.2.1.0/24", "Gateway": "10.2.0.1"},
    ]


@pytest.mark.parametrize(
    ("subnets", "ranges", "gateways", "message"),
    [
        ([], [], ["10.0.0.1"], "every ip-range or gateway must have a corresponding subnet"),
        (["10.1.0.0/16"], [], ["10.9.0.1"], "no matching subnet for gateway 10.9.0.1"),
        (["10.1.0.0/16"], ["10.9.0.0/24"], [], "no matching subnet for range 10.9.0.0/24"),
        (
            ["10.1.0.0/16"],
            [],
            ["10.1.0.1", "10.1.0.2"],
            "cannot configure multiple gateways (10.1.0.2, 10.1.0.1) for the same subnet (10.1.0.0/16)",
        ),
    ],
)
def test_impossible_combinations_are_refused_before_any_request(subnets, ranges, gateways, message):
    with pytest.raises(CLIError) as err:
        ipam_config(subnets, ranges, gateways, {})
    assert err.value.message == message


def test_ls_table_and_quiet_ids():
    nets = [
        {"Id": "a" * 64, "Name": "bridge", "Driver": "bridge", "Scope": "local"},
        {"Id": "b" * 64, "Name": "app", "Driver": "bridge", "Scope": "local", "Internal": True},
    ]
    rows = [network_row(n, trunc=True) for n in nets]
    table = Formatter("", "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", {
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE"}).render(rows)  # fmt: skip
    assert table.splitlines() == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "aaaaaaaaaaaa   bridge    bridge    local",
        "bbbbbbbbbbbb   app       bridge    local",
    ]
    assert rows[1]["Internal"] == "true" and network_row(nets[0], trunc=False)["ID"] == "a" * 64
