"""The container init's part of `dockyard explain`'s script.

What runs in the new namespaces, as container_init.py does it with system
calls: the cgroups joined, the hostname, the overlay root, the mounts and
/dev, the masked and read-only paths, pivot_root, then setpriv and exec.
"""

from __future__ import annotations

from dockyard.engine.explain_plan import ExplainPlan, Script, new_script, own_netns, q
from dockyard.kernel import flags as K
from dockyard.runtime.bundle import ContainerConfig, MountEntry
from dockyard.runtime.container_init import DEFAULT_DEVICES, DEV_SYMLINKS, overlay_data

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
def _mount_options(flags: int, data: str = "") -> str:
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    if data:
        names.append(data)
    return ",".join(names)


def inside(plan: ExplainPlan) -> str:
    cfg = plan.cfg
    s = new_script(plan)
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
    if own_netns(plan):
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


def _rootfs(s: Script, cfg: ContainerConfig) -> None:
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
    opts = overlay_data(cfg)
    if opts is not None and opts[1] is None:
        s.add(f'mount -t overlay overlay -o {s.p(opts[0])} "$ROOT"')
        return
    s.comment("(So many layers that mount(2)'s one page of options takes them only relative.)")
    if opts is not None:
        data, base = opts
        s.add(f'(cd {s.p(base)} && mount -t overlay overlay -o {q(data)} "$ROOT")')
    else:
        s.add(
            f"echo {q(f'{len(cfg.lowerdirs)} layers do not fit in mount(8) options: the runtime uses fsconfig(2)')} >&2; exit 1"
        )


def _mount(s: Script, m: MountEntry) -> None:
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


def _populate_dev(s: Script, devpts: bool) -> None:
    s.comment("The device nodes every container gets, and the usual links:")
    for name, major, minor in DEFAULT_DEVICES:
        s.add(f'mknod -m 666 "$ROOT/dev/{name}" c {major} {minor}')
    for target, name in DEV_SYMLINKS:
        s.add(f'ln -s {q(target)} "$ROOT/dev/{name}"')
    if devpts:
        s.add('ln -s pts/ptmx "$ROOT/dev/ptmx"')


def _cgroup_mount(s: Script, plan: ExplainPlan, m: MountEntry) -> None:
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


def _masks(s: Script, cfg: ContainerConfig) -> None:
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


def _pivot_and_exec(s: Script, cfg: ContainerConfig, seccomp: str) -> None:
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
