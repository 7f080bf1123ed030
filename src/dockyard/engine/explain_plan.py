"""The plan `dockyard explain` renders, and the writer of its lines.

explain.py gathers an `ExplainPlan` (the runtime's view of the container, its
cgroup writes, its networks); explain_script.py renders the host's part of the
script and explain_inside.py the container init's, both with a `Script`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from dockyard.runtime.bundle import ContainerConfig


@dataclass
class CgroupStep:
    """One cgroup operation the runtime makes before the init runs."""

    op: str  # "mkdir" | "write" | "device-filter"
    path: str  # the host directory
    name: str = ""
    value: str = ""


@dataclass
class NetworkPlan:
    """One interface of the container on a bridge network, with that network's rules."""

    network: str
    bridge: str
    gateway: str
    prefix_len: int
    mtu: int
    ip: str
    mac: str
    ifname: str
    default_route: bool
    chains: dict[str, list[str]]  # table -> the daemon's chains
    jumps: dict[str, list[str]]  # table -> "PARENT rule..." that reach them
    rules: dict[str, list[str]]  # table -> "CHAIN rule..." of the network
    port_rules: dict[str, list[str]] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)  # "0.0.0.0:8080->80/tcp"
    address_note: str = ""
    embedded_dns: bool = False  # a user-defined network: the daemon's DNS at 127.0.0.11


@dataclass
class ExplainPlan:
    container_id: str
    name: str
    source: str  # where the RunSpec came from, for the header
    cfg: ContainerConfig
    cgroup_steps: list[CgroupStep]
    cgroup_procs: list[str]  # the files the init writes 0 into, to join its cgroups
    cgroup_mount: dict[str, str]  # controller -> host dir bound at /sys/fs/cgroup/<c> ("": v2)
    network_mode: str  # "bridge" | "none" | "host" | "join"
    networks: list[NetworkPlan] = field(default_factory=list)
    # A script that outlives its container (`explain run` removes it) makes a
    # temporary bundle of its own with these (path -> text; None: a directory).
    # None: the script uses the container's bundle.
    bundle_files: dict[str, str | None] | None = None
    seccomp: str = ""  # what the filter is, "" when there is none


def q(word: object) -> str:
    return shlex.quote(str(word))


def cmd(*words: object) -> str:
    return " ".join(q(w) for w in words)


def short_id(cid: str) -> str:
    return cid[:12]


class Script:
    """Lines of a script; paths in it are written with its variables ($ID, $BUNDLE, $ROOT)."""

    def __init__(self, container_id: str, bundle: str, root: str) -> None:
        self.lines: list[str] = []
        self._vars = [("ROOT", root), ("BUNDLE", bundle), ("ID", container_id)]

    def p(self, path: str, names: tuple[str, ...] = ("ROOT", "BUNDLE", "ID")) -> str:
        """`path` double-quoted, with the script's variables in it."""
        text = path
        for ch in ("\\", '"', "$", "`"):
            text = text.replace(ch, "\\" + ch)
        for name, value in self._vars:
            if value and name in names:
                text = text.replace(value, "${" + name + "}")
        return f'"{text}"'

    def define_vars(self, own_bundle: bool = False) -> None:
        """ID, BUNDLE and ROOT; with `own_bundle`, BUNDLE is a new temporary directory."""
        _, bundle = self._vars[1]
        _, cid = self._vars[2]
        self.add(f"ID={q(cid)}")
        if own_bundle:
            self.add('BUNDLE="$(mktemp -d /tmp/dockyard-explain.XXXXXX)"')
        else:
            self.add(f"BUNDLE={self.p(bundle, ('ID',))}")
        self.add('ROOT="$BUNDLE/rootfs"')

    def comment(self, text: str) -> None:
        for line in text.splitlines():
            self.lines.append(f"# {line}".rstrip())

    def add(self, line: str = "") -> None:
        self.lines.append(line)

    def made(self, line: str, undo: str) -> None:
        """`line`, then its undo registered (run in reverse order when the script ends)."""
        self.lines.append(line)
        self.lines.append(f"undo {q(undo)}")


def new_script(plan: ExplainPlan) -> Script:
    return Script(plan.container_id, plan.cfg.bundle, plan.cfg.rootfs)


def own_netns(plan: ExplainPlan) -> bool:
    """A network namespace of the init's own (--network none), not one made or joined."""
    if plan.network_mode in ("host", "join"):
        return False
    return plan.network_mode == "none" or not plan.networks
