"""Isolation between networks: traffic from one of the daemon's bridges to another is
dropped, as dockerd's DOCKER-ISOLATION-STAGE-1/2 do.

The bridge driver's rules (network/firewall.py) accept what leaves a bridge for
anywhere but itself, so without these two chains a container on one network
could reach a container on another through the host's routing. Two stages keep
the rules linear in the number of bridges:

    filter  DOCKYARD-ISO1  jumped to first from the driver's DOCKYARD-FORWARD:
                                  published-port (DNAT) traffic returns; what
                                  enters bridge X for elsewhere goes to stage 2
    filter  DOCKYARD-ISO2  what goes out to any of the daemon's bridges is
                                  dropped (out to the host's uplink returns)

The chains end with the daemon's suffix, like the driver's. They are created
(or emptied) at daemon start after the driver's chains, refilled with the
bridges of every network, and deleted at shutdown.
"""

from __future__ import annotations

from dockyard.kernel.interface import Kernel


class NetworkIsolation:
    def __init__(self, kernel: Kernel, forward_chain: str, suffix: str = "") -> None:
        self.kernel = kernel
        self.forward = forward_chain  # the driver's chain, jumped to from FORWARD
        self.stage1 = f"DOCKYARD-ISO1{suffix}"
        self.stage2 = f"DOCKYARD-ISO2{suffix}"
        self._bridges: set[str] = set()

    def _jump(self) -> str:
        return f"{self.forward} -j {self.stage1}"

    def setup(self) -> None:
        """Create (or empty) both chains and put the jump at the head of the driver's
        chain (which the driver empties at its own setup: call this after it)."""
        existing = set(self.kernel.firewall_list("filter"))
        lines = ["*filter", f":{self.stage1} - [0:0]", f":{self.stage2} - [0:0]"]
        if f"-A {self._jump()}" not in existing:
            lines.append(f"-I {self.forward} 1 -j {self.stage1}")
        lines += [f"-A {self.stage1} -m conntrack --ctstate DNAT -j RETURN", "COMMIT"]
        self.kernel.firewall_apply("\n".join(lines) + "\n")
        self._bridges.clear()

    def teardown(self) -> None:
        existing = set(self.kernel.firewall_list("filter"))
        present = [c for c in (self.stage1, self.stage2) if f"-N {c}" in existing]
        lines = ["*filter"]
        if f"-A {self._jump()}" in existing:
            lines.append(f"-D {self._jump()}")
        lines += [f":{c} - [0:0]" for c in present]
        lines += [f"-X {c}" for c in present]
        if len(lines) > 1:
            self.kernel.firewall_apply("\n".join([*lines, "COMMIT"]) + "\n")
        self._bridges.clear()

    def _rules(self, bridge: str) -> list[str]:
        return [
            f"{self.stage1} -i {bridge} ! -o {bridge} -j {self.stage2}",
            f"{self.stage2} -o {bridge} -j DROP",
        ]

    def add(self, bridge: str) -> None:
        if bridge in self._bridges:
            return
        rules = "\n".join(f"-A {r}" for r in self._rules(bridge))
        self.kernel.firewall_apply(f"*filter\n{rules}\nCOMMIT\n")
        self._bridges.add(bridge)

    def remove(self, bridge: str) -> None:
        if bridge not in self._bridges:
            return
        rules = "\n".join(f"-D {r}" for r in self._rules(bridge))
        self.kernel.firewall_apply(f"*filter\n{rules}\nCOMMIT\n")
        self._bridges.discard(bridge)

    @property
    def bridges(self) -> set[str]:
        return set(self._bridges)
