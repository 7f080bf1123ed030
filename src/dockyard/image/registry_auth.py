"""Who may speak to a registry, and how: credentials and insecure registries.

AuthConfig is docker's (X-Registry-Auth from the clients, POST /auth);
InsecureRegistries decides which registries may be reached over plain http
or unverified TLS (127.0.0.0/8, ::1, localhost and --insecure-registry);
parse_challenge reads a Www-Authenticate header.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"


@dataclass
class AuthConfig:
    """Credentials for one registry, as the clients send them (X-Registry-Auth)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token (bearer realms)
    registry_token: str = ""  # a bearer token to use as is

    @property
    def empty(self) -> bool:
        return not (self.username or self.identity_token or self.registry_token)


def decode_auth_header(value: str | None) -> AuthConfig:
    """X-Registry-Auth: base64url (padded or not) JSON of docker's AuthConfig."""
    if not value:
        return AuthConfig()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        doc = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        # dockerd ignores an undecodable header (deep nesting too) and goes on anonymously.
        return AuthConfig()
    if not isinstance(doc, dict):
        return AuthConfig()
    return AuthConfig(
        username=str(doc.get("username") or ""),
        password=str(doc.get("password") or ""),
        identity_token=str(doc.get("identitytoken") or ""),
        registry_token=str(doc.get("registrytoken") or ""),
    )


def endpoint_host(domain: str) -> str:
    return DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB else domain


class InsecureRegistries:
    """Which registries may be spoken to over plain http (or unverified TLS)."""

    def __init__(self, entries: list[str] | None = None) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ]
        self.hosts: set[str] = {"localhost"}
        for entry in entries or []:
            entry = entry.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower())

    def registry_config(self) -> dict[str, Any]:
        """`RegistryConfig` of GET /info, as dockerd shows its registry settings."""
        configs = {
            DOCKER_HUB: {"Name": DOCKER_HUB, "Mirrors": [], "Secure": True, "Official": True}
        }
        for host in sorted(self.hosts - {"localhost"}):
            configs[host] = {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
        return {
            "InsecureRegistryCIDRs": [str(n) for n in self.networks if str(n) != "::1/128"],
            "IndexConfigs": configs,
            "Mirrors": [],
        }

    def allows(self, host_port: str) -> bool:
        if host_port.lower() in self.hosts:
            return True
        host = _strip_port(host_port)
        if host.lower() in self.hosts:
            return True
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in net for net in self.networks)


def _strip_port(host_port: str) -> str:
    if host_port.startswith("["):
        return host_port[: host_port.index("]") + 1]
    return host_port.rsplit(":", 1)[0] if host_port.count(":") == 1 else host_port


_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params
