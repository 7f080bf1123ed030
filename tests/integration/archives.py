"""Image archives built by the tests: layers, configs, and the layout dockerd 20.10's
`docker save` writes (dockerd itself is not available here): one directory per
layer holding VERSION, json and layer.tar, the image config as <id>.json,
manifest.json and repositories.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

MTIME = 1700000000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_bytes(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tuple):
                info, data = entry
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(entry)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, MTIME
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def base_layer() -> bytes:
    """busybox as /bin/busybox with its applets as symlinks, and a /data dir."""
    busybox = Path("/bin/busybox").read_bytes()
    entries: list = [
        entry("bin/", tarfile.DIRTYPE, 0o755),
        (entry("bin/busybox", mode=0o755), busybox),
        entry("data/", tarfile.DIRTYPE, 0o755),
        (entry("data/old"), b"old data\n"),
        entry("etc/", tarfile.DIRTYPE, 0o755),
    ]
    for applet in ("sh", "cat", "ls", "echo", "test"):
        entries.append(entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox"))
    return tar_bytes(entries)


def top_layer() -> bytes:
    """A file added, an applet whited out, /data made opaque (docker's .wh. forms)."""
    return tar_bytes(
        [
            entry("bin/", tarfile.DIRTYPE, 0o755),
            (entry("bin/.wh.cat"), b""),
            entry("data/", tarfile.DIRTYPE, 0o755),
            (entry("data/.wh..wh..opq"), b""),
            (entry("data/new"), b"new data\n"),
            entry("etc/", tarfile.DIRTYPE, 0o755),
            (entry("etc/motd", mode=0o600, uid=1000, gid=1000), b"from layer two\n"),
        ]
    )


def image_config(diff_ids: list[str], cmd: list[str]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
            "created": "2024-01-01T00:00:00Z",
            "history": [{"created": "2024-01-01T00:00:00Z"} for _ in diff_ids],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
        },
        separators=(",", ":"),
    ).encode()


def dockerd_2010_archive(layers: list[bytes], tags: list[str], cmd: list[str]) -> tuple[bytes, str]:
    """What dockerd 20.10 `docker save` writes; returns (archive, image id)."""
    config = image_config([sha(layer) for layer in layers], cmd)
    entries: list = []
    v1_parent = ""
    v1_ids = []
    for i, layer in enumerate(layers):
        # dockerd's v1 ids: a digest over the layer's legacy json (v1.CreateID).
        v1_json = {"id": "", "parent": v1_parent, "created": "1970-01-01T00:00:00Z"}
        v1_id = sha(json.dumps({**v1_json, "layer": sha(layer), "i": i}).encode())
        v1_json["id"] = v1_id
        if not v1_parent:
            del v1_json["parent"]
        if i == len(layers) - 1:
            v1_json.update(config=json.loads(config)["config"], os="linux")
        entries += [
            entry(f"{v1_id}/", tarfile.DIRTYPE, 0o755),
            (entry(f"{v1_id}/VERSION"), b"1.0"),
            (entry(f"{v1_id}/json"), json.dumps(v1_json).encode()),
            (entry(f"{v1_id}/layer.tar"), layer),
        ]
        v1_parent = v1_id
        v1_ids.append(v1_id)
    entries.append((entry(f"{sha(config)}.json"), config))
    manifest = [
        {
            "Config": f"{sha(config)}.json",
            "RepoTags": tags,
            "Layers": [f"{v}/layer.tar" for v in v1_ids],
        }
    ]
    entries.append((entry("manifest.json"), json.dumps(manifest).encode()))
    repos: dict[str, dict[str, str]] = {}
    for tag in tags:
        name, _, t = tag.rpartition(":")
        repos.setdefault(name, {})[t] = v1_ids[-1]
    entries.append((entry("repositories"), json.dumps(repos).encode()))
    return tar_bytes(entries), "sha256:" + sha(config)


def store_state(daemon) -> tuple[list[str], list[str], list[str]]:
    """What `images` shows and what is on disk under layers/ and blobs/."""
    listing = daemon.dockyard(
        "images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"
    )
    images = sorted(listing.stdout.splitlines())
    layers = sorted(os.listdir(daemon.data_root / "layers"))
    blobs = sorted(os.listdir(daemon.data_root / "blobs" / "sha256"))
    return images, layers, blobs


def two_layer_image(daemon, unique, tmp_path):
    """A fixture's body: load a two-layer image (dockerd 20.10 layout); rmi it after."""
    name = unique("twolayer")
    data, image_id = dockerd_2010_archive([base_layer(), top_layer()], [f"{name}:v1"], ["sh"])
    path = tmp_path / "dockerd-2010.tar"
    path.write_bytes(data)
    proc = daemon.dockyard("load", "-i", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"Loaded image: {name}:v1\n"
    yield name, image_id
    daemon.dockyard("rmi", "-f", image_id)
