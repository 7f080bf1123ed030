"""A scripted in-process Distribution v2 registry that misbehaves on purpose.

Bearer and Basic challenges, a blob connection dropped half-way (once, every
time, or with no Range support), 500 answers, and for pushes: uploads (POST,
PATCH, PUT ?digest=), HEAD by repository, cross-repository mounts, and
uploads that fail with 500 or a dropped connection.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class FakeRegistry:
    auth: str = ""  # "", "basic" or "bearer"
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    blob_failure: dict[str, str] = field(default_factory=dict)  # digest -> mode
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    port: int = 0
    links: set[tuple[str, str]] = field(default_factory=set)  # (repository, blob) pushed
    uploads: dict[str, bytearray] = field(default_factory=dict)
    # What the next PATCHes meet: "500" (read whole, refused, nothing kept), "close"
    # (dropped after 1000 bytes, nothing kept: a proxy that buffers requests, or
    # docker/distribution) or "close-keep" (dropped, the 1000 bytes kept: a
    # registry whose GET tells the true offset; "close-keep-garbled": kept wrong).
    upload_failure: str = ""
    upload_failures_left: int = 0
    # Or, one by one: the first PATCH of an upload holding at least so many bytes fails.
    upload_failure_at: list[int] = field(default_factory=list)
    drop_after_commit: bool = False  # the closing PUT of a layer: commit, then drop, once
    one_patch_per_upload: bool = False  # refuse (416) a PATCH to an upload that holds bytes
    upload_status_unknown: bool = False  # GET on an upload: 404 (the registry cannot tell)
    patches: list[tuple[int, int]] = field(default_factory=list)  # (offset, bytes) kept
    token_lifetime: int = 0  # bearer: requests a token is good for (0: no end)
    token_generation: int = 0
    token_uses: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def allowed(self, request: web.Request, path: str) -> bool:
        given = request.headers.get("Authorization", "")
        if self.auth == "basic":
            return given == "Basic " + base64.b64encode(b"alice:pw").decode()
        if self.auth == "bearer":
            prefix = f"Bearer tok{self.token_generation or ''}:repository:{path}:"
            if given not in (prefix + "pull", prefix + "pull,push"):
                return False
            self.token_uses += 1
            if self.token_lifetime and self.token_uses >= self.token_lifetime:
                self.token_generation += 1  # this token expires after this request
                self.token_uses = 0
            return True
        return True

    def challenge(self) -> web.Response:
        if self.auth == "basic":
            header = 'Basic realm="fake"'
        else:
            header = f'Bearer realm="http://{self.host}/token",service="fake"'
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={"WWW-Authenticate": header},
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        parts = request.path.split("/")
        if request.path == "/v2/":
            if self.auth and not self.allowed(request, ""):
                return self.challenge()
            return web.json_response({})
        if request.path == "/token":
            expected = "Basic " + base64.b64encode(b"alice:pw").decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"details": "bad credentials"}, status=401)
            token = f"tok{self.token_generation or ''}:" + request.query.get("scope", "")
            return web.json_response({"token": token})
        if "uploads" in parts:
            return await self.upload(request, parts)
        kind, ref = parts[-2], parts[-1]
        path = "/".join(parts[2:-2])
        if self.auth and not self.allowed(request, path):
            return self.challenge()
        if kind == "manifests" and request.method == "PUT":
            body = await request.read()
            media_type = request.headers.get("Content-Type", "")
            self.manifests[(path, ref)] = (body, media_type)
            self.manifests[(path, sha(body))] = (body, media_type)
            return web.Response(status=201, headers={"Docker-Content-Digest": sha(body)})
        if request.method == "HEAD":  # by repository, as a real registry
            found = (path, ref) in self.links and ref in self.blobs
            return web.Response(status=200 if found else 404)
        if kind == "manifests":
            if (path, ref) not in self.manifests:
                return web.json_response(
                    {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                    status=404,
                )
            body, media_type = self.manifests[(path, ref)]
            return web.Response(body=body, headers={"Content-Type": media_type})
        data = self.blobs.get(ref)
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        mode = self.blob_failure.get(ref, "")
        if mode == "500-once":
            self.blob_failure[ref] = ""
            mode = "500"
        if mode == "500":
            return web.json_response(
                {"errors": [{"code": "UNKNOWN", "message": "boom"}]}, status=500
            )
        start = 0
        if request.headers.get("Range", "").startswith("bytes="):
            start = int(request.headers["Range"][6:].rstrip("-"))
        if mode == "no-range":  # drops once, then answers Range with the whole blob
            self.blob_failure[ref] = "whole"
            mode = "close-once"
        if mode == "whole":
            return web.Response(body=data)
        if mode == "close-always" or (mode == "close-once" and start == 0):
            if mode == "close-once":
                self.blob_failure[ref] = ""
            rest = data[start:]
            resp = web.StreamResponse(
                status=206 if start else 200, headers={"Content-Length": str(len(rest))}
            )
            await resp.prepare(request)
            await resp.write(rest[: len(rest) // 2])
            assert request.transport is not None
            request.transport.abort()  # the connection drops mid-blob
            return resp
        if start:
            return web.Response(
                body=data[start:],
                status=206,
                headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
            )
        return web.Response(body=data)

    async def upload(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        at = parts.index("uploads")
        path = "/".join(parts[2 : at - 1])
        if self.auth and not self.allowed(request, path):
            return self.challenge()
        if request.method == "POST":
            mount, source = request.query.get("mount"), request.query.get("from")
            if mount and (source, mount) in self.links:
                self.links.add((path, mount))
                return web.Response(status=201, headers={"Location": f"/v2/{path}/blobs/{mount}"})
            uid = uuid.uuid4().hex
            self.uploads[uid] = bytearray()
            return web.Response(
                status=202, headers={"Location": f"/v2/{path}/blobs/uploads/{uid}?_state=x"}
            )
        uid = parts[at + 1]
        if uid not in self.uploads:
            return web.json_response({"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]}, status=404)
        held = len(self.uploads[uid])
        location = f"/v2/{path}/blobs/uploads/{uid}?_state={held}"
        if request.method == "DELETE":
            self.uploads.pop(uid, None)
            return web.Response(status=204)
        if request.method == "GET":
            if self.upload_status_unknown:
                return web.json_response({"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]}, status=404)
            end = held - 1 if held else 0  # docker/distribution's "0-0" for nothing yet
            return web.Response(status=204, headers={"Location": location, "Range": f"0-{end}"})
        if request.method == "PATCH" and held and self.one_patch_per_upload:
            await request.read()
            return web.json_response(
                {"errors": [{"code": "BLOB_UPLOAD_INVALID", "message": "one PATCH only"}]},
                status=416,
            )
        failing = False
        if request.method == "PATCH" and self.upload_failure_at:
            if held >= self.upload_failure_at[0]:
                failing = bool(self.upload_failure_at.pop(0) + 1)
        elif request.method == "PATCH" and self.upload_failures_left > 0:
            self.upload_failures_left -= 1
            failing = True
        if failing:
            if self.upload_failure == "500":
                await request.read()
                return web.json_response(
                    {"errors": [{"code": "UNKNOWN", "message": "disk on fire"}]}, status=500
                )
            partial = await request.content.readexactly(1000)
            if self.upload_failure.startswith("close-keep"):
                if self.upload_failure == "close-keep-garbled":  # a registry gone wrong
                    partial = bytes(b ^ 0xFF for b in partial)
                self.uploads[uid] += partial
                self.patches.append((held, len(partial)))
            assert request.transport is not None
            request.transport.abort()  # the connection drops mid-upload
            return web.Response(status=500)
        body = await request.read()
        self.uploads[uid] += body
        if request.method == "PATCH":
            self.patches.append((held, len(body)))
            held = len(self.uploads[uid])
            return web.Response(
                status=202,
                headers={
                    "Location": f"/v2/{path}/blobs/uploads/{uid}?_state={held}",
                    "Range": f"0-{held - 1 if held else 0}",
                },
            )
        data = bytes(self.uploads.pop(uid))
        digest = request.query.get("digest", "")
        if sha(data) != digest:
            return web.json_response(
                {"errors": [{"code": "DIGEST_INVALID", "message": "digest invalid"}]}, status=400
            )
        self.blobs[digest] = data
        self.links.add((path, digest))
        if self.drop_after_commit and len(data) > 10_000:  # a layer, not the config
            self.drop_after_commit = False
            assert request.transport is not None
            request.transport.abort()  # committed, but the answer is lost
        return web.Response(status=201, headers={"Docker-Content-Digest": digest})

    def add_image(self, path: str, tag: str, layers: list[bytes], gz: bool = True) -> str:
        """Store a schema 2 image (gzip layers by default); return its image id."""
        diff_ids = [sha(tar) for tar in layers]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        self.blobs[sha(config)] = config
        self.links.add((path, sha(config)))
        descs = []
        for tar in layers:
            blob = gzip.compress(tar, mtime=0) if gz else tar
            self.blobs[sha(blob)] = blob
            self.links.add((path, sha(blob)))
            media = "application/vnd.docker.image.rootfs.diff.tar" + (".gzip" if gz else "")
            descs.append({"mediaType": media, "digest": sha(blob), "size": len(blob)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": sha(config),
                    "size": len(config),
                },
                "layers": descs,
            }
        ).encode()
        media_type = "application/vnd.docker.distribution.manifest.v2+json"
        self.manifests[(path, tag)] = (manifest, media_type)
        self.manifests[(path, sha(manifest))] = (manifest, media_type)
        return sha(config)

    async def __aenter__(self) -> FakeRegistry:
        # A registry takes blobs of any size in one PATCH or PUT (aiohttp's default
        # refuses bodies over 1 MiB with a 413).
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._runner.cleanup()
