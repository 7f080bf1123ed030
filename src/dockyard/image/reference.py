"""Image references ("busybox", "127.0.0.1:5000/app:v1", "x@sha256:...").

Grammar and normalisation follow github.com/distribution/reference
(ParseNormalizedNamed + TagNameOnly), which dockerd uses, so that names,
familiar forms and error messages match what Docker users see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
_ANCHORED_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)")
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_TAG_RE = re.compile(_TAG)

# Digest algorithms dockerd accepts, with the hex length each requires.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    domain: str  # "docker.io" by default
    path: str  # "library/busybox"
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name: "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short form users type: "busybox", "myrepo/app", "127.0.0.1:5000/app"."""
        if self.domain == DEFAULT_DOMAIN:
            rest = self.path
            if (
                rest.startswith(OFFICIAL_REPO_PREFIX)
                and "/" not in rest[len(OFFICIAL_REPO_PREFIX) :]
            ):
                return rest[len(OFFICIAL_REPO_PREFIX) :]
            return rest
        return self.name

    def __str__(self) -> str:
        text = self.familiar_name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.fullmatch(tag):
            raise InvalidParameter("invalid tag format")
        return Reference(self.domain, self.path, tag, None)


def _split_docker_domain(name: str) -> tuple[str, str]:
    # The first component is a registry only if it looks like a host: has a
    # dot or a port, is "localhost", or has uppercase (hosts may, paths may not).
    i = name.find("/")
    first = name[:i] if i != -1 else ""
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _validate_digest(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise InvalidParameter("unsupported digest algorithm")
    if len(hex_) != expected:
        raise InvalidParameter("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", hex_):
        raise InvalidParameter("invalid checksum digest format")
    return digest


def parse_reference(text: str, default_tag: str | None = "latest") -> Reference:
    """Parse and normalise like dockerd (ParseNormalizedNamed, then TagNameOnly).

    Without tag or digest the reference gets `default_tag` (pass None to keep
    it bare, e.g. for `docker pull --all-tags` or `docker images busybox`).
    """
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidParameter(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    tag_sep = remainder.find(":")
    remote_name = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote_name.lower() != remote_name:
        raise InvalidParameter(
            f"invalid reference format: repository name ({remote_name}) must be lowercase"
        )

    full = f"{domain}/{remainder}"
    match = _REFERENCE_RE.fullmatch(full)
    if match is None:
        if not text:
            raise InvalidParameter("invalid reference format")
        if _REFERENCE_RE.fullmatch(full.lower()):
            raise InvalidParameter("invalid reference format: repository name must be lowercase")
        raise InvalidParameter("invalid reference format")
    name, tag, digest = match.group(1), match.group(2), match.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    name_match = _ANCHORED_NAME_RE.fullmatch(name)
    if name_match is None:  # cannot happen: _REFERENCE_RE already matched the name
        raise InvalidParameter("invalid reference format")
    if digest is not None:
        _validate_digest(digest)
    if tag is None and digest is None and default_tag:
        tag = default_tag
    return Reference(
        domain=name_match.group(1) or DEFAULT_DOMAIN,
        path=name_match.group(2),
        tag=tag,
        digest=digest,
    )


def is_image_id(text: str) -> bool:
    """True for "sha256:<64 hex>" or a bare 64-hex id (never a name, see above)."""
    hex_ = text[len("sha256:") :] if text.startswith("sha256:") else text
    return bool(_IDENTIFIER_RE.fullmatch(hex_))
