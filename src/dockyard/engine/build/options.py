"""What a build is asked to do (POST /build's parameters), checked before any step."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.errors import InvalidParameter

# Build args every Dockerfile may use without declaring them (dockerd's
# builtinAllowedBuildArgs); they reach RUN but never the image's history.
PREDEFINED_ARGS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = ""
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    remove: bool = True  # rm: intermediate containers of successful steps
    force_remove: bool = False  # forcerm: also those of failed steps
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    cache_from: list[str] = field(default_factory=list)
    pull: bool = False
    shm_size: int = 0
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cgroup_parent: str = ""
    ulimits: list[dict] = field(default_factory=list)
    platform: str = ""
    remote: str = ""  # an http(s) URL of the context, instead of the request body


def check(opts: BuildOptions) -> None:
    if opts.remote and (
        not opts.remote.startswith(("http://", "https://")) or opts.remote.endswith(".git")
    ):
        raise InvalidParameter(
            f"remote context {opts.remote!r}: only http(s) URLs of a tar or a Dockerfile are "
            "supported (not git repositories)"
        )
    if opts.network_mode.startswith("container:"):
        raise InvalidParameter("networkmode container:<name> is not supported for builds")
    if opts.memory and opts.memory < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if opts.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if opts.ulimits:
        raise InvalidParameter("ulimits are not supported for builds")
