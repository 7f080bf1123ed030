"""The POSIX shell script of `dockyard explain`: a container built by hand.

Input: the runtime's own view of the container (`ContainerConfig`, parsed from
the config.json the engine renders from its RunSpec), the cgroup writes the
runtime's cgroup code makes for it (recorded, not done), and its network
endpoints with the firewall rules of their networks. Output: a script that
does, with util-linux, iproute2 and iptables, what the monitor and the
container init do with system calls, in the same order, each step commented
with why Docker does it. Everything it creates is undone when it ends.

What a shell cannot do is said, not faked: seccomp (a BPF program loaded with
seccomp(2)), holding a published host port, a pty of the container's devpts.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from dockyard.kernel import flags as K
from dockyard.runtime.bundle import ContainerConfig, MountEntry
from dockyard.runtime.container_init import DEFAULT_DEVICES, DEV_SYMLINKS, OVERLAY_DATA_LIMIT

_FLAG_NAMES = [
    (K.MS_RDONLY, "ro"),
    (K.MS_NOSUID, "nosuid"),
    (K.MS_NODEV, "nodev"),
    (K.MS_NOEXEC, "noexec"),
    (K.MS_STRICTATIME, "strictatime"),
    (K.MS_RELATIME, "relatime"),
    (K.MS_NOATIME, "noatime"),
]
_PROPAGATION = {
    K.MS_PRIVATE: "--make-private",
    K.MS_PRIVATE | K.MS_REC: "--make-rprivate",
    K.MS_SLAVE: "--make-slave",
    K.MS_SLAVE | K.MS_REC: "--make-rslave",
}
# Why Docker mounts each of its default filesystems.
_MOUNT_WHY = {
    "/proc": "a procfs of the container's own pid namespace: ps and /proc/self see only its processes",
    "/dev": "a private /dev on tmpfs: only the device nodes made below exist, not the host's",
    "/dev/pts": "a devpts instance of its own (newinstance): its ptys are not the host's",
    "/sys": "sysfs, read-only unless --privileged: the host's devices and kernel knobs are visible, not changeable",
    "/dev/mqueue": "POSIX message queues of its own ipc namespace",
    "/dev/shm": "shared memory on a tmpfs of its own, 64 MiB unless --shm-size",
    "/etc/resolv.conf": "the daemon writes the DNS servers it should use",
    "/etc/hostname": "the hostname the daemon chose (the short id unless --hostname)",
    "/etc/hosts": "localhost, its own name and address (and --add-host entries)",
    "/sbin/docker-init": "--init: a tiny init that reaps zombies and forwards signals",
}
# Why each cgroup knob is written (v1 and v2 names).
_CGROUP_WHY = {
    "memory.limit_in_bytes": "--memory: past this the kernel reclaims, then OOM-kills inside the container",
    "memory.memsw.limit_in_bytes": "--memory-swap: memory plus swap",
    "memory.soft_limit_in_bytes": "--memory-reservation: what it keeps under memory pressure",
    "memory.max": "--memory: past this the kernel reclaims, then OOM-kills inside the container",
    "memory.swap.max": "--memory-swap: the swap it may use",
    "memory.low": "--memory-reservation",
    "cpu.shares": "--cpu-shares: its weight against other containers when the CPU is busy",
    "cpu.weight": "--cpu-shares, as a v2 weight",
    "cpu.cfs_period_us": "--cpu-period",
    "cpu.cfs_quota_us": "--cpu-quota / --cpus: CPU time per period",
    "cpu.max": "--cpus / --cpu-quota: CPU time per period",
    "cpuset.cpus": "--cpuset-cpus (a new cpuset starts empty: it gets its parent's)",
    "cpuset.mems": "--cpuset-mems (a new cpuset starts empty: it gets its parent's)",
    "pids.max": "--pids-limit: a fork bomb stops here",
    "devices.deny": "no device may be opened or made by default...",
    "devices.allow": "...but these (null, zero, random, tty, ptys; mknod of any, not use)",
    "cgroup.subtree_control": "v2: the controllers must be enabled down the tree to the container's",
    "blkio.weight": "--blkio-weight",
    "blkio.bfq.weight": "--blkio-weight",
    "io.weight": "--blkio-weight",
}


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
    seccomp: str = ""  # what the filter is, "" when there is none


def q(word: object) -> str:
    return shlex.quote(str(word))


def cmd(*words: object) -> str:
    return " ".join(q(w) for w in words)


def _mount_options(flags: int, data: str = "") -> str:
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    if data:
        names.append(data)
    return ",".join(names)


def _short(cid: str) -> str:
    return cid[:12]


class _Script:
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

    def define_vars(self) -> None:
        _, bundle = self._vars[1]
        _, cid = self._vars[2]
        self.add(f"ID={q(cid)}")
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


def _new_script(plan: ExplainPlan) -> _Script:
    return _Script(plan.container_id, plan.cfg.bundle, plan.cfg.rootfs)


def render(plan: ExplainPlan) -> str:
    s = _new_script(plan)
    _header(s, plan)
    prefix = _network(s, plan)
    _cgroups(s, plan)
    _launch(s, plan, prefix, _inside(plan))
    return "\n".join(s.lines) + "\n"


def _header(s: _Script, plan: ExplainPlan) -> None:
    s.add("#!/bin/sh")
    s.comment(
        f"dockyard explain: container {plan.name.lstrip('/')} ({_short(plan.container_id)})\n"
        f"Made from {plan.source}.\n"
        "It builds the same container by hand, with util-linux (unshare, nsenter, mount,\n"
        "pivot_root, setpriv, prlimit), iproute2 and iptables, in the order the daemon, the\n"
        "monitor and the container init make their system calls. Run it as root while the\n"
        "container is stopped (its upper dir serves one overlay at a time); everything it\n"
        "creates is undone when the command ends."
    )
    s.add("set -eu")
    s.define_vars()
    s.add()
    s.comment("Undo steps, run in reverse order when the script ends (even on an error).")
    s.add("UNDO=:")
    s.add('undo() { UNDO="$1; $UNDO"; }')
    s.add("trap 'set +e; eval \"$UNDO\"' EXIT")
    s.add("trap 'exit 130' INT TERM")
    s.add()
    for path in plan.cgroup_procs[:1]:
        s.add(
            f'if [ -n "$(cat {s.p(path)} 2>/dev/null)" ]; then '
            'echo "container $ID is running: stop it first" >&2; exit 1; fi'
        )
        s.add()


def _cgroups(s: _Script, plan: ExplainPlan) -> None:
    if not plan.cgroup_steps:
        return
    s.comment(
        "--- cgroups (the monitor, before the init exists) ---\n"
        "One cgroup per controller for the container: its memory, CPU and processes are\n"
        "limited and counted apart from everything else, and all of it can be frozen or\n"
        "killed at once."
    )
    dirs = [step.path for step in plan.cgroup_steps if step.op == "mkdir"]
    s.comment("(A killed task leaves its cgroup a moment after it is gone: rmdir retries.)")
    s.add(
        'rmcg() { for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$1" 2>/dev/null && return; '
        'sleep 0.2; done; rmdir "$1"; }'
    )
    if dirs:
        s.add("for d in " + " ".join(s.p(d) for d in dirs) + "; do")
        s.add('  if [ ! -d "$d" ]; then mkdir "$d"; undo "rmcg \'$d\'"; fi')
        s.add("done")
    writes = [step for step in plan.cgroup_steps if step.op == "write"]
    i = 0
    while i < len(writes):
        step = writes[i]
        same = [step]
        while i + len(same) < len(writes) and (
            writes[i + len(same)].path,
            writes[i + len(same)].name,
        ) == (step.path, step.name):
            same.append(writes[i + len(same)])
        target = s.p(step.path + "/" + step.name)
        why = _CGROUP_WHY.get(step.name, "")
        if why:
            s.comment(why)
        if len(same) == 1:
            s.add(f"echo {q(step.value)} > {target}")
        else:
            s.add("for rule in " + " ".join(q(w.value) for w in same) + "; do")
            s.add(f'  echo "$rule" > {target}')
            s.add("done")
        i += len(same)
    if any(step.op == "device-filter" for step in plan.cgroup_steps):
        s.comment(
            "v2 device rules: Docker attaches an eBPF program to the cgroup\n"
            "(BPF_CGROUP_DEVICE); no standard shell tool can load one: NOT done here."
        )
    s.add()


def _network(s: _Script, plan: ExplainPlan) -> list[str]:
    """The network part on the host; the nsenter words of the launch."""
    cfg = plan.cfg
    if plan.network_mode == "host":
        s.comment("--- network: --network host, the host's own stack: nothing to do ---")
        s.add()
        return []
    if plan.network_mode == "join":
        s.comment("--- network: --network container:..., the namespace of another container ---")
        s.add()
        return ["nsenter", f"--net={cfg.netns_path}"]
    if plan.network_mode == "none" or not plan.networks:
        s.comment("--- network: --network none, loopback only (unshare --net below) ---")
        s.add()
        return []
    s.add('NETNS="dky-$(printf %.12s "$ID")"')
    s.comment(
        "--- network (the daemon, before the runtime starts) ---\n"
        "A network namespace of its own: interfaces, addresses, routes and ports apart\n"
        "from the host's. The daemon keeps it in a bind-mounted nsfs file, as `ip netns` does."
    )
    s.add('ip netns add "$NETNS"')
    s.add("undo \"ip netns del '$NETNS'\"")
    s.add('ip -n "$NETNS" link set lo up  # loopback, as every namespace has it')
    for net in plan.networks:
        _bridge_endpoint(s, net)
    s.add()
    return ["nsenter", "--net=/run/netns/$NETNS"]


def _bridge_endpoint(s: _Script, net: NetworkPlan) -> None:
    veth = ("vx" + net.ip.replace(".", ""))[:15]
    br, ifname = q(net.bridge), q(net.ifname)
    s.add()
    s.comment(f"Network {net.network!r} on bridge {net.bridge}: {net.ip}/{net.prefix_len}.")
    if net.address_note:
        s.comment(net.address_note)
    s.comment(
        "The bridge is the network's switch, the gateway its address on the host; the\n"
        "daemon made it with the network (done here only if it is missing)."
    )
    s.add(f"if ! ip link show {br} >/dev/null 2>&1; then")
    s.add(f"  ip link add {br} mtu {net.mtu} type bridge")
    s.add(f"  undo {q('ip link del ' + br)}")
    s.add(f"  ip addr add {q(net.gateway + '/' + str(net.prefix_len))} dev {br}")
    s.add(f"  ip link set {br} up")
    s.add("fi")
    s.comment(
        f"A veth pair is a cable: one end in the container's namespace (its {net.ifname}),\n"
        "the other plugged into the bridge."
    )
    s.add(f'ip link add {veth} mtu {net.mtu} type veth peer name {ifname} netns "$NETNS"')
    s.add(f"undo {q('ip link del ' + veth)}")
    s.comment("dockerd's MAC: 02:42 then the IPv4 address, so two containers never share one")
    s.add(f'ip -n "$NETNS" link set {ifname} address {net.mac}')
    s.add(f"ip link set {veth} master {br}")
    s.comment("hairpin: its own published ports, DNATed, go back out the port they came in by")
    s.add(f"ip link set {veth} type bridge_slave hairpin on")
    s.add(f"ip link set {veth} up")
    s.comment("The address IPAM gave it, and the route out through the gateway:")
    s.add(f'ip -n "$NETNS" addr add {net.ip}/{net.prefix_len} dev {ifname}')
    s.add(f'ip -n "$NETNS" link set {ifname} up')
    if net.default_route:
        s.add(f'ip -n "$NETNS" route add default via {net.gateway} proto static')
    s.comment("Forwarding must be on for the host to route its packets (dockerd sets it).")
    s.add(
        'if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then '
        "echo 1 > /proc/sys/net/ipv4/ip_forward; "
        "undo 'echo 0 > /proc/sys/net/ipv4/ip_forward'; fi"
    )
    _firewall(s, net)
    if net.embedded_dns:
        s.comment(
            "DNS: the daemon answers the names of this network's containers at 127.0.0.11:53\n"
            "with sockets it opened inside the namespace (its resolv.conf names it); a shell\n"
            "cannot serve them: NOT done here, so those names do not resolve in this copy."
        )


_RULE_WHY = [
    ("RELATED,ESTABLISHED", "replies to connections its containers opened come back in"),
    ("--ctstate DNAT -j ACCEPT", "connections to published ports come in"),
    ("DNAT --to-destination", "a published port: the host port leads to the container's"),
    ("-i {br} -o {br} -j ACCEPT", "containers of the network reach each other (icc)"),
    ("-i {br} -o {br} -j DROP", "containers of the network do not reach each other (icc=false)"),
    ("-i {br} ! -o {br} -j ACCEPT", "containers reach out of the network"),
    ("-j DROP", "anything else into the network, or out of an internal one, is dropped"),
    ("MASQUERADE", "NAT: what leaves through the host carries the host's address"),
]


def _why_rule(rule: str, bridge: str) -> str:
    for key, why in _RULE_WHY:
        if key.replace("{br}", bridge) in rule:
            return why
    return ""


def _firewall(s: _Script, net: NetworkPlan) -> None:
    s.comment(
        "Firewall: the daemon's own chains, jumped to from the built-in ones, hold the\n"
        "network's rules. Each is added only if missing; only what this script added goes."
    )
    for table, chains in net.chains.items():
        for chain in chains:
            s.add(
                f"iptables -t {table} -n -L {q(chain)} >/dev/null 2>&1 || "
                f"{{ iptables -t {table} -N {q(chain)}; undo {q(f'iptables -t {table} -X {chain}')}; }}"
            )
    for table, jumps in net.jumps.items():
        for jump in jumps:
            words = shlex.split(jump)
            check = cmd("iptables", "-t", table, "-C", *words)
            insert = cmd("iptables", "-t", table, "-I", words[0], "1", *words[1:])
            delete = cmd("iptables", "-t", table, "-D", *words)
            s.add(f"{check} 2>/dev/null || {{ {insert}; undo {q(delete)}; }}")
    for table, rules in [*net.rules.items(), *net.port_rules.items()]:
        for rule in rules:
            words = shlex.split(rule)
            check = cmd("iptables", "-t", table, "-C", *words)
            append = cmd("iptables", "-t", table, "-A", *words)
            delete = cmd("iptables", "-t", table, "-D", *words)
            why = _why_rule(rule, net.bridge)
            if why:
                s.comment(why)
            s.add(f"{check} 2>/dev/null || {{ {append}; undo {q(delete)}; }}")
    if net.ports:
        s.comment(
            "The daemon also binds each published host port itself ("
            + ", ".join(net.ports)
            + ")\nso that no other program takes it; a shell cannot hold a socket: NOT done here."
        )


def _own_netns(plan: ExplainPlan) -> bool:
    """A network namespace of the init's own (--network none), not one made or joined."""
    if plan.network_mode in ("host", "join"):
        return False
    return plan.network_mode == "none" or not plan.networks


def _launch(s: _Script, plan: ExplainPlan, prefix: list[str], inside: str) -> None:
    cfg = plan.cfg
    s.comment(
        "--- namespaces (the monitor, then the container init) ---\n"
        "The monitor unshares a pid namespace for its child, which unshares the rest:\n"
        "mount (its own mount table), uts (its own hostname), ipc (its own SysV IPC and\n"
        "message queues)"
        + (", net (loopback only)" if _own_netns(plan) else "")
        + ". The child is PID 1 of the new pid namespace.\n"
        "--kill-child: the container dies with the process that made it (the runtime sets\n"
        "PR_SET_PDEATHSIG), so nothing is left that nobody watches. setsid: a session of its\n"
        "own, as the runtime gives it (a terminal can become its controlling tty)."
    )
    joins: list[str] = list(prefix)
    if cfg.ipc_path:
        joins = joins or ["nsenter"]
        joins.append(f"--ipc={cfg.ipc_path}")
    if cfg.pid_mode not in ("private", "host"):
        joins = joins or ["nsenter"]
        joins.append(f"--pid={cfg.pid_mode}")
    flags = ["--mount", "--propagation", "private"]
    if cfg.unshare_flags & K.CLONE_NEWUTS:
        flags.append("--uts")
    if cfg.unshare_flags & K.CLONE_NEWIPC:
        flags.append("--ipc")
    if cfg.unshare_flags & K.CLONE_NEWCGROUP:
        flags.append("--cgroup")
    if _own_netns(plan):
        flags.append("--net")
    if cfg.pid_mode == "private":
        flags.append("--pid")
    flags += ["--fork", "--kill-child"]
    s.comment("What the container init does, run by a shell that is PID 1 of the new namespaces:")
    s.add("INSIDE=$(cat <<'DOCKYARD_INSIDE'")
    s.add(inside.rstrip("\n"))
    s.add("DOCKYARD_INSIDE")
    s.add(")")
    words = [f'"{w}"' if "$" in w else q(w) for w in joins]
    if joins:
        words.append("--")
    words += ["unshare", *flags, "--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    words += ['ID="$ID"', 'BUNDLE="$BUNDLE"', 'setsid /bin/sh -c "$INSIDE"']
    s.add(" ".join(words) + " || status=$?")
    s.add("exit ${status:-0}")


def _inside(plan: ExplainPlan) -> str:
    cfg = plan.cfg
    s = _new_script(plan)
    s.add("set -eu")
    s.add('ROOT="$BUNDLE/rootfs"')
    if plan.cgroup_procs:
        s.comment("Into its cgroups first, so that everything it does is accounted:")
        s.add("for f in " + " ".join(s.p(f) for f in plan.cgroup_procs) + "; do")
        s.add('  echo 0 > "$f"')
        s.add("done")
    if cfg.oom_score_adj is not None:
        s.comment("Its OOM score (0, not the daemon's -500: the OOM killer may pick it):")
        s.add(f"echo {cfg.oom_score_adj} > /proc/self/oom_score_adj")
    if _own_netns(plan):
        s.add("ip link set lo up  # loopback only, up")
    if cfg.unshare_flags & K.CLONE_NEWUTS:
        if cfg.hostname:
            s.add(f"hostname {q(cfg.hostname)}  # its own name, in its own uts namespace")
        if cfg.domainname:
            s.add(f"echo {q(cfg.domainname)} > /proc/sys/kernel/domainname")
    s.add("umask 0  # the modes below are exact, as the runtime makes them")
    s.comment(
        "unshare --propagation private made every mount private (MS_REC|MS_PRIVATE on /):\n"
        "nothing mounted below reaches the host's mount table, nor the host's in here."
    )
    s.add()
    _rootfs(s, cfg)
    s.comment(
        "The runtime resolves paths inside the root with openat2(RESOLVE_IN_ROOT); a shell\n"
        "cannot, so a path whose symlinks lead out of the root is refused:"
    )
    s.add(
        'inroot() { case "$(realpath -m "$1")" in "$ROOT"|"$ROOT"/*) ;; '
        '*) echo "refusing $1: it leads out of the root" >&2; exit 1;; esac; }'
    )
    devpts = any(m.destination == "/dev/pts" for m in cfg.mounts)
    for m in cfg.mounts:
        s.add()
        if m.fstype == "cgroup":
            _cgroup_mount(s, plan, m)
            continue
        _mount(s, m)
        if m.destination == "/dev" and m.fstype == "tmpfs":
            _populate_dev(s, devpts)
    for node in cfg.device_nodes:
        kind = "b" if node.kind == "b" else "c"
        target = s.p(cfg.rootfs + node.path)
        s.add(
            f'inroot {target}; mkdir -p "$(dirname {target})"; '
            f"mknod -m {node.mode & 0o7777:o} {target} {kind} {node.major} {node.minor}  # --device"
        )
    if cfg.shm_from:
        s.add(
            "echo 'sharing the /dev/shm of another container (--ipc container:) takes "
            "open_tree(2): not possible with shell tools' >&2; exit 1"
        )
    if cfg.terminal:
        s.comment(
            "-t: the runtime opens a pty of the container's own devpts and makes it the\n"
            "command's terminal and /dev/console; this script keeps the terminal it runs in."
        )
    s.add()
    for name, value in cfg.sysctls.items():
        s.comment("--sysctl, in the container's own namespace:")
        s.add(f"echo {q(value)} > {s.p(cfg.rootfs + '/proc/sys/' + name.replace('.', '/'))}")
    _masks(s, cfg)
    cwd = s.p(cfg.rootfs + "/" + cfg.cwd.lstrip("/"))
    s.add(f"inroot {cwd}; mkdir -p {cwd}  # the working directory (-w), made if missing")
    if cfg.readonly_rootfs:
        s.add('mount -o remount,bind,ro "$ROOT"  # --read-only: the root itself')
    for name, soft, hard in cfg.rlimits:
        opt = name.lower().removeprefix("rlimit_")
        s.add(f"prlimit --pid $$ --{opt}={_limit(soft)}:{_limit(hard)}  # --ulimit")
    s.add()
    _pivot_and_exec(s, cfg, plan.seccomp)
    return "\n".join(s.lines) + "\n"


def _limit(value: int) -> str:
    return "unlimited" if value < 0 or value >= 1 << 63 else str(value)


def _rootfs(s: _Script, cfg: ContainerConfig) -> None:
    if not cfg.lowerdirs:
        s.comment("A plain directory as root: bound onto itself, a mount point for pivot_root.")
        s.add('mount --rbind "$ROOT" "$ROOT"')
        return
    s.comment(
        "The root filesystem: an overlay of the image's layers (lowerdir, read-only, top\n"
        "first), the container's own layer (upperdir: every write lands there, a file is\n"
        "copied up at its first change) and overlayfs's scratch dir (workdir). The image's\n"
        "layers stay shared by every container of the image."
    )
    s.add(f'mkdir -p {s.p(cfg.upperdir)} {s.p(cfg.workdir)} "$ROOT"')
    data = f"lowerdir={':'.join(cfg.lowerdirs)},upperdir={cfg.upperdir},workdir={cfg.workdir}"
    if len(data) <= OVERLAY_DATA_LIMIT:
        s.add(f'mount -t overlay overlay -o {s.p(data)} "$ROOT"')
        return
    base = os.path.commonpath([*cfg.lowerdirs, cfg.upperdir, cfg.workdir])
    rel = [os.path.relpath(p, base) for p in cfg.lowerdirs]
    data = (
        f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(cfg.upperdir, base)},"
        f"workdir={os.path.relpath(cfg.workdir, base)}"
    )
    s.comment("(So many layers that mount(2)'s one page of options takes them only relative.)")
    if len(data) <= OVERLAY_DATA_LIMIT:
        s.add(f'(cd {s.p(base)} && mount -t overlay overlay -o {q(data)} "$ROOT")')
    else:
        s.add(
            f"echo {q(f'{len(cfg.lowerdirs)} layers do not fit in mount(8) options: the runtime uses fsconfig(2)')} >&2; exit 1"
        )


def _mount(s: _Script, m: MountEntry) -> None:
    target = s.p("$ROOT/" + m.destination.lstrip("/")).replace("\\$ROOT", "$ROOT")
    why = _MOUNT_WHY.get(m.destination)
    if why is None:
        why = "a --tmpfs mount" if m.fstype == "tmpfs" else "a volume or bind mount (-v, --mount)"
    s.comment(f"{m.destination}: {why}")
    if m.is_bind:
        src = s.p(m.source)
        s.add(
            f"inroot {target}; if [ -d {src} ]; then mkdir -p {target}; "
            f'else mkdir -p "$(dirname {target})"; [ -e {target} ] || : > {target}; fi'
        )
        bind = "--rbind" if m.flags & K.MS_REC else "--bind"
        s.add(f"mount {bind} {src} {target}")
        extra = _mount_options(m.flags & ~(K.MS_BIND | K.MS_REC))
        if extra:
            s.add(f"mount -o {q('remount,bind,' + extra)} {target}")
    else:
        s.add(f"inroot {target}; mkdir -p {target}")
        opts = _mount_options(m.flags, m.data)
        s.add(
            f"mount -t {q(m.fstype)}"
            + (f" -o {q(opts)}" if opts else "")
            + f" {q(m.source or m.fstype)} {target}"
        )
    if m.propagation:
        s.add(f"mount {_PROPAGATION.get(m.propagation, '--make-rprivate')} {target}")


def _populate_dev(s: _Script, devpts: bool) -> None:
    s.comment("The device nodes every container gets, and the usual links:")
    for name, major, minor in DEFAULT_DEVICES:
        s.add(f'mknod -m 666 "$ROOT/dev/{name}" c {major} {minor}')
    for target, name in DEV_SYMLINKS:
        s.add(f'ln -s {q(target)} "$ROOT/dev/{name}"')
    if devpts:
        s.add('ln -s pts/ptmx "$ROOT/dev/ptmx"')


def _cgroup_mount(s: _Script, plan: ExplainPlan, m: MountEntry) -> None:
    target = f'"$ROOT{m.destination}"'
    locked = _mount_options(K.MS_NOSUID | K.MS_NODEV | K.MS_NOEXEC | (m.flags & K.MS_RDONLY))
    s.comment(
        "/sys/fs/cgroup: the container sees its own cgroups only, read-only, as runc shows them:"
    )
    if "" in plan.cgroup_mount:
        s.add(f"mount --bind {s.p(plan.cgroup_mount[''])} {target}")
        s.add(f"mount -o {q('remount,bind,' + locked)} {target}")
        return
    s.add(f"mount -t tmpfs -o nosuid,nodev,noexec,mode=755 tmpfs {target}")
    for controller, host_dir in plan.cgroup_mount.items():
        sub = f'"$ROOT{m.destination}/{controller}"'
        s.add(f"mkdir -m 755 {sub}")
        s.add(f"mount --bind {s.p(host_dir)} {sub}")
        s.add(f"mount -o {q('remount,bind,' + locked)} {sub}")
    if m.flags & K.MS_RDONLY:
        s.add(f"mount -o remount,ro,nosuid,nodev,noexec,mode=755 {target}")


def _masks(s: _Script, cfg: ContainerConfig) -> None:
    if cfg.masked_paths:
        s.comment(
            "Masked paths: kernel files that leak the host's secrets or state (keys, kcore,\n"
            "timers, firmware) are covered: /dev/null on a file, an empty read-only tmpfs on\n"
            "a directory. (The runtime does it after pivot_root; the same mounts.)"
        )
        s.add("for p in " + " ".join(q(p) for p in cfg.masked_paths) + "; do")
        s.add('  t="$ROOT$p"')
        s.add('  if [ -d "$t" ]; then mount -t tmpfs -o ro tmpfs "$t"')
        s.add('  elif [ -e "$t" ]; then mount --bind "$ROOT/dev/null" "$t"; fi')
        s.add("done")
    if cfg.readonly_paths:
        s.comment(
            "Read-only paths: kernel knobs (/proc/sys, sysrq-trigger, irq...) readable, not\n"
            "writable, so the container cannot retune or crash the host."
        )
        s.add("for p in " + " ".join(q(p) for p in cfg.readonly_paths) + "; do")
        s.add('  t="$ROOT$p"')
        s.add('  [ -e "$t" ] || continue')
        s.add('  mount --rbind "$t" "$t"')
        s.add('  mount -o remount,bind,ro,nosuid,nodev,noexec "$t"')
        s.add("done")


def _caps(names: list[str]) -> str:
    return ",".join(["-all", *("+" + n.lower().removeprefix("cap_") for n in names)])


def _pivot_and_exec(s: _Script, cfg: ContainerConfig, seccomp: str) -> None:
    s.comment(
        "After pivot_root the host's files are out of reach (that is the point), so the\n"
        "host tools of the last steps run through fd 9, the host's root kept open, with the\n"
        "host's dynamic loader. fd 9 is closed before the command runs: a container must\n"
        "hold no door to the host (the runtime marks every fd but 0-2 close-on-exec)."
    )
    s.add("H=/proc/self/fd/9")
    s.add(
        "LD=$H$(readlink -f \"$(ldd /usr/bin/setpriv | awk '$1 ~ /^\\// && $2 ~ /^\\(/ { print $1 }')\")"
    )
    s.add(
        "LIBS=$(ldd /usr/bin/setpriv /usr/bin/umount /usr/bin/env /bin/sh "
        "| awk '$2 == \"=>\" && $3 ~ /^\\// { print $3 }' | xargs -n1 readlink -f "
        '| xargs -n1 dirname | sort -u | sed "s|^|$H|" | paste -sd: -)'
    )
    s.add('tool() { echo "$LD --library-path $LIBS $H$(readlink -f "$(command -v "$1")")"; }')
    s.add("UMOUNT=$(tool umount) ENV=$(tool env) SETPRIV=$(tool setpriv) SH=$(tool sh)")
    s.add("exec 9</")
    s.add()
    s.comment(
        "pivot_root: the overlay becomes /, the host's root is stacked over it, then\n"
        "detached (unlike chroot, nothing of the host stays reachable by any path)."
    )
    s.add('cd "$ROOT"')
    s.add("pivot_root . .")
    s.add('cd "$H"  # the old root (as runc fchdirs to it), detached:')
    s.add("$UMOUNT -l -c .")
    s.add(f"cd {q(cfg.cwd)}  # the working directory")
    s.add("umask 022")
    s.add()
    s.comment(
        "seccomp: Docker loads a BPF filter with seccomp(2) just before exec; it refuses\n"
        "the system calls a container has no business making (kexec_load, open_by_handle_at,\n"
        "new mount namespaces' escapes, keyctl...). No standard shell tool can load one:\n"
        "NOT done here, so this process is not confined by seccomp ("
        + ("the container has none either" if not seccomp else "Seccomp: 0 here, 2 there")
        + ")."
        + (f"\nThe container's filter: {seccomp}." if seccomp else "")
    )
    s.comment(
        "Credentials and capabilities (setpriv): the bounding set is Docker's default list\n"
        "(or --cap-add/--cap-drop/--privileged), what root in the container may still do;\n"
        "CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_MODULE... are gone for good (the bounding set\n"
        "only shrinks). Inheritable and ambient sets are empty (CVE-2022-24769); a non-root\n"
        "user (-u) keeps no capability at exec. env -i: exactly the container's environment."
        + (
            "\n--security-opt no-new-privileges: setuid binaries gain nothing."
            if cfg.no_new_privileges
            else ""
        )
    )
    priv = ["--reuid", str(cfg.uid), "--regid", str(cfg.gid)]
    if cfg.additional_gids:
        priv += ["--groups", ",".join(str(g) for g in cfg.additional_gids)]
    else:
        priv.append("--clear-groups")
    priv += ["--bounding-set", _caps(cfg.bounding), "--inh-caps", _caps(cfg.inheritable)]
    priv += ["--ambient-caps", "-all"]
    if cfg.no_new_privileges:
        priv.append("--nnp")
    pwd = next((e for e in cfg.env if e.startswith("PWD=")), "")
    keep_pwd = f"export {q(pwd)}" if pwd else "unset PWD OLDPWD"
    s.add("exec $ENV -i \\")
    s.add("  " + " ".join(q(e) for e in cfg.env) + " \\")
    s.add("  $SETPRIV " + " ".join(q(w) for w in priv) + " \\")
    s.add("  -- $SH -c " + q(f'{keep_pwd}; exec 9<&- "$0" "$@"') + " \\")
    s.add("  " + " ".join(q(a) for a in cfg.args))
