"""Daemon address selection and parsing, as the docker CLI does it."""

from __future__ import annotations

import os

DEFAULT_HOST = "unix:///run/dockyard.sock"
DEFAULT_TCP_HOST = "127.0.0.1"


class HostError(ValueError):
    """A -H/DOCKER_HOST value that cannot be parsed."""


class DaemonHost:
    """Where the daemon listens: a unix socket path or a TCP host and port."""

    __slots__ = ("scheme", "address", "port", "explicit")

    def __init__(self, scheme: str, address: str, port: int = 0, explicit: bool = False) -> None:
        self.scheme = scheme  # "unix" or "tcp"
        self.address = address  # socket path for unix, host name / IP for tcp
        self.port = port
        # True when the user named the host (flag or environment), so the CLI
        # must not auto-start a daemon for it.
        self.explicit = explicit

    def __repr__(self) -> str:
        return f"DaemonHost({self.url!r}, explicit={self.explicit})"

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"tcp://{host}:{self.port}"


def parse_host(value: str, explicit: bool = True, tls: bool = False) -> DaemonHost:
    """Parse `unix:///path`, `tcp://h:p`, `h:p`, `:p`, `fd://` into a DaemonHost.

    A TCP host without a port gets docker's default: 2376 with TLS, 2375 without."""
    value = value.strip()
    if not value:
        return parse_host(DEFAULT_HOST, explicit=False)
    if value.startswith("unix://"):
        path = value[len("unix://") :]
        if not path:
            raise HostError(f"invalid unix socket address: {value!r}")
        return DaemonHost("unix", path, explicit=explicit)
    if value.startswith("/"):
        return DaemonHost("unix", value, explicit=explicit)
    rest = value
    for prefix in ("tcp://", "http://"):
        if rest.startswith(prefix):
            rest = rest[len(prefix) :]
            break
    else:
        if "://" in rest:
            raise HostError(f"Invalid bind address format: {value}")
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [::1]:4243
        end = rest.find("]")
        if end < 0:
            raise HostError(f"Invalid bind address format: {value}")
        host, port_s = rest[1:end], rest[end + 1 :].lstrip(":")
    elif rest.count(":") == 1 or ":" not in rest:
        host, _, port_s = rest.partition(":")
    else:
        raise HostError(f"Invalid bind address format: {value}")
    host = host or DEFAULT_TCP_HOST
    if not port_s:
        # docker's default TCP port when only a host is given
        port_s = "2376" if tls else "2375"
    try:
        port = int(port_s)
    except ValueError:
        raise HostError(f"Invalid bind address format: {value}") from None
    if not 0 < port < 65536:
        raise HostError(f"Invalid bind address format: {value}")
    return DaemonHost("tcp", host, port, explicit=explicit)


def select_host(
    flag_value: str | None = None, env: dict[str, str] | None = None, tls: bool = False
) -> DaemonHost:
    """-H flag, else DOCKYARD_HOST, else DOCKER_HOST, else the default socket."""
    env = os.environ if env is None else env
    if flag_value:
        return parse_host(flag_value, explicit=True, tls=tls)
    for name in ("DOCKYARD_HOST", "DOCKER_HOST"):
        value = env.get(name)
        if value:
            return parse_host(value, explicit=True, tls=tls)
    return parse_host(DEFAULT_HOST, explicit=False)


class TLSSettings:
    """What the client does about TLS: verify the daemon against `cafile` or not,
    and which client certificate (if any) it presents."""

    __slots__ = ("verify", "cafile", "certfile", "keyfile")

    def __init__(self, verify: bool, cafile: str, certfile: str, keyfile: str) -> None:
        self.verify = verify
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile

    def __repr__(self) -> str:
        return (
            f"TLSSettings(verify={self.verify}, cafile={self.cafile!r}, "
            f"certfile={self.certfile!r}, keyfile={self.keyfile!r})"
        )


def tls_settings(
    tls: bool,
    tlsverify: bool | None,
    cacert: str = "",
    cert: str = "",
    key: str = "",
    env: dict[str, str] | None = None,
) -> TLSSettings | None:
    """The docker CLI's rules. `tlsverify` None: not on the command line, so
    DOCKER_TLS_VERIFY (any non-empty value) decides; --tlsverify implies --tls.
    Files default to ca.pem, cert.pem, key.pem in DOCKER_CERT_PATH (else
    ~/.docker); a default client certificate that does not exist is not sent."""
    env = os.environ if env is None else env
    verify = bool(env.get("DOCKER_TLS_VERIFY")) if tlsverify is None else tlsverify
    if not (tls or verify or env.get("DOCKER_TLS")):
        return None
    certs = (
        env.get("DOCKER_CERT_PATH")
        or env.get("DOCKER_CONFIG")
        or os.path.join(os.path.expanduser("~"), ".docker")
    )
    cafile = cacert or os.path.join(certs, "ca.pem")
    certfile = cert or os.path.join(certs, "cert.pem")
    keyfile = key or os.path.join(certs, "key.pem")
    if not cert and not os.path.exists(certfile):
        certfile = ""
    if not key and not os.path.exists(keyfile):
        keyfile = ""
    if verify and not os.path.exists(cafile):
        raise HostError(f"could not read CA certificate {cafile!r}: no such file or directory")
    if bool(certfile) != bool(keyfile):
        raise HostError(
            "could not load X509 key pair: both a certificate (--tlscert) and a key "
            "(--tlskey) are needed"
        )
    return TLSSettings(verify, cafile, certfile, keyfile)
