"""SQLite persistence of containers, images, tags, networks and endpoints.

One database in WAL mode under the data root; every change is one transaction, so
a daemon killed at any instant restarts from a consistent state. Records are
msgspec-encoded documents: the engine's models are the schema. The file gives
its free pages back after mass removals (auto_vacuum=INCREMENTAL), and opens on
a full disk (a daemon must start there to let the user free space).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from dockyard.engine.models import Container, ImageRecord, Volume
from dockyard.engine.network_models import Endpoint, Network

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id  TEXT PRIMARY KEY,
    doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    doc  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    ref      TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
"""

# Tables added after the first release: CREATE ... IF NOT EXISTS migrates an older database.
_NETWORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id   TEXT NOT NULL,
    container_id TEXT NOT NULL,
    doc          BLOB NOT NULL,
    PRIMARY KEY (network_id, container_id)
);
"""


# Free pages are given back to the file system once they are this many, and at
# least this share of the file (so that churn does not vacuum at every removal).
_VACUUM_MIN_FREE_PAGES = 256
_VACUUM_MIN_FREE_SHARE = 0.25

log = logging.getLogger("dockyard.store")


_AUTO_VACUUM_INCREMENTAL = 2


class Store:
    def __init__(self, path: str) -> None:
        # The daemon's event loop is the only writer; isolation_level=None lets us
        # group statements in explicit transactions.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # One daemon per data root (its flock), so the database is ours alone: in
        # EXCLUSIVE mode, set before the first access, WAL keeps its index in memory
        # instead of the -shm file, whose recovery after a crash on a full disk failed
        # with "disk I/O error" and kept the daemon from starting.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        # Set before any table exists (a new file), this makes the file shrinkable; an
        # older file is converted once by a VACUUM below. Only when needed: on a full
        # disk, even setting it again fails, and the daemon must still start.
        converting = self._auto_vacuum() != _AUTO_VACUUM_INCREMENTAL
        if converting:
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.executescript(_NETWORK_SCHEMA)
        if converting and self._auto_vacuum() != _AUTO_VACUUM_INCREMENTAL:
            try:
                self._db.execute("VACUUM")
            except sqlite3.OperationalError as e:  # e.g. a full disk: next start tries again
                log.warning("could not convert %s to incremental vacuum: %s", path, e)
        self._container_decoder = msgspec.json.Decoder(Container)
        self._image_decoder = msgspec.json.Decoder(ImageRecord)
        self._volume_decoder = msgspec.json.Decoder(Volume)
        self._network_decoder = msgspec.json.Decoder(Network)
        self._endpoint_decoder = msgspec.json.Decoder(Endpoint)

    def _auto_vacuum(self) -> int:
        return int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # containers

    def put_container(self, c: Container) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO containers (id, name, doc) VALUES (?, ?, ?)",
                (c.id, c.name, msgspec.json.encode(c)),
            )

    def delete_container(self, container_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))
        self._give_back_space()

    def _give_back_space(self) -> None:
        """After removals: once free pages dominate, truncate them off the file.

        In WAL mode the file shrinks at the checkpoint, which also empties the WAL.
        (The WAL is otherwise left alone: it is reused without growing, so some
        writes still land on a full disk, and truncating it at every checkpoint
        would slow every save.)"""
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        if free < _VACUUM_MIN_FREE_PAGES:
            return
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        if free < pages * _VACUUM_MIN_FREE_SHARE:
            return
        try:
            # executescript steps the pragma to its end; execute() frees one page.
            self._db.executescript("PRAGMA incremental_vacuum;")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as e:  # the removal itself is done
            log.warning("could not give back free database pages: %s", e)

    def containers(self) -> list[Container]:
        rows = self._db.execute("SELECT doc FROM containers").fetchall()
        return [self._container_decoder.decode(r[0]) for r in rows]

    # images

    def put_image(self, image: ImageRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO images (id, doc) VALUES (?, ?)",
                (image.id, msgspec.json.encode(image)),
            )

    def delete_image(self, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            db.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
        self._give_back_space()

    def images(self) -> list[ImageRecord]:
        rows = self._db.execute("SELECT doc FROM images").fetchall()
        return [self._image_decoder.decode(r[0]) for r in rows]

    def set_tag(self, ref: str, image_id: str) -> str | None:
        """Point `ref` at `image_id`; returns the image it pointed at before, if any."""
        with self.transaction() as db:
            row = db.execute("SELECT image_id FROM tags WHERE ref = ?", (ref,)).fetchone()
            db.execute("INSERT OR REPLACE INTO tags (ref, image_id) VALUES (?, ?)", (ref, image_id))
        return row[0] if row else None

    def delete_tag(self, ref: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tags WHERE ref = ?", (ref,))

    def tags(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT ref, image_id FROM tags").fetchall())

    # volumes

    def put_volume(self, v: Volume) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO volumes (name, doc) VALUES (?, ?)",
                (v.name, msgspec.json.encode(v)),
            )

    def delete_volume(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))

    def volumes(self) -> list[Volume]:
        rows = self._db.execute("SELECT doc FROM volumes").fetchall()
        return [self._volume_decoder.decode(r[0]) for r in rows]

    # networks and endpoints

    def put_network(self, n: Network) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO networks (id, name, doc) VALUES (?, ?, ?)",
                (n.id, n.name, msgspec.json.encode(n)),
            )

    def delete_network(self, network_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM networks WHERE id = ?", (network_id,))
            db.execute("DELETE FROM endpoints WHERE network_id = ?", (network_id,))

    def networks(self) -> list[Network]:
        rows = self._db.execute("SELECT doc FROM networks").fetchall()
        return [self._network_decoder.decode(r[0]) for r in rows]

    def put_endpoint(self, e: Endpoint) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO endpoints (network_id, container_id, doc) VALUES (?, ?, ?)",
                (e.network_id, e.container_id, msgspec.json.encode(e)),
            )

    def delete_endpoint(self, network_id: str, container_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "DELETE FROM endpoints WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            )

    def endpoints(self) -> list[Endpoint]:
        rows = self._db.execute("SELECT doc FROM endpoints").fetchall()
        return [self._endpoint_decoder.decode(r[0]) for r in rows]
