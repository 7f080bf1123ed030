"""A container's mounts: `-v`, `--mount`, `--volumes-from` and the image's VOLUMEs, resolved
at create into `MountPoint`s (dockerd's registerMountPoints), and turned into binds and
tmpfs mounts for the runtime at each start.

Precedence as dockerd: volumes from other containers first, then Binds, then Mounts
(a destination given twice among Binds/Mounts is refused); an image VOLUME or a
Config.Volumes path that nothing else covers becomes a new anonymous volume.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

from dockyard.engine import create_validation
from dockyard.engine.models import Container, ContainerConfig, HostConfig, MountPoint
from dockyard.engine.volumes import VolumeService
from dockyard.errors import InvalidParameter
from dockyard.runtime.spec import BindMount

_PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_HONOURED_PROPAGATION = {"", "private", "rprivate"}


def _mount_error(kind: str, why: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {why}')


def _clean_target(kind: str, target: str) -> str:
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    if not target.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    clean = posixpath.normpath(target)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean in ("/", "/proc", "/sys") or clean.startswith("/proc/"):
        raise _mount_error(kind, f"invalid specification: destination can't be '{clean}'")
    return clean


def parse_mount(m: dict[str, Any]) -> MountPoint:
    """One HostConfig.Mounts entry (docker's mount.Mount), checked as moby's
    volume/mounts/linux_parser.go validateMountConfig."""
    if not isinstance(m, dict):
        raise InvalidParameter("invalid mount config: not an object")
    kind = m.get("Type") or ""
    source = m.get("Source") or ""
    readonly = bool(m.get("ReadOnly"))
    bind_opts = m.get("BindOptions")
    vol_opts = m.get("VolumeOptions")
    tmpfs_opts = m.get("TmpfsOptions")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_error(kind, "mount type unknown")
    for key, opts in (("bind", bind_opts), ("volume", vol_opts), ("tmpfs", tmpfs_opts)):
        if opts and kind != key:
            field = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}
            raise _mount_error(kind, f"field {field[key]} must not be specified")
    target = _clean_target(kind, m.get("Target") or "")
    if kind == "bind":
        if not source:
            raise _mount_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _mount_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        if not os.path.exists(source):
            raise _mount_error(kind, f"bind source path does not exist: {source}")
        propagation = (bind_opts or {}).get("Propagation") or ""
        if propagation and propagation not in _PROPAGATIONS:
            raise _mount_error(kind, f"invalid propagation mode: {propagation}")
        if propagation not in _HONOURED_PROPAGATION:
            raise InvalidParameter(
                f"propagation mode '{propagation}' is not supported by dockyard "
                "(binds are mounted rprivate)"
            )
        for key in bind_opts or {}:
            if key not in ("Propagation", "CreateMountpoint"):
                raise _mount_error(kind, f"bind option {key} is not supported by dockyard")
        return MountPoint(
            type="bind",
            destination=target,
            source=source,
            rw=not readonly,
            propagation=propagation or "rprivate",
        )
    if kind == "tmpfs":
        if source:
            raise _mount_error(kind, "field Source must not be specified")
        opts = tmpfs_opts or {}
        words = []
        size = opts.get("SizeBytes") or 0
        if not isinstance(size, int) or size < 0:
            raise _mount_error(kind, f"invalid tmpfs size: {size}")
        if size:
            words.append(f"size={size}")
        mode = opts.get("Mode") or 0
        if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise _mount_error(kind, f"invalid tmpfs mode: {mode}")
        if mode:
            words.append(f"mode={mode:o}")
        for opt in opts.get("Options") or []:
            if not isinstance(opt, list) or not 1 <= len(opt) <= 2:
                raise _mount_error(kind, f"invalid tmpfs option: {opt}")
            words.append("=".join(str(o) for o in opt))
        if readonly:
            words.append("ro")
        return MountPoint(
            type="tmpfs", destination=target, rw=not readonly, tmpfs_options=",".join(words)
        )
    # volume
    opts = vol_opts or {}
    for key in opts:
        if key not in ("NoCopy", "Labels", "DriverConfig"):
            raise _mount_error(kind, f"volume option {key} is not supported by dockyard")
    if source:
        from dockyard.engine.volumes import validate_name

        validate_name(source)
    return MountPoint(
        type="volume",
        destination=target,
        name=source,
        driver=((opts.get("DriverConfig") or {}).get("Name")) or "local",
        rw=not readonly,
        anonymous=not source,
        copy_data=not opts.get("NoCopy"),
        # stashed until the volume is created: labels and driver options
        tmpfs_options="",
    )


def _volume_create_args(m: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    opts = m.get("VolumeOptions") or {}
    labels = opts.get("Labels") or {}
    driver_opts = (opts.get("DriverConfig") or {}).get("Options") or {}
    return dict(labels), dict(driver_opts)


@contextlib.contextmanager
def volumes_undone_on_failure(volumes: VolumeService) -> Iterator[None]:
    """A create that fails leaves no volume behind, named or anonymous, that it made
    (dockerd checks every mount before it creates one). Safe because a create never
    awaits: no other request makes a volume meanwhile."""
    before = volumes.names()
    try:
        yield
    except BaseException:
        for name in volumes.names() - before:
            volumes.remove(name, force=True)
        raise


def plan(
    config: ContainerConfig,
    hc: HostConfig,
    volumes: VolumeService,
    mounts_of: Callable[[str], list[MountPoint]],
) -> list[MountPoint]:
    """The mount points of a new container; creates the volumes it names or needs (call
    it inside volumes_undone_on_failure)."""
    return _plan(config, hc, volumes, mounts_of)


def _plan(
    config: ContainerConfig,
    hc: HostConfig,
    volumes: VolumeService,
    mounts_of: Callable[[str], list[MountPoint]],
) -> list[MountPoint]:
    by_dest: dict[str, MountPoint] = {}
    for entry in hc.volumes_from or []:
        ref, _, mode = entry.partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidParameter(f"invalid mode for volumes-from: {mode}")
        for mp in mounts_of(ref):
            if mp.type == "tmpfs":
                continue
            rw = mp.rw if not mode else mode == "rw"
            by_dest[mp.destination] = MountPoint(
                type=mp.type,
                destination=mp.destination,
                source=mp.source,
                name=mp.name,
                driver=mp.driver,
                mode=mp.mode,
                rw=rw,
                propagation=mp.propagation,
                copy_data=False,
            )
    explicit: set[str] = set()

    def add(mp: MountPoint) -> None:
        if mp.destination in explicit:
            raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
        explicit.add(mp.destination)
        by_dest[mp.destination] = mp

    for b in create_validation.parse_binds(hc.binds):
        if b.kind == "bind":
            add(
                MountPoint(
                    type="bind",
                    destination=b.target,
                    source=b.source,
                    mode=b.mode,
                    rw=not b.readonly,
                    propagation="rprivate",
                )
            )
        else:
            v = volumes.create(b.source) if b.source else volumes.create(anonymous=True)
            add(
                MountPoint(
                    type="volume",
                    destination=b.target,
                    source=v.mountpoint,
                    name=v.name,
                    driver=v.driver,
                    mode=b.mode or "z",
                    rw=not b.readonly,
                    anonymous=v.anonymous,
                    copy_data=not b.nocopy,
                )
            )
    for raw in hc.mounts or []:
        mp = parse_mount(raw)
        if mp.type == "volume":
            labels, driver_opts = _volume_create_args(raw)
            if mp.name:
                v = volumes.create(mp.name, mp.driver, labels, driver_opts)
            else:
                v = volumes.create("", mp.driver, labels, driver_opts, anonymous=True)
            mp.name, mp.source, mp.anonymous = v.name, v.mountpoint, v.anonymous
        add(mp)
    for path in hc.tmpfs or {}:
        # --tmpfs: the runtime mounts it (RunSpec.tmpfs); it covers an image VOLUME.
        explicit.add(posixpath.normpath(path))
    for path in sorted(config.volumes or {}):
        dest = _clean_target("volume", path)
        if dest in by_dest or dest in explicit:
            continue
        v = volumes.create(anonymous=True)
        by_dest[dest] = MountPoint(
            type="volume",
            destination=dest,
            source=v.mountpoint,
            name=v.name,
            driver=v.driver,
            anonymous=True,
        )
    # parents before children, so /data is mounted before /data/sub
    return sorted(by_dest.values(), key=lambda mp: mp.destination.count("/"))


def check_volumes_from(hc: HostConfig, exists: Callable[[str], object]) -> None:
    for entry in hc.volumes_from or []:
        exists(entry.partition(":")[0])


def runtime_mounts(
    c: Container,
    volumes: VolumeService,
    copy_up: Callable[[str, str], None],
) -> tuple[list[BindMount], dict[str, str]]:
    """The binds and tmpfs mounts of one start. A volume that is still empty is first
    filled with what the image has at its destination (unless nocopy), as dockerd."""
    binds: list[BindMount] = []
    tmpfs: dict[str, str] = dict(c.host_config.tmpfs or {})  # --tmpfs
    for mp in c.mount_points or []:
        if mp.type == "tmpfs":
            tmpfs[mp.destination] = mp.tmpfs_options
            continue
        if mp.type == "volume":
            source = volumes.mount(mp.name)
            if mp.copy_data and not os.listdir(source):
                copy_up(mp.destination, source)
        else:
            source = mp.source
            # dockerd creates a missing -v source as a directory; an existing file (or
            # anything else) is bound as it is.
            if not os.path.lexists(source):
                os.makedirs(source, exist_ok=True)
        binds.append(BindMount(source, mp.destination, readonly=not mp.rw))
    return binds, tmpfs


def inspect_shape(mp: MountPoint) -> dict[str, Any]:
    """One entry of inspect's "Mounts", as dockerd shows it."""
    if mp.type == "volume":
        return {
            "Type": "volume",
            "Name": mp.name,
            "Source": mp.source,
            "Destination": mp.destination,
            "Driver": mp.driver or "local",
            "Mode": mp.mode,
            "RW": mp.rw,
            "Propagation": "",
        }
    if mp.type == "tmpfs":
        return {
            "Type": "tmpfs",
            "Source": "",
            "Destination": mp.destination,
            "Mode": "",
            "RW": mp.rw,
            "Propagation": "",
        }
    return {
        "Type": "bind",
        "Source": mp.source,
        "Destination": mp.destination,
        "Mode": mp.mode,
        "RW": mp.rw,
        "Propagation": mp.propagation or "rprivate",
    }
