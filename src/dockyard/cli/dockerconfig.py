"""Registry credentials in docker's client config (~/.docker/config.json).

Same file, same format as the docker CLI: `auths` maps a server to
{"auth": base64("user:password")}; `credsStore` / `credHelpers` name
docker-credential-* programs that keep the secrets instead, spoken to with
their get/store/erase protocol. Docker Hub's key is its legacy address
"https://index.docker.io/v1/". The directory is --config, else
$DOCKER_CONFIG, else ~/.docker.
"""

from __future__ import annotations

import base64
import json
import os

from dockyard.cli.context import CLIError

INDEX_SERVER = "https://index.docker.io/v1/"
_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io", "")


def config_dir(flag: str | None = None) -> str:
    if flag:
        return flag
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".docker")


def server_key(domain: str) -> str:
    """The config.json key for a registry ("docker.io" -> docker's index address)."""
    host = domain.strip()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/", 1)[0]
    return INDEX_SERVER if host in _HUB_NAMES else host


def registry_domain(image: str) -> str:
    """The registry part of an image reference, docker's way (first component with . or :)."""
    first, slash, _ = image.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost"):
        return first
    return "docker.io"


class DockerConfig:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "config.json")
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read() or b"{}")
        except FileNotFoundError:
            doc = {}
        except (OSError, ValueError) as e:
            raise CLIError(f"loading config file {self.path}: {e}", 1) from None
        if not isinstance(doc, dict):
            raise CLIError(f"loading config file {self.path}: not a JSON object", 1)
        self.doc: dict = doc

    def _helper(self, key: str) -> str:
        helpers = self.doc.get("credHelpers") or {}
        return str(helpers.get(key) or self.doc.get("credsStore") or "")

    def get(self, key: str) -> dict[str, str]:
        """{"username", "password", "serveraddress"} for `key`; empty if none stored."""
        helper = self._helper(key)
        if helper:
            out = _run_helper(helper, "get", key)
            if out is None:
                return {}
            try:
                doc = json.loads(out)
            except ValueError:
                return {}
            username, secret = str(doc.get("Username", "")), str(doc.get("Secret", ""))
            if username == "<token>":
                return {"identitytoken": secret, "serveraddress": key}
            return {"username": username, "password": secret, "serveraddress": key}
        entry = (self.doc.get("auths") or {}).get(key) or {}
        creds: dict[str, str] = {"serveraddress": key}
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise CLIError(f"invalid auth configuration file for {key}", 1) from None
            creds.update(username=user, password=password)
        if entry.get("identitytoken"):
            creds["identitytoken"] = str(entry["identitytoken"])
        return creds if len(creds) > 1 else {}

    def store(self, key: str, username: str, password: str) -> None:
        helper = self._helper(key)
        if helper:
            payload = json.dumps({"ServerURL": key, "Username": username, "Secret": password})
            if _run_helper(helper, "store", payload) is None:
                raise CLIError(
                    f"error storing credentials - err: docker-credential-{helper} failed", 1
                )
            self.doc.setdefault("auths", {})[key] = {}
        else:
            pair = base64.b64encode(f"{username}:{password}".encode()).decode()
            self.doc.setdefault("auths", {})[key] = {"auth": pair}
        self._save()

    def erase(self, key: str) -> bool:
        auths = self.doc.get("auths") or {}
        helper = self._helper(key)
        found = key in auths
        if helper:
            found = _run_helper(helper, "erase", key) is not None or found
        if key in auths:
            del auths[key]
            self._save()
        return found

    def _save(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        tmp = self.path + f".{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.doc, f, indent="\t")
        os.rename(tmp, self.path)


def _run_helper(helper: str, action: str, stdin: str) -> str | None:
    """Run docker-credential-<helper> <action>; None when it has nothing (or is absent)."""
    import shutil
    import subprocess

    program = f"docker-credential-{helper}"
    if shutil.which(program) is None:
        raise CLIError(
            f'error getting credentials - err: exec: "{program}": executable file not found in $PATH, out: ``',
            1,
        )
    proc = subprocess.run(
        [program, action], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        return None
    return proc.stdout


def auth_header(creds: dict[str, str]) -> str:
    """X-Registry-Auth: base64url JSON, as the docker CLI sends it ("e30=" when anonymous)."""
    raw = json.dumps(creds, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def registry_auth(config_flag: str | None, image: str) -> str:
    """The X-Registry-Auth header value for pulling or pushing `image`."""
    key = server_key(registry_domain(image))
    return auth_header(DockerConfig(config_dir(config_flag)).get(key))
