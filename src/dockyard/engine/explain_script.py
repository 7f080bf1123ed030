"""The POSIX shell script of `dockyard explain`: a container built by hand.

Input: the runtime's own view of the container (`ContainerConfig`, parsed from
the config.json the engine renders from its RunSpec), the cgroup writes the
runtime's cgroup code makes for it (recorded, not done), and its network
endpoints with the firewall rules of their networks. Output: a script that
does, with util-linux, iproute2 and iptables, what the monitor and the
container init do with system calls, in the same order, each step commented
with why Docker does it. Everything it creates is undone when it ends. This
module writes the host's part (network, firewall, cgroups, the unshare that
launches the rest) and puts explain_inside.py's part, the init's, inside it.

What a shell cannot do is said, not faked: seccomp (a BPF program loaded with
seccomp(2)), holding a published host port, a pty of the container's devpts.
"""

from __future__ import annotations

import shlex

from dockyard.engine.explain_inside import inside
from dockyard.engine.explain_plan import (
    ExplainPlan,
    NetworkPlan,
    Script,
    cmd,
    new_script,
    own_netns,
    q,
    short_id,
)
from dockyard.kernel import flags as K

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


def render(plan: ExplainPlan) -> str:
    s = new_script(plan)
    _header(s, plan)
    prefix = _network(s, plan)
    _cgroups(s, plan)
    _launch(s, plan, prefix, inside(plan))
    return "\n".join(s.lines) + "\n"


def _header(s: Script, plan: ExplainPlan) -> None:
    s.add("#!/bin/sh")
    s.comment(
        f"dockyard explain: container {plan.name.lstrip('/')} ({short_id(plan.container_id)})\n"
        f"Made from {plan.source}.\n"
        "It builds the same container by hand, with util-linux (unshare, nsenter, mount,\n"
        "pivot_root, setpriv, prlimit), iproute2 and iptables, in the order the daemon, the\n"
        "monitor and the container init make their system calls. Run it as root while the\n"
        "container is stopped (its upper dir serves one overlay at a time); everything it\n"
        "creates is undone when the command ends."
    )
    s.add("set -eu")
    s.define_vars(own_bundle=plan.bundle_files is not None)
    s.add()
    s.comment("Undo steps, run in reverse order when the script ends (even on an error).")
    s.add("UNDO=:")
    s.add('undo() { UNDO="$1; $UNDO"; }')
    s.add("trap 'set +e; eval \"$UNDO\"' EXIT")
    s.add("trap 'exit 130' INT TERM")
    s.add()
    if plan.bundle_files is not None:
        _own_bundle(s, plan.bundle_files)
    for path in plan.cgroup_procs[:1]:
        s.add(
            f'if [ -n "$(cat {s.p(path)} 2>/dev/null)" ]; then '
            'echo "container $ID is running: stop it first" >&2; exit 1; fi'
        )
        s.add()


def _own_bundle(s: Script, files: dict[str, str | None]) -> None:
    s.comment(
        "The container was created for this script and removed again (explain run leaves\n"
        "nothing behind): its bundle is made here, in a temporary directory, with the\n"
        "files the daemon wrote for it and its anonymous volumes (empty, as at create)."
    )
    s.add("undo \"rm -rf '$BUNDLE'\"")
    s.add('mkdir "$BUNDLE/rootfs"')
    for name, content in sorted(files.items()):
        if content is None:
            s.add(f"mkdir -p {s.p(name)}")
        else:
            s.add(f"printf %s {q(content)} > {s.p(name)}")
    s.add()


def _cgroups(s: Script, plan: ExplainPlan) -> None:
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


def _network(s: Script, plan: ExplainPlan) -> list[str]:
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


def _bridge_endpoint(s: Script, net: NetworkPlan) -> None:
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
    ("! --ctstate DNAT -j ACCEPT", "no NAT within the network (bridged: br_netfilter)"),
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


def _firewall(s: Script, net: NetworkPlan) -> None:
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


def _launch(s: Script, plan: ExplainPlan, prefix: list[str], inside: str) -> None:
    cfg = plan.cfg
    s.comment(
        "--- namespaces (the monitor, then the container init) ---\n"
        "The monitor unshares a pid namespace for its child, which unshares the rest:\n"
        "mount (its own mount table), uts (its own hostname), ipc (its own SysV IPC and\n"
        "message queues)"
        + (", net (loopback only)" if own_netns(plan) else "")
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
    if own_netns(plan):
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
