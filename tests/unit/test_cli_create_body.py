"""`run`/`create` command lines turned into the Docker API ContainerCreate body."""

from __future__ import annotations

import pytest

from dockyard.cli.commands import run
from dockyard.cli.commands.containeropts import build_create_body, parse_publish, ram_in_bytes
from dockyard.cli.context import CLIError
from dockyard.cli.flags import parse


def body_for(*argv: str, detach: bool | None = None) -> dict:
    opts, args = parse(run.COMMAND, list(argv))
    return build_create_body(opts, args, detach=bool(opts["detach"]) if detach is None else detach)


def test_plain_run_attaches_stdout_stderr():
    b = body_for("busybox", "echo", "hello", "world")
    assert b["Image"] == "busybox"
    assert b["Cmd"] == ["echo", "hello", "world"]
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"]) == (False, True, True)
    assert (b["Tty"], b["OpenStdin"], b["StdinOnce"]) == (False, False, False)
    assert b["Entrypoint"] is None
    assert b["HostConfig"]["NetworkMode"] == "default"
    assert b["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert b["NetworkingConfig"] == {"EndpointsConfig": {}}


def test_interactive_tty():
    b = body_for("-it", "busybox", "sh")
    assert (b["AttachStdin"], b["Tty"], b["OpenStdin"], b["StdinOnce"]) == (True, True, True, True)
    assert b["Cmd"] == ["sh"]


def test_detached_attaches_nothing():
    b = body_for("-d", "-i", "busybox")
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"], b["StdinOnce"]) == (
        False,
        False,
        False,
        False,
    )
    assert b["Cmd"] is None
    with pytest.raises(CLIError, match="Conflicting options: -a and -d"):
        body_for("-d", "-a", "stdout", "busybox")


def test_attach_selected_streams():
    b = body_for("-a", "stderr", "busybox")
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"]) == (False, False, True)


def test_many_flags(tmp_path, monkeypatch):
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=1\n\nHOMEVAR\n")
    monkeypatch.setenv("HOMEVAR", "h")
    monkeypatch.setenv("PASSED", "p")
    b = body_for(
        "--name", "web", "--env-file", str(envfile), "-e", "A=B", "-e", "PASSED", "-w", "/srv",
        "-u", "1000:1000", "-h", "box", "--entrypoint", "/bin/sh", "--network", "none",
        "-l", "a=1", "--label", "b", "-v", "/host:/ctr:ro", "-v", "/anon", "--privileged",
        "--read-only", "-m", "512m", "--cpu-shares", "512", "--pids-limit", "100",
        "--restart", "on-failure:3", "--stop-signal", "SIGINT", "--stop-timeout", "5",
        "-p", "127.0.0.1:8080:80/udp", "-p", "9000-9001:90-91", "--expose", "7000",
        "--tmpfs", "/run:size=1m", "--cap-add", "NET_ADMIN",
        "nginx:1.25", "-g", "daemon off;",
    )  # fmt: skip
    assert b["Env"] == ["FROM_FILE=1", "HOMEVAR=h", "A=B", "PASSED=p"]
    assert b["WorkingDir"] == "/srv" and b["User"] == "1000:1000" and b["Hostname"] == "box"
    assert b["Entrypoint"] == ["/bin/sh"]
    assert b["Labels"] == {"a": "1", "b": ""}
    assert b["Volumes"] == {"/anon": {}}
    assert b["StopSignal"] == "SIGINT" and b["StopTimeout"] == 5
    assert b["Cmd"] == ["-g", "daemon off;"]
    assert b["ExposedPorts"] == {"80/udp": {}, "90/tcp": {}, "91/tcp": {}, "7000/tcp": {}}
    hc = b["HostConfig"]
    assert hc["Binds"] == ["/host:/ctr:ro"]
    assert hc["NetworkMode"] == "none"
    assert hc["Privileged"] and hc["ReadonlyRootfs"]
    assert hc["Memory"] == 512 * 1024 * 1024
    assert hc["CpuShares"] == 512 and hc["PidsLimit"] == 100
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["PortBindings"] == {
        "80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "90/tcp": [{"HostIp": "", "HostPort": "9000"}],
        "91/tcp": [{"HostIp": "", "HostPort": "9001"}],
    }
    assert hc["Tmpfs"] == {"/run": "size=1m"}
    assert hc["CapAdd"] == ["NET_ADMIN"]


def test_empty_entrypoint_resets_it():
    assert body_for("--entrypoint", "", "busybox")["Entrypoint"] == [""]
    assert body_for("--entrypoint=", "busybox")["Entrypoint"] == [""]


def test_user_network_gets_endpoint_config():
    b = body_for("--network", "mynet", "--network-alias", "db", "busybox")
    assert b["HostConfig"]["NetworkMode"] == "mynet"
    assert b["NetworkingConfig"] == {"EndpointsConfig": {"mynet": {"Aliases": ["db"]}}}


def test_rm_and_restart_conflict():
    assert body_for("--rm", "busybox")["HostConfig"]["AutoRemove"] is True
    with pytest.raises(CLIError, match="Conflicting options"):
        body_for("--rm", "--restart", "always", "busybox")


@pytest.mark.parametrize(
    ("spec", "result"),
    [
        ("80", [("80/tcp", "", "")]),
        ("8080:80", [("80/tcp", "", "8080")]),
        ("127.0.0.1::80", [("80/tcp", "127.0.0.1", "")]),
        ("[::1]:8080:80/udp", [("80/udp", "::1", "8080")]),
    ],
)
def test_parse_publish(spec, result):
    assert parse_publish(spec) == result


def test_ram_in_bytes():
    assert ram_in_bytes("1g") == 1 << 30
    assert ram_in_bytes("100k") == 102400
    assert ram_in_bytes("1.5GB") == int(1.5 * (1 << 30))
    assert ram_in_bytes("4096") == 4096
    with pytest.raises(CLIError):
        ram_in_bytes("lots")


def test_seccomp_profile_file_is_sent_as_its_content(tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    hc = body_for(
        "--security-opt", f"seccomp={profile}", "--security-opt", "no-new-privileges",
        "--security-opt", "seccomp=unconfined", "busybox",
    )["HostConfig"]  # fmt: skip
    assert hc["SecurityOpt"] == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
        "no-new-privileges",
        "seccomp=unconfined",
    ]
    with pytest.raises(CLIError, match="opening seccomp profile"):
        body_for("--security-opt", f"seccomp={tmp_path}/none.json", "busybox")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CLIError, match="compacting json for seccomp profile"):
        body_for("--security-opt", f"seccomp={tmp_path}/bad.json", "busybox")


def test_update_body_leaves_unset_flags_at_zero():
    from dockyard.cli.commands import update

    opts, args = parse(update.COMMAND, ["--memory", "64m", "--cpus", "1.5", "c1"])
    body = update.build_update_body(opts)
    assert body["Memory"] == 64 << 20
    assert body["NanoCpus"] == 1_500_000_000
    assert body["CpuShares"] == 0 and body["PidsLimit"] is None
    assert "RestartPolicy" not in body
    opts, _ = parse(update.COMMAND, ["c1"])
    with pytest.raises(CLIError, match="you must provide one or more flags"):
        update.build_update_body(opts)
