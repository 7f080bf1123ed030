"""The runtime's RunSpec of a container at start: user, env, network, mounts, capabilities."""

from __future__ import annotations

import os
from collections.abc import Callable

from dockyard.engine import mounts
from dockyard.engine.container_records import ContainerRecords
from dockyard.engine.environ import replace_or_append
from dockyard.engine.isolation import run_spec_options
from dockyard.engine.models import Container
from dockyard.errors import Conflict
from dockyard.image.layered_copy import copy_tree
from dockyard.image.users import parse_passwd, resolve_user
from dockyard.runtime.spec import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    BindMount,
    RunSpec,
)


class RunSpecBuilder(ContainerRecords):
    """A container record turned into what the runtime runs."""

    def _run_spec(self, c: Container) -> RunSpec:
        lower = self._images.blobs.lower_dirs(c.image)
        upper = os.path.join(c.bundle, "upper")

        def read(path: str) -> bytes | None:
            return self._images.blobs.read_file([upper, *lower], path)

        uid, gid, groups = resolve_user(c.config.user, read)
        # dockerd's CreateDaemonEnvironment; HOME as runc adds it when still unset
        daemon_env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={c.config.hostname}"]
        if c.config.tty:
            daemon_env.append("TERM=xterm")
        env = replace_or_append(daemon_env, list(c.config.env or []))
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={_home_of(read, uid)}")
        hc = c.host_config
        mode = hc.network_mode
        if mode == "host":
            network = "host"
        elif mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if not other.state.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            network = other.sandbox_key or f"/proc/{other.state.pid}/ns/net"
        elif mode == "none":
            network = "private"  # loopback only
        else:
            network = self.networking.network_path(c)
        etc_binds = [
            BindMount(c.resolv_conf_path, "/etc/resolv.conf"),
            BindMount(c.hostname_path, "/etc/hostname"),
            BindMount(c.hosts_path, "/etc/hosts"),
        ]
        binds, tmpfs = mounts.runtime_mounts(
            c, self.volumes, lambda path, dest: copy_tree([upper, *lower], path, dest)
        )
        caps = None
        if hc.cap_add or hc.cap_drop:
            caps = _apply_cap_changes(hc.cap_add or [], hc.cap_drop or [])
        isolation = run_spec_options(hc, self._running_pid, read)
        groups = groups + [g for g in isolation.pop("extra_gids") if g not in groups]
        # --tmpfs (checked by isolation) and --mount type=tmpfs, one set of tmpfs mounts
        tmpfs = {**isolation.pop("tmpfs", {}), **tmpfs}
        return RunSpec(
            args=[c.path, *c.args],
            env=env,
            hostname=c.config.hostname,
            domainname=c.config.domainname,
            rootfs_lower=lower,
            rootfs_upper=upper,
            rootfs_work=os.path.join(c.bundle, "work"),
            cwd=c.config.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=groups,
            terminal=c.config.tty,
            open_stdin=c.config.open_stdin,
            readonly_rootfs=hc.readonly_rootfs,
            network=network,
            mounts=etc_binds + binds,
            tmpfs=tmpfs,
            cgroup_parent=hc.cgroup_parent or "dockyard",
            memory=hc.memory,
            memory_swap=hc.memory_swap,
            cpu_shares=hc.cpu_shares,
            pids_limit=hc.pids_limit or 0,
            capabilities=caps,
            privileged=hc.privileged,
            **isolation,
        )

    def run_spec(self, c: Container) -> RunSpec:
        """The RunSpec a start of `c` gives the runtime (dockyard explain shows it)."""
        return self._run_spec(c)

    def _running_pid(self, ref: str) -> int:
        """The pid of a running container whose namespace another one joins."""
        other = self.get(ref)
        if not other.state.running:
            raise Conflict(f"cannot join namespaces of a non running container: {other.id}")
        return other.state.pid


def _home_of(read: Callable[[str], bytes | None], uid: int) -> str:
    for entry in parse_passwd(read("/etc/passwd") or b""):
        if entry.uid == uid:
            return entry.home or "/"
    return "/"


def _apply_cap_changes(add: list[str], drop: list[str]) -> list[str]:
    def norm(name: str) -> str:
        name = name.upper()
        return name if name.startswith("CAP_") or name == "ALL" else "CAP_" + name

    caps = list(DEFAULT_CAPABILITIES)
    drops = {norm(d) for d in drop}
    if "ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    for a in map(norm, add):
        if a == "ALL":
            caps = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
        elif a not in caps:
            caps.append(a)
    return caps
