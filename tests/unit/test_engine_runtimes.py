"""Which OCI runtime a container runs with: configuration, refusals, and what
reaches the launcher."""

from __future__ import annotations

import json

import pytest
from fakes import World, async_test

from dockyard.daemon import parse_args
from dockyard.engine.models import HostConfig
from dockyard.engine.runtimes import OciRuntimes, configure, parse_add_runtime
from dockyard.errors import DockyardError, InvalidParameter


def test_configured_runtimes_need_an_executable_path(tmp_path) -> None:
    tool = tmp_path / "my-runc"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    runtimes = configure({"mine": {"path": str(tool)}}, "mine")
    assert runtimes.paths["mine"] == str(tool)
    assert runtimes.info()["DefaultRuntime"] == "mine"
    assert runtimes.info()["Runtimes"]["dockyard"] == {"path": "dockyard-runtime"}
    with pytest.raises(DockyardError, match="not an executable"):
        configure({"x": {"path": str(tmp_path / "missing")}}, "")
    with pytest.raises(DockyardError, match="reserved"):
        configure({"dockyard": {"path": str(tool)}}, "")
    with pytest.raises(DockyardError, match="runtimeArgs not supported"):
        configure({"x": {"path": str(tool), "runtimeArgs": ["--debug"]}}, "")
    with pytest.raises(DockyardError, match="default-runtime nope"):
        configure({}, "nope")


def test_resolve_and_paths() -> None:
    runtimes = OciRuntimes(paths={"runc": "/usr/sbin/runc"})
    assert runtimes.resolve("") == "dockyard"
    assert runtimes.resolve("runc") == "runc"
    assert runtimes.path_of("runc") == "/usr/sbin/runc"
    assert runtimes.path_of("dockyard") == ""
    with pytest.raises(InvalidParameter, match="unknown or invalid runtime name: kata"):
        runtimes.resolve("kata")


def test_add_runtime_flag_and_daemon_json(tmp_path) -> None:
    assert parse_add_runtime(["a=/bin/true"]) == {"a": {"path": "/bin/true"}}
    with pytest.raises(DockyardError, match="name=path"):
        parse_add_runtime(["justaname"])
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"runtimes": {"t": {"path": "/bin/true"}}, "default-runtime": "t"}))
    cfg = parse_args(["--config-file", str(conf), "--data-root", str(tmp_path)])
    assert cfg.runtimes == {"t": {"path": "/bin/true"}} and cfg.default_runtime == "t"
    with pytest.raises(DockyardError, match="both as a flag and in the configuration file"):
        parse_args(["--config-file", str(conf), "--default-runtime", "dockyard"])
    with pytest.raises(DockyardError, match="both by --add-runtime"):
        parse_args(["--config-file", str(conf), "--add-runtime", "t=/bin/false"])


@async_test
async def test_the_container_records_its_runtime_and_the_launcher_gets_its_path(tmp_path) -> None:
    w = World(tmp_path)
    w.containers.runtimes = OciRuntimes(paths={"runc": "/usr/sbin/runc"})
    await w.image("ubuntu")
    default = await w.run()
    assert default.host_config.runtime == "dockyard"
    other = await w.run(host_config=HostConfig(runtime="runc"))
    assert other.host_config.runtime == "runc"
    assert w.launcher.runtime_paths == ["", "/usr/sbin/runc"]
    with pytest.raises(InvalidParameter, match="unknown or invalid runtime name"):
        await w.create(host_config=HostConfig(runtime="kata"))
