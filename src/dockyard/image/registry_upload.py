"""Blob uploads to a Distribution v2 registry (what `docker push` sends).

Small blobs (an image config) go whole: POST, then PUT ?digest= with the
bytes. A layer, compressed as it is sent, goes in segments: POST, then
PATCHes that each append to the upload and come back with the registry's
`Range: 0-N` (what it holds), then PUT ?digest= once the digest is known.
After a broken PATCH, `status` asks the registry (GET on the upload) how
many bytes it holds, so that the upload can go on from there; a registry
that cannot tell answers 404 and the blob starts over in a new upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin

import aiohttp

from dockyard.errors import DockyardError
from dockyard.image.registry import (
    Registry,
    RegistryError,
    describe,
    read_bounded,
    registry_message,
)


class UploadInterrupted(RegistryError):
    """A PATCH of a blob upload broke off: the connection dropped or the registry
    answered 5xx. Ask the registry where the upload stands before sending more."""


class SegmentRefused(RegistryError):
    """The registry refused a PATCH after the first of an upload (ghcr.io is
    reported to take one PATCH per upload): send the blob again in one."""


@dataclass
class BlobUpload:
    """An upload session: where to send the next bytes, and how many the registry holds."""

    location: str
    offset: int = 0


class BlobUploads:
    """The blob uploads of one repository on one registry."""

    def __init__(self, registry: Registry, path: str) -> None:
        self.registry = registry
        self.path = path
        self._scope = f"repository:{path}:pull,push"

    async def upload(self, digest: str, data: bytes) -> None:
        """A small blob (a config) whole: POST to start, then PUT the bytes with ?digest=."""
        upload = await self.start(digest)
        headers = {"Content-Type": "application/octet-stream"}
        async with await self.registry.request(
            "PUT", _with_digest(upload, digest), self._scope, headers, data=data
        ) as resp:  # bytes: sent again with a new token if the last one expired
            body = await resp.read()
            if resp.status != 201:
                self.registry.raise_for(resp.status, body, self.path, digest, push=True)

    async def start(self, digest: str = "") -> BlobUpload:
        """POST: a new upload session (the registry's Location for it)."""
        url = f"/v2/{self.path}/blobs/uploads/"
        async with await self.registry.request("POST", url, self._scope) as resp:
            body = await resp.read()
            if resp.status != 202 or "Location" not in resp.headers:
                self.registry.raise_for(resp.status, body, self.path, digest, push=True)
            return BlobUpload(self._absolute(resp.headers["Location"]))

    async def send(self, upload: BlobUpload, chunks: AsyncIterator[bytes]) -> None:
        """One streamed PATCH of the bytes that follow `upload.offset`.

        The body's length is not known before it is sent (a layer compressed as
        it goes), so it carries no Content-Range: it appends where the upload
        stands, which is `upload.offset` (after a break, what `status` learnt).
        A dropped connection, a 5xx answer or a 401 (an expired token) is
        `UploadInterrupted`; a 4xx to a PATCH that follows others is
        `SegmentRefused` (some registries take one PATCH per upload only).
        """
        sent = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal sent
            async for chunk in chunks:
                sent += len(chunk)
                yield chunk

        headers = {"Content-Type": "application/octet-stream"}
        what = f"uploading a layer to {self.registry.domain}/{self.path}"
        try:
            resp = await self.registry.request(
                "PATCH", upload.location, self._scope, headers, data=counted(), retry_auth=False
            )
        except RegistryError as e:
            raise UploadInterrupted(f"{what}: {e.message}") from None
        async with resp:
            try:
                body = await read_bounded(resp, 1 << 16)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                raise UploadInterrupted(f"{what}: {describe(e)}") from None
            if resp.status >= 500:
                raise UploadInterrupted(f"{what}: {registry_message(resp.status, body)[1]}")
            if resp.status == 401:
                # A bearer token that expired between PATCHes (Docker Hub's last five
                # minutes): the GET that asks where the upload stands gets a new one.
                raise UploadInterrupted(f"{what}: {registry_message(resp.status, body)[1]}")
            if resp.status != 202 and upload.offset:
                text = registry_message(resp.status, body)[1]
                raise SegmentRefused(f"{what}: a PATCH after the first was refused: {text}")
            if resp.status != 202:
                self.registry.raise_for(resp.status, body, self.path, "", push=True)
            # The answer's Range is not checked against what was sent: ECR's lags
            # behind after the first PATCH (aws/containers-roadmap#2831). What guards
            # the bytes is the digest the registry checks at the closing PUT.
            upload.offset += sent
            upload.location = self._absolute(resp.headers.get("Location", upload.location))

    async def status(self, upload: BlobUpload) -> int | None:
        """GET on the upload: how many bytes the registry holds (its `Range: 0-N`
        answers N+1), or None when it cannot tell (the upload is unknown to it,
        404, or it sends no Range): then the blob must be sent again from byte 0."""
        async with await self.registry.request("GET", upload.location, self._scope) as resp:
            body = await read_bounded(resp, 1 << 16)
            if resp.status >= 500:
                text = registry_message(resp.status, body)[1]
                raise RegistryError(f"asking {self.registry.domain} where an upload stands: {text}")
            if resp.status not in (200, 204):
                return None
            held = range_end(resp.headers.get("Range"))
            if held is None:
                return None
            upload.location = self._absolute(resp.headers.get("Location", upload.location))
            return held

    async def finish(self, upload: BlobUpload, digest: str) -> None:
        """The closing PUT ?digest= of an upload whose bytes are all sent.

        A PUT whose answer is lost may have committed the blob (and a PUT sent
        again then finds no upload): the registry is asked (HEAD) before that
        is an error."""
        try:
            async with await self.registry.request(
                "PUT",
                _with_digest(upload, digest),
                self._scope,
                {"Content-Length": "0"},
                data=b"",
            ) as resp:  # an empty body: sent again with a new token if the last one expired
                body = await resp.read()
                if resp.status == 201:
                    return
        except RegistryError:
            if await self._holds(digest):
                return
            raise
        if not await self._holds(digest):
            self.registry.raise_for(resp.status, body, self.path, digest, push=True)

    async def _holds(self, digest: str) -> bool:
        try:
            return await self.registry.blob_exists(self.path, digest)
        except DockyardError:
            return False

    async def cancel(self, upload: BlobUpload) -> None:
        """DELETE an upload given up on (the registry would expire it anyway)."""
        try:
            async with await self.registry.request("DELETE", upload.location, self._scope) as resp:
                await resp.read()
        except DockyardError:
            pass

    def _absolute(self, location: str) -> str:
        assert self.registry.base is not None  # set by the first request
        return urljoin(self.registry.base + "/", location)


def _with_digest(upload: BlobUpload, digest: str) -> str:
    sep = "&" if "?" in upload.location else "?"
    return upload.location + sep + urlencode({"digest": digest})


def range_end(header: str | None) -> int | None:
    """The byte count a registry's `Range: 0-N` says it holds (N+1), or None.

    docker/distribution answers "0-0" for an empty upload (it cannot say
    "nothing" otherwise), so "0-0" counts as 0 bytes."""
    if not header:
        return None
    start, sep, end = header.strip().removeprefix("bytes=").partition("-")
    if not sep or start != "0" or not end.isdigit():
        return None
    return int(end) + 1 if int(end) else 0
