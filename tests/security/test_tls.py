"""TLS on the TCP listener, as dockerd: with --tlsverify only clients holding a
certificate signed by the daemon's CA get in; everyone else is refused before
a single byte of HTTP is read (a `POST /containers/create` binding `/` would be
root on the host)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tlscerts import CA, CertDir

pytestmark = pytest.mark.root

HOST_ROOT_BODY = json.dumps(
    {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["/:/host"]}}
).encode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, CertDir]:
    base = tmp_path_factory.mktemp("certs")
    ca = CA()
    rogue = CA("someone else's CA")
    return {
        "server": ca.issue(base / "server", "localhost", server=True),
        "client": ca.issue(base / "client", "client", server=False),
        # signed by another CA: must be refused by the daemon
        "rogue": rogue.issue(base / "rogue", "client", server=False),
        # trusts only the other CA: must refuse our daemon's certificate
        "wrong-ca": rogue.issue(base / "wrong-ca", "localhost", server=True),
    }


@pytest.fixture
def tls_daemon(daemon_factory, certs):
    server = certs["server"]
    d = daemon_factory(
        extra_args=[
            "--tlsverify",
            f"--tlscacert={server.ca}",
            f"--tlscert={server.cert}",
            f"--tlskey={server.key}",
        ]
    )
    d.import_busybox()  # over the unix socket, which has no TLS
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tls_env(d, cert_dir: CertDir | None) -> dict[str, str]:
    env = {"DOCKER_HOST": d.tcp, "DOCKYARD_HOST": d.tcp}
    if cert_dir is not None:
        env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(cert_dir.path))
    return env


def plain_http(port: int, body: bytes) -> bytes:
    """A request with no TLS at all, as a web page or a scanner would send it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return data


def test_clients_with_a_certificate_from_the_ca_get_in(tls_daemon, certs) -> None:
    env = tls_env(tls_daemon, certs["client"])
    run = tls_daemon.dockyard("run", "--rm", "busybox", "echo", "over tls", env=env)
    assert (run.returncode, run.stdout) == (0, "over tls\n"), run.stderr
    # stdin over TLS: the half-close after it (close_notify) must not cut the output
    cat = tls_daemon.dockyard("run", "-i", "--rm", "busybox", "cat", input="typed\n", env=env)
    assert (cat.returncode, cat.stdout) == (0, "typed\n"), cat.stderr
    # the flags instead of the environment
    client = certs["client"]
    flags = tls_daemon.dockyard(
        "-H", tls_daemon.tcp, "--tlsverify", "--tlscacert", client.ca,
        "--tlscert", client.cert, "--tlskey", client.key, "ps", "-q",
        env={"DOCKER_HOST": "", "DOCKYARD_HOST": ""},
    )  # fmt: skip
    assert flags.returncode == 0, flags.stderr


def test_clients_without_a_certificate_are_refused(tls_daemon, certs) -> None:
    # Connects and never says hello: dropped after the handshake timeout (30 s).
    silent = socket.create_connection(("127.0.0.1", tls_daemon.tcp_port), timeout=60)
    opened = time.monotonic()
    before = tls_daemon.request("GET", "/containers/json?all=1").json()
    assert b"HTTP/" not in plain_http(tls_daemon.tcp_port, HOST_ROOT_BODY)

    no_cert = tls_daemon.dockyard("ps", env=tls_env(tls_daemon, None))
    assert no_cert.returncode == 1 and "TLS" in no_cert.stderr, no_cert.stderr

    # TLS, the right CA for the server, no client certificate
    ca_only = certs["client"].path.parent / "ca-only"
    ca_only.mkdir(exist_ok=True)
    (ca_only / "ca.pem").write_bytes(Path(certs["client"].ca).read_bytes())
    anon = tls_daemon.dockyard("ps", env=tls_env(tls_daemon, CertDir(ca_only)))
    assert anon.returncode == 1 and "client certificate" in anon.stderr, anon.stderr

    rogue = tls_daemon.dockyard(
        "create", "-v", "/:/host", "busybox", env=tls_env(tls_daemon, certs["rogue"])
    )
    assert rogue.returncode == 1, rogue.stdout
    assert tls_daemon.request("GET", "/containers/json?all=1").json() == before
    try:
        assert silent.recv(1) == b"", "the daemon sent something before a TLS hello"
    except ConnectionResetError:
        pass
    finally:
        silent.close()
    assert time.monotonic() - opened < 50


def test_the_client_refuses_a_daemon_its_ca_did_not_sign(tls_daemon, certs) -> None:
    proc = tls_daemon.dockyard("ps", env=tls_env(tls_daemon, certs["wrong-ca"]))
    assert proc.returncode == 1
    assert "certificate verify failed" in proc.stderr, proc.stderr


@pytest.mark.docker_cli
def test_the_docker_cli_speaks_tls_to_the_daemon(tls_daemon, certs) -> None:
    c = certs["client"]
    base = ["-H", tls_daemon.tcp, "--tlsverify", f"--tlscacert={c.ca}"]
    base += [f"--tlscert={c.cert}", f"--tlskey={c.key}"]
    proc = tls_daemon.docker(*base, "run", "-i", "--rm", "busybox", "cat", input="docker in\n")
    assert (proc.returncode, proc.stdout) == (0, "docker in\n"), proc.stderr
    # without -i the CLI half-closes (close_notify) at once; the output still comes
    out = tls_daemon.docker(*base, "run", "--rm", "busybox", "sh", "-c", "sleep 1; echo late")
    assert (out.returncode, out.stdout) == (0, "late\n"), out.stderr
    plain = tls_daemon.docker("-H", tls_daemon.tcp, "ps")
    assert plain.returncode != 0


def test_the_docker_sdk_with_tlsconfig(tls_daemon, certs, monkeypatch) -> None:
    docker = pytest.importorskip("docker")
    # requests prefers these over the SDK's ca_cert (its merge_environment_settings)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    c = certs["client"]
    tls = docker.tls.TLSConfig(client_cert=(c.cert, c.key), ca_cert=c.ca, verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{tls_daemon.tcp_port}", tls=tls)
    try:
        assert client.ping() is True
        out = client.containers.run("busybox", ["echo", "sdk"], remove=True)
        assert out == b"sdk\n"
    finally:
        client.close()
    with pytest.raises((ssl.SSLError, OSError, docker.errors.DockerException)):
        docker.DockerClient(base_url=f"https://127.0.0.1:{tls_daemon.tcp_port}", tls=False).ping()


def test_daemon_json_tls_keys(daemon_factory, certs, tmp_path) -> None:
    s = certs["server"]
    config = tmp_path / "daemon.json"
    config.write_text(
        json.dumps({"tlsverify": True, "tlscacert": s.ca, "tlscert": s.cert, "tlskey": s.key})
    )
    d = daemon_factory(extra_args=["--config-file", str(config)])
    assert d.dockyard("version", env=tls_env(d, certs["client"])).returncode == 0
    assert d.dockyard("version", env=tls_env(d, None)).returncode == 1


def test_a_tcp_listener_without_tls_is_loudly_warned_about(daemon_factory) -> None:
    port = free_port()
    d = daemon_factory(extra_args=["-H", f"tcp://0.0.0.0:{port}", "--tls=false"])
    log = d.log_path.read_text()
    assert (
        "Binding to IP address without --tlsverify is insecure and gives root access on this "
        "machine to everyone who has access to your network." in log
    )
    assert f'host="tcp://0.0.0.0:{port}"' in log
    # --tls=false says the exposure is meant: no 15 s delay, no deprecation lines
    assert "Startup is intentionally being slowed down" not in log


def test_missing_certificates_stop_the_daemon_with_one_line(daemon_factory, tmp_path) -> None:
    d = daemon_factory(
        extra_args=["--tlsverify", f"--tlscert={tmp_path}/none.pem", f"--tlskey={tmp_path}/k.pem"],
        wait=False,
    )
    assert d.proc.wait(timeout=30) == 1
    assert "could not load X509 key pair" in d.log_path.read_text()


def test_cli_refuses_tls_flags_for_a_unix_socket(daemon) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "-H", daemon.host, "--tlsverify", "ps"],
        capture_output=True, text=True, env=daemon.env, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1 and "TLS applies to tcp:// hosts" in proc.stderr, proc.stderr


def test_tls_without_client_verification(daemon_factory, certs) -> None:
    """dockerd's --tls alone: encrypted, any client; the client may still check the daemon."""
    s = certs["server"]
    d = daemon_factory(extra_args=["--tls", f"--tlscert={s.cert}", f"--tlskey={s.key}"])
    env = {"DOCKER_HOST": d.tcp, "DOCKYARD_HOST": d.tcp, "DOCKER_TLS_VERIFY": ""}
    assert d.dockyard("--tls", "version", env=env).returncode == 0
    ca_only = certs["client"].path.parent / "ca-only-tls"
    ca_only.mkdir(exist_ok=True)
    (ca_only / "ca.pem").write_bytes(Path(s.ca).read_bytes())
    checked = d.dockyard("--tlsverify", "version", env={**env, "DOCKER_CERT_PATH": str(ca_only)})
    assert checked.returncode == 0, checked.stderr
    assert "Binding to IP address without --tlsverify is insecure" in d.log_path.read_text()
    assert d.dockyard("version", env=env).returncode == 1  # plain HTTP to a TLS port
