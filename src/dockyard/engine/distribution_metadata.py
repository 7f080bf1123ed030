"""What the daemon knows of its layers in registries (dockerd's v2 metadata).

Two maps, kept across restarts as small JSON files under the data root:

- blob sources: (registry, blob digest) -> repositories known to hold it,
  so a push can mount a blob across repositories instead of uploading it;
- compressed forms: layer diff_id -> the compressed blobs (digest, media
  type, size) it was pulled as or pushed as, so a push first asks the
  registry (HEAD) for those and compresses a layer only when none is there.

Both are optimisations: a lost or unreadable file costs uploads, never
correctness (the registry verifies every digest). What they say of a layer
goes with the layer (`forget_layers`), so that nothing stays on disk for
layers no longer there.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.image.atomic import write_file_atomic

log = logging.getLogger(__name__)

_MAX_SOURCES = 5
_MAX_FORMS = 4


@dataclass(frozen=True)
class CompressedBlob:
    digest: str
    media_type: str
    size: int


def _read_json(path: str) -> object:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("ignoring %s: %s", path, e)  # only an optimisation is lost
        return None


class DistributionMetadata:
    def __init__(self, root: str) -> None:
        self._sources_path = os.path.join(root, "blob-sources.json")
        self._forms_path = os.path.join(root, "compressed-layers.json")
        self._lock = threading.Lock()
        self._sources: dict[tuple[str, str], list[str]] = {}
        self._forms: dict[str, list[CompressedBlob]] = {}
        try:
            for domain, digest, paths in _read_json(self._sources_path) or []:  # type: ignore[union-attr]
                self._sources[(str(domain), str(digest))] = [str(p) for p in paths]
        except (TypeError, ValueError) as e:
            log.warning("ignoring %s: %s", self._sources_path, e)
            self._sources = {}
        try:
            for diff_id, forms in (_read_json(self._forms_path) or {}).items():  # type: ignore[union-attr]
                self._forms[str(diff_id)] = [
                    CompressedBlob(str(d), str(m), int(s)) for d, m, s in forms
                ]
        except (AttributeError, TypeError, ValueError) as e:
            log.warning("ignoring %s: %s", self._forms_path, e)
            self._forms = {}

    # -- blob sources ------------------------------------------------------------------

    def blob_sources(self, domain: str, digest: str) -> list[str]:
        with self._lock:
            return list(self._sources.get((domain, digest), ()))

    def remember_sources(self, domain: str, digests: list[str], path: str) -> None:
        with self._lock:
            for digest in digests:
                known = self._sources.setdefault((domain, digest), [])
                if path in known:
                    known.remove(path)
                known.insert(0, path)  # the latest first; a few are enough to find one
                del known[_MAX_SOURCES:]
            self._save_sources()

    def _save_sources(self) -> None:
        doc = [[d, g, paths] for (d, g), paths in self._sources.items()]
        write_file_atomic(self._sources_path, json.dumps(doc).encode(), mode=0o600)

    def _save_forms(self) -> None:
        doc = {
            diff_id: [[b.digest, b.media_type, b.size] for b in forms]
            for diff_id, forms in self._forms.items()
        }
        write_file_atomic(self._forms_path, json.dumps(doc).encode(), mode=0o600)

    # -- compressed forms of layers ------------------------------------------------------

    def compressed_forms(self, diff_id: str) -> list[CompressedBlob]:
        with self._lock:
            return list(self._forms.get(diff_id, ()))

    def remember_forms(self, pairs: list[tuple[str, CompressedBlob]]) -> None:
        """Record (diff_id, compressed blob) pairs; a blob that is the layer itself is skipped."""
        with self._lock:
            changed = False
            for diff_id, blob in pairs:
                if blob.digest == diff_id:
                    continue
                known = self._forms.setdefault(diff_id, [])
                if known and known[0] == blob:
                    continue
                if blob in known:
                    known.remove(blob)
                known.insert(0, blob)
                del known[_MAX_FORMS:]
                changed = True
            if changed:
                self._save_forms()

    def forget_layers(self, present: Callable[[str], bool]) -> None:
        """Drop what is known of layers (by diff_id) no longer `present`, and the
        sources of blobs that no remaining layer has as a form."""
        with self._lock:
            gone = [diff_id for diff_id in self._forms if not present(diff_id)]
            for diff_id in gone:
                del self._forms[diff_id]
            if gone:
                self._save_forms()
            digests = {b.digest for forms in self._forms.values() for b in forms}
            stale = [key for key in self._sources if key[1] not in digests]
            for key in stale:
                del self._sources[key]
            if stale:
                self._save_sources()
