"""sha256 digests as Docker writes them ("sha256:<64 hex>") and OCI chain ids."""

from __future__ import annotations

import hashlib
import re

from dockyard.errors import InvalidParameter

_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """The 64-hex part of "sha256:<hex>" (a bare hex is accepted too).

    Validated strictly because the hex becomes a file name under the data
    root: anything else could name a path outside the content store.
    """
    hex_ = digest[len("sha256:") :] if digest.startswith("sha256:") else digest
    if not _HEX64.fullmatch(hex_):
        raise InvalidParameter(f"invalid digest {digest!r}: expected sha256:<64 lowercase hex>")
    return hex_


def normalize_digest(digest: str) -> str:
    return "sha256:" + digest_hex(digest)


def chain_id(parent_chain_id: str | None, diff_id: str) -> str:
    """OCI image spec: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    diff_id = normalize_digest(diff_id)
    if parent_chain_id is None:
        return diff_id
    parent = normalize_digest(parent_chain_id)
    return sha256_digest(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain id of every layer of a stack, bottom-most first."""
    out: list[str] = []
    parent: str | None = None
    for diff_id in diff_ids:
        parent = chain_id(parent, diff_id)
        out.append(parent)
    return out
