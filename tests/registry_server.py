"""A real Distribution v2 registry for the tests: Debian's `docker-registry`.

Started with `docker-registry serve CONFIG` on a free port of 127.0.0.1 with
its storage in a temporary directory (its own systemd service is never
used), optionally behind htpasswd (bcrypt) auth, or behind token auth: then
a small token server runs here too, issuing the JWTs (RS256, signed with
openssl, the certificate in the x5c header) that the registry verifies
against its rootcertbundle. Stopped and removed by the fixture that
started it.
"""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker's token auth: GET /token?service=&scope= with Basic credentials."""

    def __init__(self, directory: Path, users: dict[str, str], service: str) -> None:
        self.users = users
        self.service = service
        self.issuer = "dky-token-issuer"
        self.key = directory / "token-key.pem"
        self.cert = directory / "token-cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=dky-token", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                user = server.check(self.headers.get("Authorization", ""))
                if user is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(user, query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def check(self, authorization: str) -> str | None:
        """The user, "" for anonymous, None for wrong credentials."""
        if not authorization:
            return ""
        try:
            user, _, password = (
                base64.b64decode(authorization.split(" ", 1)[1]).decode().partition(":")
            )
        except (ValueError, IndexError):
            return None
        return user if self.users.get(user) == password else None

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            # Anonymous users get nothing: every repository is private here.
            granted = actions.split(",") if user else []
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {
            "iss": self.issuer, "sub": user, "aud": self.service, "exp": now + 600,
            "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout  # fmt: skip
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RegistryServer:
    def __init__(
        self, users: dict[str, str] | None = None, token_users: dict[str, str] | None = None
    ) -> None:
        if REGISTRY is None:
            pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
        self.dir = Path(tempfile.mkdtemp(prefix="dky-registry-", dir="/tmp"))
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = self.dir / "data"
        auth = ""
        self.tokens: TokenServer | None = None
        if token_users is not None:
            if shutil.which("openssl") is None:
                pytest.skip("openssl is not installed (the token server signs with it)")
            self.tokens = TokenServer(self.dir, token_users, "dky-registry")
            auth = (
                f"auth:\n  token:\n    realm: {self.tokens.realm}\n"
                f"    service: {self.tokens.service}\n    issuer: {self.tokens.issuer}\n"
                f"    rootcertbundle: {self.tokens.cert}\n"
            )
        if users:
            if HTPASSWD is None:
                pytest.skip("htpasswd is not installed (apt-get install apache2-utils)")
            lines = []
            for user, password in users.items():
                out = subprocess.run(
                    [HTPASSWD, "-Bbn", user, password], capture_output=True, text=True, check=True
                ).stdout.strip()
                lines.append(out)
            (self.dir / "htpasswd").write_text("\n".join(lines) + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: dky-realm\n    path: {self.dir / 'htpasswd'}\n"
        (self.dir / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n" + auth
        )
        self.log = (self.dir / "registry.log").open("wb")
        self.proc = subprocess.Popen(
            [REGISTRY, "serve", str(self.dir / "config.yml")],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "docker-registry exited:\n" + (self.dir / "registry.log").read_text()
                )
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer on {self.host}")

    def blob_file(self, digest: str) -> Path:
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        if self.tokens is not None:
            self.tokens.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
