"""The options shared by `run` and `create`, and the ContainerCreate body they build.

The body has the Docker Engine API shape (Config fields at the top level plus
HostConfig and NetworkingConfig), filled the way the docker CLI fills it so the
daemon sees the same request from `dockyard run` as from `docker run`.
"""

from __future__ import annotations

import os

from dockyard.cli.context import CLIError
from dockyard.cli.flags import Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

CONTAINER_OPTIONS: list[Opt] = [
    Opt("add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)"),
    Opt("attach", "a", kind="list", help="Attach to STDIN, STDOUT or STDERR"),
    Opt("blkio-weight", kind="int", help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)"),
    Opt("cap-add", kind="list", help="Add Linux capabilities"),
    Opt("cap-drop", kind="list", help="Drop Linux capabilities"),
    Opt("cgroup-parent", kind="string", help="Optional parent cgroup for the container"),
    Opt("cgroupns", kind="string", help="Cgroup namespace to use (host|private)\n'host':    Run the container in the Docker host's cgroup namespace\n'private': Run the container in its own private cgroup namespace\n'':        Use the cgroup namespace as configured by the\n           default-cgroupns-mode option on the daemon (default)"),
    Opt("cidfile", kind="string", help="Write the container ID to the file"),
    Opt("cpu-period", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) period"),
    Opt("cpu-quota", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) quota"),
    Opt("cpu-shares", "c", kind="int", help="CPU shares (relative weight)"),
    Opt("cpus", kind="string", metavar="decimal", help="Number of CPUs"),
    Opt("cpuset-cpus", kind="string", help="CPUs in which to allow execution (0-3, 0,1)"),
    Opt("cpuset-mems", kind="string", help="MEMs in which to allow execution (0-3, 0,1)"),
    Opt("device", kind="list", help="Add a host device to the container"),
    Opt("dns", kind="list", help="Set custom DNS servers"),
    Opt("dns-option", kind="list", help="Set DNS options"),
    Opt("dns-search", kind="list", help="Set custom DNS search domains"),
    Opt("domainname", kind="string", help="Container NIS domain name"),
    Opt("entrypoint", kind="string", help="Overwrite the default ENTRYPOINT of the image"),
    Opt("env", "e", kind="list", help="Set environment variables"),
    Opt("env-file", kind="list", help="Read in a file of environment variables"),
    Opt("expose", kind="list", help="Expose a port or a range of ports"),
    Opt("group-add", kind="list", help="Add additional groups to join"),
    Opt("hostname", "h", kind="string", help="Container host name"),
    Opt("init", help="Run an init inside the container that forwards signals and reaps processes"),
    Opt("interactive", "i", help="Keep STDIN open even if not attached"),
    Opt("ip", kind="string", help="IPv4 address (e.g., 172.30.100.104)"),
    Opt("ipc", kind="string", help="IPC mode to use"),
    Opt("label", "l", kind="list", help="Set meta data on a container"),
    Opt("label-file", kind="list", help="Read in a line delimited file of labels"),
    Opt("link", kind="list", help="Add link to another container"),
    Opt("log-driver", kind="string", help="Logging driver for the container"),
    Opt("log-opt", kind="list", help="Log driver options"),
    Opt("mac-address", kind="string", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Opt("memory", "m", kind="string", metavar="bytes", help="Memory limit"),
    Opt("memory-reservation", kind="string", metavar="bytes", help="Memory soft limit"),
    Opt("memory-swap", kind="string", metavar="bytes", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    Opt("name", kind="string", help="Assign a name to the container"),
    Opt("network", kind="string", metavar="network", help="Connect a container to a network"),
    Opt("net", kind="string", hidden=True),
    Opt("network-alias", kind="list", help="Add network-scoped alias for the container"),
    Opt("no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
    Opt("oom-kill-disable", help="Disable OOM Killer"),
    Opt("oom-score-adj", kind="int", help="Tune host's OOM preferences (-1000 to 1000)"),
    Opt("pid", kind="string", help="PID namespace to use"),
    Opt("pids-limit", kind="int", help="Tune container pids limit (set -1 for unlimited)"),
    Opt("platform", kind="string", help="Set platform if server is multi-platform capable"),
    Opt("privileged", help="Give extended privileges to this container"),
    Opt("publish", "p", kind="list", help="Publish a container's port(s) to the host"),
    Opt("publish-all", "P", help="Publish all exposed ports to random ports"),
    Opt("pull", kind="string", default="missing", help='Pull image before running ("always", "missing", "never")'),
    Opt("quiet", "q", help="Suppress the pull output"),
    Opt("read-only", help="Mount the container's root filesystem as read only"),
    Opt("restart", kind="string", default="no", help="Restart policy to apply when a container exits"),
    Opt("rm", help="Automatically remove the container and its associated anonymous volumes when it exits"),
    Opt("runtime", kind="string", help="Runtime to use for this container"),
    Opt("security-opt", kind="list", help="Security Options"),
    Opt("shm-size", kind="string", metavar="bytes", help="Size of /dev/shm"),
    Opt("stop-signal", kind="string", help="Signal to stop the container"),
    Opt("stop-timeout", kind="int", help="Timeout (in seconds) to stop a container"),
    Opt("sysctl", kind="list", metavar="map", help="Sysctl options"),
    Opt("tmpfs", kind="list", help="Mount a tmpfs directory"),
    Opt("tty", "t", help="Allocate a pseudo-TTY"),
    Opt("ulimit", kind="list", metavar="ulimit", help="Ulimit options"),
    Opt("user", "u", kind="string", help="Username or UID (format: <name|uid>[:<group|gid>])"),
    Opt("userns", kind="string", help="User namespace to use"),
    Opt("uts", kind="string", help="UTS namespace to use"),
    Opt("volume", "v", kind="list", help="Bind mount a volume"),
    Opt("volumes-from", kind="list", help="Mount volumes from the specified container(s)"),
    Opt("workdir", "w", kind="string", help="Working directory inside the container"),
]  # fmt: skip

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes: '512m', '1g', '1.5GB', '1024', '64KiB' (binary multiples)."""
    text = value.strip().lower()
    # optional "b" / "ib" after the unit letter, as go-units accepts
    if text.endswith("ib") and len(text) > 2 and text[-3] in "kmgtp":
        text = text[:-2]
    elif text.endswith("b"):
        text = text[:-1]
    unit = text[-1] if text and text[-1] in "kmgtp" else ""
    number = text[: len(text) - len(unit)].strip()
    try:
        amount = float(number)
    except ValueError:
        raise CLIError(f"invalid size: '{value}'", 125) from None
    if amount < 0 or not number[:1].isdigit():
        raise CLIError(f"invalid size: '{value}'", 125)
    return int(amount * _UNITS[unit])


def parse_env_file(path: str, what: str = "env") -> list[str]:
    """Lines `KEY=value`; `KEY` alone takes the value from our environment (docker's rule)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise CLIError(
            f"open {path}: {exc.strerror.lower() if exc.strerror else exc}", 125
        ) from None
    out: list[str] = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, _ = line.partition("=")
        if not eq:
            if what == "env":
                if key in os.environ:
                    out.append(f"{key}={os.environ[key]}")
                continue
            out.append(line)
            continue
        if what == "env" and (not key or " " in key.strip()):
            raise CLIError(f"variable '{key}' contains whitespaces", 125)
        out.append(line)
    return out


def _env_value(item: str) -> str:
    if "=" in item:
        if item.startswith("="):
            raise CLIError(f"invalid environment variable: {item}", 125)
        return item
    # `-e NAME` copies NAME from the caller's environment when it is set
    return f"{item}={os.environ[item]}" if item in os.environ else item


def _port_range(text: str, what: str) -> list[int]:
    start_s, dash, end_s = text.partition("-")
    try:
        start = int(start_s)
        end = int(end_s) if dash else start
    except ValueError:
        raise CLIError(f"invalid {what}: {text}", 125) from None
    if not (0 <= start <= 65535 and start <= end <= 65535):
        raise CLIError(f"invalid {what}: {text}", 125)
    return list(range(start, end + 1))


def parse_publish(spec: str) -> list[tuple[str, str, str]]:
    """`[ip:][hostPort:]containerPort[/proto]` -> [(port/proto, host ip, host port)]."""
    proto = "tcp"
    rest = spec
    if "/" in rest:
        rest, proto = rest.rsplit("/", 1)
        proto = proto or "tcp"
    host_ip = ""
    if rest.startswith("["):  # [::1]:8080:80
        end = rest.find("]")
        host_ip, rest = rest[1:end], rest[end + 2 :]
        parts = rest.split(":")
    else:
        parts = rest.split(":")
        if len(parts) == 3:
            host_ip = parts.pop(0)
        elif len(parts) > 3:
            # bare IPv6 address: everything before the last two fields
            host_ip = ":".join(parts[:-2])
            parts = parts[-2:]
    if len(parts) == 1:
        host_port, container_port = "", parts[0]
    elif len(parts) == 2:
        host_port, container_port = parts
    else:
        raise CLIError(f"invalid publish spec: {spec}", 125)
    if not container_port:
        raise CLIError(f"no port specified: {spec}<empty>", 125)
    cports = _port_range(container_port, "containerPort")
    if host_port:
        hports = _port_range(host_port, "hostPort")
        if len(hports) != len(cports):
            if len(hports) > 1:
                raise CLIError(
                    f"invalid ranges specified for container and host Ports: {container_port} and {host_port}",
                    125,
                )
            # one host port for a range: docker leaves the choice to the daemon
            return [(f"{c}/{proto}", host_ip, host_port) for c in cports]
        return [(f"{c}/{proto}", host_ip, str(h)) for c, h in zip(cports, hports, strict=True)]
    return [(f"{c}/{proto}", host_ip, "") for c in cports]


def _labels(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def normalize_image(ref: str) -> str:
    """Familiar name with the default tag: 'busybox' -> 'busybox:latest'."""
    if "@" in ref:
        return ref
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else f"{ref}:latest"


def build_create_body(
    opts: dict[str, Any], args: list[str], detach: bool = False
) -> dict[str, Any]:
    """ContainerCreate body for `IMAGE [COMMAND] [ARG...]` and the parsed flags."""
    image, cmd = args[0], args[1:]
    attach = [a.lower() for a in opts["attach"]]
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise CLIError(
                f'invalid argument "{stream}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR',
                125,
            )
    attach_stdin = "stdin" in attach or opts["interactive"]
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    if detach:
        if attach:
            raise CLIError("Conflicting options: -a and -d", 125)
        attach_stdin = attach_stdout = attach_stderr = False

    env: list[str] = []
    for path in opts["env_file"]:
        env += parse_env_file(path, "env")
    env += [_env_value(e) for e in opts["env"]]

    labels: dict[str, str] = {}
    for path in opts["label_file"]:
        labels.update(_labels(parse_env_file(path, "label")))
    labels.update(_labels(opts["label"]))

    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts["publish"]:
        for port, host_ip, host_port in parse_publish(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append({"HostIp": host_ip, "HostPort": host_port})
    for spec in opts["expose"]:
        port_s, _, proto = spec.partition("/")
        for p in _port_range(port_s, "range format for --expose"):
            exposed.setdefault(f"{p}/{proto or 'tcp'}", {})

    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for v in opts["volume"]:
        # a lone container path is an anonymous volume; anything with ':' is a bind
        if ":" in v:
            binds.append(v)
        else:
            volumes[v] = {}

    tmpfs: dict[str, str] = {}
    for t in opts["tmpfs"]:
        path, _, topts = t.partition(":")
        tmpfs[path] = topts

    restart_name, _, retries = (opts["restart"] or "no").partition(":")
    if restart_name not in ("no", "always", "on-failure", "unless-stopped"):
        raise CLIError(f"invalid restart policy '{restart_name}'", 125)
    if opts["rm"] and restart_name != "no":
        raise CLIError("Conflicting options: cannot specify both --restart and --rm", 125)
    try:
        max_retry = int(retries) if retries else 0
    except ValueError:
        raise CLIError(f"maximum retry count must be an integer: {retries}", 125) from None

    network = opts["network"] or opts["net"] or "default"
    log_config: dict[str, Any] = {"Type": opts["log_driver"] or "", "Config": {}}
    for lo in opts["log_opt"]:
        k, _, val = lo.partition("=")
        log_config["Config"][k] = val
    sysctls = dict(s.partition("=")[::2] for s in opts["sysctl"])

    nano_cpus = 0
    if opts["cpus"]:
        try:
            nano_cpus = int(round(float(opts["cpus"]) * 1e9))
        except ValueError:
            raise CLIError(f'invalid argument "{opts["cpus"]}" for "--cpus" flag', 125) from None

    def size(name: str) -> int:
        return ram_in_bytes(opts[name]) if opts[name] else 0

    memory_swap = 0
    if opts["memory_swap"]:
        memory_swap = -1 if opts["memory_swap"] == "-1" else ram_in_bytes(opts["memory_swap"])

    entrypoint: list[str] | None = None
    if "entrypoint" in opts["_set"]:
        entrypoint = [opts["entrypoint"]] if opts["entrypoint"] else [""]

    config: dict[str, Any] = {
        "Hostname": opts["hostname"] or "",
        "Domainname": opts["domainname"] or "",
        "User": opts["user"] or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": opts["tty"],
        "OpenStdin": opts["interactive"],
        # docker sets StdinOnce when stdin is both open and attached
        "StdinOnce": bool(opts["interactive"] and attach_stdin and not detach),
        "Env": env,
        "Cmd": cmd or None,
        "Image": image,
        "Volumes": volumes or None,
        "WorkingDir": opts["workdir"] or "",
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": labels,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if opts["mac_address"]:
        config["MacAddress"] = opts["mac_address"]
    if opts["stop_signal"]:
        config["StopSignal"] = opts["stop_signal"]
    if "stop_timeout" in opts["_set"]:
        config["StopTimeout"] = opts["stop_timeout"]
    if opts["no_healthcheck"]:
        config["Healthcheck"] = {"Test": ["NONE"]}

    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": opts["cidfile"] or "",
        "LogConfig": log_config,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": max_retry},
        "AutoRemove": bool(opts["rm"]),
        "VolumeDriver": "",
        "VolumesFrom": opts["volumes_from"] or None,
        "CapAdd": opts["cap_add"] or None,
        "CapDrop": opts["cap_drop"] or None,
        "CgroupnsMode": opts["cgroupns"] or "",
        "Dns": opts["dns"],
        "DnsOptions": opts["dns_option"],
        "DnsSearch": opts["dns_search"],
        "ExtraHosts": opts["add_host"] or None,
        "GroupAdd": opts["group_add"] or None,
        "IpcMode": opts["ipc"] or "",
        "Links": opts["link"] or None,
        "OomScoreAdj": opts["oom_score_adj"] or 0,
        "PidMode": opts["pid"] or "",
        "Privileged": bool(opts["privileged"]),
        "PublishAllPorts": bool(opts["publish_all"]),
        "ReadonlyRootfs": bool(opts["read_only"]),
        "SecurityOpt": [_security_opt(o) for o in opts["security_opt"]] or None,
        "UTSMode": opts["uts"] or "",
        "UsernsMode": opts["userns"] or "",
        "ShmSize": size("shm_size"),
        "CpuShares": opts["cpu_shares"] or 0,
        "BlkioWeight": opts["blkio_weight"] or 0,
        "Memory": size("memory"),
        "MemoryReservation": size("memory_reservation"),
        "MemorySwap": memory_swap,
        "NanoCpus": nano_cpus,
        "CgroupParent": opts["cgroup_parent"] or "",
        "CpuPeriod": opts["cpu_period"] or 0,
        "CpuQuota": opts["cpu_quota"] or 0,
        "CpusetCpus": opts["cpuset_cpus"] or "",
        "CpusetMems": opts["cpuset_mems"] or "",
        "Devices": [_device(d) for d in opts["device"]],
        "OomKillDisable": bool(opts["oom_kill_disable"]),
        "PidsLimit": opts["pids_limit"] if "pids_limit" in opts["_set"] else None,
        "Ulimits": [_ulimit(u) for u in opts["ulimit"]] or None,
    }
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    if sysctls:
        host_config["Sysctls"] = sysctls
    if opts["runtime"]:
        host_config["Runtime"] = opts["runtime"]
    if opts["init"]:
        host_config["Init"] = True

    networking: dict[str, Any] = {"EndpointsConfig": {}}
    if network not in ("default", "bridge", "host", "none") and not network.startswith(
        "container:"
    ):
        endpoint: dict[str, Any] = {}
        if opts["network_alias"]:
            endpoint["Aliases"] = opts["network_alias"]
        if opts["ip"]:
            endpoint["IPAMConfig"] = {"IPv4Address": opts["ip"]}
        networking["EndpointsConfig"][network] = endpoint
    elif opts["network_alias"]:
        raise CLIError("network-scoped aliases are only supported for user-defined networks", 125)
    elif opts["ip"]:
        # Sent as the docker CLI sends it: the daemon answers that --ip needs a
        # user-defined network.
        networking["EndpointsConfig"][network] = {"IPAMConfig": {"IPv4Address": opts["ip"]}}

    return {**config, "HostConfig": host_config, "NetworkingConfig": networking}


def _security_opt(opt: str) -> str:
    """As the docker CLI: `seccomp=FILE` is sent as the file's content (compact JSON)."""
    key, sep, value = opt.partition("=")
    if not sep:
        key, sep, value = opt.partition(":")
    if key != "seccomp" or not sep or value == "unconfined":
        return opt
    import json

    try:
        with open(value, "rb") as f:
            profile = json.load(f)
    except OSError as exc:
        raise CLIError(f"opening seccomp profile ({value}) failed: {exc.strerror}", 125) from None
    except ValueError as exc:
        raise CLIError(
            f"compacting json for seccomp profile ({value}) failed: {exc}", 125
        ) from None
    return "seccomp=" + json.dumps(profile, separators=(",", ":"))


def _device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1] else host
    perms = parts[2] if len(parts) > 2 else "rwm"
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}


def _ulimit(spec: str) -> dict[str, Any]:
    name, _, values = spec.partition("=")
    soft_s, _, hard_s = values.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise CLIError(f"invalid ulimit argument: {spec}", 125) from None
    return {"Name": name, "Soft": soft, "Hard": hard}


def _pull_for_run(ctx: Any, opts: dict[str, Any], image: str, prog: str) -> None:
    from dockyard.cli.commands.pull import pull_image
    from dockyard.client.errors import APIError

    try:
        pull_image(
            ctx,
            normalize_image(image),
            platform=opts["platform"],
            quiet=opts["quiet"],
            to_stderr=True,
        )
    except APIError as exc:
        raise CLIError(f"{prog}: Error response from daemon: {exc.message}", 125) from None
    except CLIError as exc:  # an error in the pull's progress stream
        raise CLIError(f"{prog}: {exc.message}", 125) from None


def create_container(ctx: Any, opts: dict[str, Any], body: dict[str, Any], prog: str) -> str:
    """POST /containers/create with docker's messages; returns the new id."""
    from dockyard.client.errors import APIError

    image = body["Image"]
    query: dict[str, Any] = {"name": opts["name"] or None, "platform": opts["platform"] or None}
    cidfile = opts["cidfile"]
    if cidfile and os.path.exists(cidfile):
        raise CLIError(
            f"{prog}: Container ID file found, make sure the other container isn't running or delete {cidfile}",
            125,
        )
    pull = opts.get("pull") or "missing"
    if pull not in ("always", "missing", "never"):
        raise CLIError(
            f'invalid pull option: \'{pull}\': must be one of "always", "missing" or "never"',
            125,
        )
    if pull == "always":
        _pull_for_run(ctx, opts, image, prog)
    try:
        resp = ctx.client.post("/containers/create", query, body)
    except APIError as exc:
        if not (exc.status == 404 and "image" in exc.message.lower()):
            raise CLIError(f"{prog}: Error response from daemon: {exc.message}", 125) from None
        if pull == "never":
            raise CLIError(f"{prog}: Error response from daemon: {exc.message}", 125) from None
        # As docker: pull what is missing (progress on stderr), then create again.
        ctx.err(f"Unable to find image '{normalize_image(image)}' locally\n")
        _pull_for_run(ctx, opts, image, prog)
        try:
            resp = ctx.client.post("/containers/create", query, body)
        except APIError as exc2:
            raise CLIError(f"{prog}: Error response from daemon: {exc2.message}", 125) from None
    for warning in (resp or {}).get("Warnings") or []:
        ctx.err(f"WARNING: {warning}\n")
    cid = str(resp["Id"])
    if cidfile:
        try:
            with open(cidfile, "x") as f:
                f.write(cid)
        except OSError as exc:
            raise CLIError(f"{prog}: failed to create the container ID file: {exc}", 125) from None
    return cid
