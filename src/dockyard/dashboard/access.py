"""Who may use the dashboard listener: the token, the Host and the Origin.

The Engine API behind it is root-equivalent, so every request (the page included)
must carry the listener's random token, in `?token=` (the URL the daemon logs, as
Jupyter does) or in the cookie set on that first visit. `Host` must name this
listener, so a DNS-rebinding page (evil.example resolving to 127.0.0.1) is refused
even though the browser would send it our cookie-less request; `Origin`, when a
browser sends one, must be this listener's own, so no other site (and no other
port on 127.0.0.1) can drive the API through the user's cookie. No CORS header is
ever sent, so a cross-origin page cannot read an answer either.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie

from dockyard.errors import InvalidParameter

TOKEN_PARAM = "token"


def new_token() -> str:
    return secrets.token_hex(24)


def _host_text(address: str, port: int) -> str:
    """`host:port` as a browser writes it in Host and Origin ([::1]:8080 for IPv6)."""
    try:
        if ipaddress.ip_address(address).version == 6:
            return f"[{address}]:{port}"
    except ValueError:
        pass
    return f"{address}:{port}"


@dataclass(frozen=True)
class AccessPolicy:
    address: str
    port: int
    token: str

    @property
    def hosts(self) -> frozenset[str]:
        """The Host values that name this listener. `localhost` too for a loopback
        one: browsers resolve it to loopback themselves, it cannot be rebound."""
        names = {_host_text(self.address, self.port)}
        if self.address == "localhost":  # bound on both loopback addresses
            names |= {f"127.0.0.1:{self.port}", f"[::1]:{self.port}"}
        try:
            if ipaddress.ip_address(self.address).is_loopback:
                names.add(f"localhost:{self.port}")
        except ValueError:
            pass
        return frozenset(names)

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(f"http://{h}" for h in self.hosts)

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: one name per port keeps two dashboards apart.
        return f"dockyard-ui-{self.port}"

    @property
    def url(self) -> str:
        return f"http://{_host_text(self.address, self.port)}/?{TOKEN_PARAM}={self.token}"

    def check_host(self, host: str | None) -> str | None:
        """None if `host` names this listener, else why not."""
        if host is None or host.lower() not in self.hosts:
            return f"Host {host!r} is not this dashboard's ({', '.join(sorted(self.hosts))})"
        return None

    def check_origin(self, origin: str | None) -> str | None:
        """None if there is no Origin (not a browser's cross-origin or unsafe request)
        or it is this listener's own, else why not ("null" included: sandboxed
        frames and file:// pages send it)."""
        if origin is None or origin.lower() in self.origins:
            return None
        return f"requests from other web pages are not accepted (Origin: {origin})"

    def token_matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode(), self.token.encode()
        )

    def cookie_token(self, cookie_header: str | None) -> str | None:
        if not cookie_header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:  # noqa: BLE001 - a malformed Cookie header is no token
            return None
        morsel = jar.get(self.cookie_name)
        return morsel.value if morsel is not None else None

    def set_cookie_header(self) -> str:
        """Session cookie: HttpOnly (no script reads it), SameSite=Strict (no other
        site's navigation or request carries it)."""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"


def parse_address(text: str) -> tuple[str, int]:
    """`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`."""
    addr, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not addr:
        raise InvalidParameter(f"invalid --ui address {text!r}: want ADDRESS:PORT (127.0.0.1:8080)")
    return addr.strip("[]"), int(port)
