"""The daemon's iptables rules, in chains of its own.

Chains (each name ends with the daemon's suffix, so that several daemons on one
host never touch each other's rules):

    filter  DOCKYARD-FORWARD  jumped to first from FORWARD: per bridge, accept
                              replies, DNATed (published) traffic, traffic
                              between its containers and out of it; drop the
                              rest that enters it. Ahead of a DROP policy
                              (dockerd sets one), as dockerd's DOCKER-USER.
    nat     DOCKYARD-DNAT     jumped to from PREROUTING and OUTPUT for local
                              destinations: one DNAT rule per published port.
    nat     DOCKYARD-POST     from POSTROUTING: no NAT for traffic within a
                              network (br_netfilter brings bridged traffic
                              here too); masquerade the bridge subnet leaving
                              it, and DNATed traffic from the host itself (127.0.0.1 included: the bridge has
                              route_localnet) or from its own containers.

Every change is one iptables-restore batch (atomic per table). The chains
are created and flushed at daemon start (then refilled from what is still
running) and deleted at shutdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dockyard.errors import KernelError
from dockyard.kernel.interface import Kernel
from dockyard.network.ports import PortMapping


@dataclass(frozen=True)
class BridgeRules:
    """What the rules of one bridge network depend on."""

    bridge: str
    subnet: str
    internal: bool = False
    icc: bool = True


class Firewall:
    def __init__(self, kernel: Kernel, suffix: str = "") -> None:
        self.kernel = kernel
        self.forward = f"DOCKYARD-FORWARD{suffix}"
        self.dnat = f"DOCKYARD-DNAT{suffix}"
        self.post = f"DOCKYARD-POST{suffix}"

    # chains ------------------------------------------------------------------
    def _jumps(self) -> dict[str, list[str]]:
        return {
            "filter": [f"FORWARD -j {self.forward}"],
            "nat": [
                f"PREROUTING -m addrtype --dst-type LOCAL -j {self.dnat}",
                f"OUTPUT -m addrtype --dst-type LOCAL -j {self.dnat}",
                f"POSTROUTING -j {self.post}",
            ],
        }

    def _chains(self) -> dict[str, list[str]]:
        return {"filter": [self.forward], "nat": [self.dnat, self.post]}

    def chains(self) -> dict[str, list[str]]:
        """table -> the daemon's chains in it."""
        return self._chains()

    def jumps(self) -> dict[str, list[str]]:
        """table -> the rules of built-in chains that jump to the daemon's."""
        return self._jumps()

    def setup(self) -> None:
        """Create (or empty) the chains and hook them in, once each."""
        existing = {t: set(self.kernel.firewall_list(t)) for t in ("filter", "nat")}
        text = []
        for table, chains in self._chains().items():
            text.append(f"*{table}")
            text += [f":{c} - [0:0]" for c in chains]  # declared: created or flushed
            for jump in self._jumps()[table]:
                if f"-A {jump}" not in existing[table]:
                    text.append(f"-I {jump.split(' ', 1)[0]} 1 {jump.split(' ', 1)[1]}")
            text.append("COMMIT")
        self.kernel.firewall_apply("\n".join(text) + "\n")

    def teardown(self) -> None:
        """Unhook and delete the chains (whatever rules they still hold)."""
        existing = {t: set(self.kernel.firewall_list(t)) for t in ("filter", "nat")}
        text = []
        for table, chains in self._chains().items():
            present = [c for c in chains if f"-N {c}" in existing[table]]
            jumps = [j for j in self._jumps()[table] if f"-A {j}" in existing[table]]
            if not present and not jumps:
                continue
            text.append(f"*{table}")
            text += [f"-D {j}" for j in jumps]
            text += [f":{c} - [0:0]" for c in present]
            text += [f"-X {c}" for c in present]
            text.append("COMMIT")
        if text:
            self.kernel.firewall_apply("\n".join(text) + "\n")

    # rules -----------------------------------------------------------------
    def network_rules(self, net: BridgeRules) -> dict[str, list[str]]:
        br, fwd, post, sub = net.bridge, self.forward, self.post, net.subnet
        filt = [f"{fwd} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
        # With br_netfilter (bridge-nf-call-iptables=1, as wherever dockerd ran),
        # traffic bridged between two containers of the network passes nat
        # POSTROUTING too, with -o the bridge: another daemon's (or dockerd's)
        # `-s <same subnet> ! -o <its bridge> -j MASQUERADE` would rewrite its
        # source to our gateway, and the reply, un-NATed on the host, is routed out
        # of that other bridge. Traffic within the network is never NATed: accepted
        # here, ahead of the jumps of daemons started before this one (hairpin DNAT
        # traffic still goes on to the MASQUERADE below).
        nat = [f"{post} -s {sub} -d {sub} -o {br} -m conntrack ! --ctstate DNAT -j ACCEPT"]
        if not net.internal:
            filt.append(f"{fwd} -o {br} -m conntrack --ctstate DNAT -j ACCEPT")
        filt.append(f"{fwd} -i {br} -o {br} -j {'ACCEPT' if net.icc else 'DROP'}")
        if net.internal:
            filt.append(f"{fwd} -i {br} ! -o {br} -j DROP")
        else:
            filt.append(f"{fwd} -i {br} ! -o {br} -j ACCEPT")
            nat += [
                # `! -d`: never traffic bridged on another daemon's bridge that has
                # the same subnet (see above), which leaves through "not ours" too.
                f"{post} -s {sub} ! -d {sub} ! -o {br} -j MASQUERADE",
                f"{post} -o {br} -m conntrack --ctstate DNAT -m addrtype --src-type LOCAL"
                " -j MASQUERADE",
                f"{post} -s {sub} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE",
            ]
        filt.append(f"{fwd} ! -i {br} -o {br} -j DROP")
        return {"filter": filt, "nat": nat}

    def port_rules(self, container_ip: str, ports: Iterable[PortMapping]) -> dict[str, list[str]]:
        nat = []
        for p in ports:
            dest = "" if p.host_ip == "0.0.0.0" else f"-d {p.host_ip}/32 "
            nat.append(
                f"{self.dnat} {dest}-p {p.proto} -m {p.proto} --dport {p.host_port}"
                f" -j DNAT --to-destination {container_ip}:{p.container_port}"
            )
        return {"nat": nat}

    def add(self, rules: dict[str, list[str]]) -> None:
        self._apply("-A", rules)

    def remove(self, rules: dict[str, list[str]]) -> None:
        """Delete the rules; those already gone (a daemon restart flushed the chains)
        are skipped, which costs a listing only when it happens."""
        try:
            self._apply("-D", rules)
        except KernelError:
            present = {t: set(self.kernel.firewall_list(t)) for t, rs in rules.items() if rs}
            self._apply(
                "-D",
                {t: [r for r in rs if f"-A {r}" in present.get(t, ())] for t, rs in rules.items()},
            )

    def _apply(self, op: str, rules: dict[str, Sequence[str]]) -> None:
        text = []
        for table, lines in rules.items():
            if lines:
                text.append(f"*{table}")
                text += [f"{op} {r}" for r in lines]
                text.append("COMMIT")
        if text:
            self.kernel.firewall_apply("\n".join(text) + "\n")
