"""Moved to dockyard.kernel.securejoin: the layer unpacker (image/) resolves paths
inside a root with it too, and image/ may not import runtime/ (DESIGN.md)."""

from dockyard.kernel.securejoin import (  # noqa: F401
    MAX_ATTEMPTS,
    MAX_SYMLINKS,
    clean,
    open_in_root,
    walk_in_root,
)
