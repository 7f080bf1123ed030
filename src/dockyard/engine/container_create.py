"""Creating a container: checks, the merge of the image's config, the bundle and record;
and later changes to its config (start binds, docker update)."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time

from dockyard.engine import create_validation, etc_files, health, logconfig, mounts
from dockyard.engine.clock import rfc3339
from dockyard.engine.container_records import ContainerRecords
from dockyard.engine.models import (
    Container,
    ContainerConfig,
    HostConfig,
    MountPoint,
    NetworkingConfig,
    UpdateConfig,
    strslice,
)
from dockyard.engine.names import random_name, validate_name
from dockyard.engine.update import live_resources, merged_host_config
from dockyard.errors import Conflict, DockyardError, InvalidParameter, storage_full

log = logging.getLogger("dockyard.containers")


class ContainerCreation(ContainerRecords):
    """create, and the changes to a created container's config."""

    async def create(
        self,
        config: ContainerConfig,
        host_config: HostConfig,
        name: str = "",
        networking: NetworkingConfig | None = None,
    ) -> Container:
        try:
            with mounts.volumes_undone_on_failure(self.volumes):
                return await self._create(config, host_config, name, networking)
        except Exception as e:
            if isinstance(e, DockyardError) and storage_full(e) is None:
                raise  # refused before anything was written
            # E.g. a full disk after the bundle was begun: it goes now, not at the next
            # daemon start. (create never awaits, so no other create is half done.)
            self._sweep_unrecorded()
            raise

    def _sweep_unrecorded(self) -> None:
        for entry in os.listdir(self._root):
            if entry not in self._containers:
                shutil.rmtree(os.path.join(self._root, entry), ignore_errors=True)

    async def _create(
        self,
        config: ContainerConfig,
        host_config: HostConfig,
        name: str,
        networking: NetworkingConfig | None,
    ) -> Container:
        if not config.image:
            raise InvalidParameter("config cannot be empty in order to create a container")
        create_validation.validate_create(config, host_config)
        health.validate(config.healthcheck)
        logconfig.check(host_config.log_config, self.log_defaults)
        host_config.runtime = self.runtimes.resolve(host_config.runtime)
        image_id = self._images.resolve(config.image)
        image_cfg = self._images.config(image_id).get("config") or {}
        merged = self._merge_image_config(config, image_cfg)
        merged.healthcheck = health.merge(config.healthcheck, image_cfg.get("Healthcheck"))
        entrypoint = strslice(merged.entrypoint) or []
        cmd = strslice(merged.cmd) or []
        argv = entrypoint + cmd
        if not argv:
            raise InvalidParameter("no command specified")
        self.networking.validate(config, host_config, networking)

        container_id = secrets.token_hex(32)
        if name:
            full_name = validate_name(name)
            self._check_name_free(full_name)
        else:
            full_name = self._unused_random_name()
        mounts.check_volumes_from(host_config, self.get)
        mount_points = mounts.plan(merged, host_config, self.volumes, self._mounts_of)
        if not merged.hostname:
            merged.hostname = container_id[:12]
        if host_config.network_mode in ("", "default"):
            host_config.network_mode = "bridge"
        if host_config.network_mode == "host" and not config.hostname:
            merged.hostname = os.uname().nodename
        endpoints = self.networks.plan_endpoints(
            container_id,
            full_name.lstrip("/"),
            host_config.network_mode,
            networking.endpoints_config if networking is not None else None,
        )

        bundle = os.path.join(self._root, container_id)
        for sub in ("upper", "work", "rootfs"):
            os.makedirs(os.path.join(bundle, sub), exist_ok=True)
        host_net = host_config.network_mode == "host"
        paths = {
            "hostname": merged.hostname + "\n",
            "hosts": etc_files.hosts_file(
                host_config, host_net, host_gateway=self.networking.host_gateway()
            ),
            "resolv.conf": etc_files.resolv_conf(
                host_config, host_net, embedded_dns=bool(endpoints)
            ),
        }
        for fname, text in paths.items():
            etc_files.write_atomic(os.path.join(bundle, fname), text.encode())
        now_ns = time.time_ns()
        c = Container(
            id=container_id,
            name=full_name,
            created=rfc3339(now_ns),
            created_unix=now_ns / 1e9,
            path=argv[0],
            args=argv[1:],
            config=merged,
            host_config=host_config,
            image=image_id,
            log_path=os.path.join(bundle, f"{container_id}-json.log"),
            hostname_path=os.path.join(bundle, "hostname"),
            hosts_path=os.path.join(bundle, "hosts"),
            resolv_conf_path=os.path.join(bundle, "resolv.conf"),
            bundle=bundle,
            mount_points=mount_points,
        )
        self._save(c)
        self._containers[c.id] = c
        self.networks.save_endpoints(endpoints)
        self.emit(c, "create")
        log.info("container %s created (%s)", c.short_id, c.name)
        return c

    def _check_name_free(self, full_name: str) -> None:
        for other in self._containers.values():
            if other.name == full_name:
                raise Conflict(
                    f'Conflict. The container name "{full_name}" is already in use by '
                    f'container "{other.id}". You have to remove (or rename) that container '
                    "to be able to reuse that name."
                )

    def _unused_random_name(self) -> str:
        taken = {c.name for c in self._containers.values()}
        for retry in range(20):
            name = "/" + random_name(retry)
            if name not in taken:
                return name
        return "/" + random_name(20) + secrets.token_hex(2)

    def set_start_binds(self, ref: str, binds: list[str]) -> None:
        """The 2013 API gave binds at start (POST /v1.4/containers/{id}/start)."""
        c = self.get(ref)
        parsed = create_validation.parse_binds(binds)
        if any(b.kind != "bind" for b in parsed):
            raise InvalidParameter("volumes are given at create, not at start")
        c.host_config.binds = binds
        c.mount_points = [
            *(c.mount_points or []),
            *(
                MountPoint(type="bind", destination=b.target, source=b.source, rw=not b.readonly)
                for b in parsed
            ),
        ]
        self._save(c)

    @staticmethod
    def _merge_image_config(config: ContainerConfig, image: dict) -> ContainerConfig:
        """dockerd's merge of the image's config into the user's (daemon/commit.go)."""
        merged = ContainerConfig(**{f: getattr(config, f) for f in config.__struct_fields__})
        user_env = list(config.env or [])
        keys = {e.split("=", 1)[0] for e in user_env}
        merged.env = [e for e in (image.get("Env") or []) if e.split("=", 1)[0] not in keys]
        merged.env += user_env
        entrypoint = strslice(config.entrypoint)
        if entrypoint == [""]:
            entrypoint = []  # `--entrypoint ""` clears the image's entrypoint
        if not entrypoint:
            if not strslice(config.cmd):
                merged.cmd = image.get("Cmd")
            if entrypoint is None:
                entrypoint = image.get("Entrypoint")
        merged.entrypoint = entrypoint
        merged.cmd = strslice(merged.cmd)
        if not merged.user:
            merged.user = image.get("User") or ""
        if not merged.working_dir:
            merged.working_dir = image.get("WorkingDir") or ""
        if image.get("ExposedPorts"):
            merged.exposed_ports = {**image["ExposedPorts"], **(config.exposed_ports or {})}
        if image.get("Volumes"):
            merged.volumes = {**image["Volumes"], **(config.volumes or {})}
        if image.get("Labels"):
            merged.labels = {**image["Labels"], **(config.labels or {})}
        if merged.stop_signal is None and image.get("StopSignal"):
            merged.stop_signal = image["StopSignal"]
        if merged.on_build is None:
            merged.on_build = image.get("OnBuild")
        merged.image = config.image
        return merged

    def update(self, ref: str, upd: UpdateConfig) -> list[str]:
        """docker update: checked as at create, applied now if running, kept; warnings."""
        c = self.get(ref)
        new, warnings = merged_host_config(c.host_config, upd)
        if c.state.running:
            warnings += self._launcher.update_resources(c.bundle, live_resources(new))
        c.host_config = new
        self._save(c)
        return warnings
