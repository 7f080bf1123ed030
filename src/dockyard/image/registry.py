"""A client of the Distribution v2 registry API (what `docker pull/push/login` speak).

One `Registry` per registry host and operation: it picks https or, for
registries allowed to be insecure (127.0.0.0/8, ::1, localhost and
`--insecure-registry`), falls back to plain http as dockerd does; it answers
`Www-Authenticate` challenges (Basic, or Bearer with a token from the
realm, fetched with the user's credentials if any) and retries once.

Manifests are returned with their digest checked when the caller asked by
digest; blobs are streamed to a sink while their sha256 is computed, and a
blob whose bytes do not match its digest is an error. Downloads resume
with a Range request when a connection drops mid-blob. Uploads are in
registry_upload.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp

from dockyard.errors import DockyardError, InvalidParameter, NotFound, Unauthorized
from dockyard.image.digest import normalize_digest
from dockyard.image.registry_auth import (
    AuthConfig,
    InsecureRegistries,
    endpoint_host,
    parse_challenge,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

MAX_MANIFEST = 4 << 20  # dockerd's limit on a manifest body
_RESUME_ATTEMPTS = 3
_CHUNK = 1 << 20
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)


class RegistryError(DockyardError):
    """The registry answered with an error or could not be reached (HTTP 500 from the API)."""


class _ServerError(Exception):
    """A 5xx answer to a blob request, worth another try."""


def registry_message(status: int, body: bytes) -> tuple[str, str]:
    """(first error code, "code: message" text) from a registry's error body."""
    try:
        doc = json.loads(body)
        first = doc["errors"][0]
        code = str(first.get("code", ""))
        message = str(first.get("message", "")).strip()
        return code, f"{code.lower().replace('_', ' ')}: {message}" if message else code
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", f"unexpected status {status} from the registry"


class Registry:
    """The v2 API of one registry host, for one repository-scoped operation."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        domain: str,
        auth: AuthConfig | None = None,
        insecure: InsecureRegistries | None = None,
    ) -> None:
        self.session = session
        self.domain = domain
        self.host = endpoint_host(domain)
        self.auth = auth or AuthConfig()
        self.insecure = (insecure or InsecureRegistries()).allows(self.host)
        self.base: str | None = None
        self._authorization: str | None = None
        if self.auth.registry_token:
            self._authorization = "Bearer " + self.auth.registry_token
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, str] = {}

    # -- connection, scheme and auth ---------------------------------------------

    def _ssl(self) -> bool:
        return not self.insecure  # insecure registries: TLS without verification

    async def _ping(self) -> None:
        """GET /v2/ to pick the scheme and learn the auth challenge."""
        if self.base is not None:
            return
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            url = f"{scheme}://{self.host}/v2/"
            try:
                async with self.session.get(url, ssl=self._ssl(), timeout=_TIMEOUT) as resp:
                    await resp.read()
                    if resp.status == 401:
                        self._challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                    elif resp.status >= 500 or resp.status == 404:
                        raise RegistryError(
                            f'Get "{url}": unexpected status {resp.status} from the registry'
                        )
                self.base = f"{scheme}://{self.host}"
                return
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                last = e
        raise RegistryError(f'Get "{schemes[-1]}://{self.host}/v2/": {describe(last)}')

    async def _authenticate(self, challenge: tuple[str, dict[str, str]], scope: str) -> None:
        scheme, params = challenge
        if scheme == "basic":
            if not self.auth.username:
                raise Unauthorized("no basic auth credentials")
            pair = f"{self.auth.username}:{self.auth.password}".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode()
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"unsupported authentication challenge from {self.host}: {scheme}")
        if scope in self._tokens:
            self._authorization = "Bearer " + self._tokens[scope]
            return
        token = await self._fetch_token(params, scope)
        self._tokens[scope] = token
        self._authorization = "Bearer " + token

    async def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = params["realm"]
        query: dict[str, str] = {}
        if params.get("service"):
            query["service"] = params["service"]
        if scope:
            query["scope"] = scope
        headers = {}
        if self.auth.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.auth.identity_token,
                "client_id": "dockyard",
                **query,
            }
            request = self.session.post(realm, data=form, ssl=self._ssl(), timeout=_TIMEOUT)
        else:
            if self.auth.username:
                pair = f"{self.auth.username}:{self.auth.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
            request = self.session.get(url, headers=headers, ssl=self._ssl(), timeout=_TIMEOUT)
        try:
            async with request as resp:
                body = await resp.read()
                if resp.status in (401, 403):
                    raise Unauthorized(f"unauthorized: {registry_message(resp.status, body)[1]}")
                if resp.status != 200:
                    raise RegistryError(
                        f"fetching a token from {realm}: unexpected status {resp.status}"
                    )
        except aiohttp.ClientError as e:
            raise RegistryError(f"fetching a token from {realm}: {describe(e)}") from None
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token server {realm} sent no token")
        return token

    async def request(
        self,
        method: str,
        url: str,
        scope: str,
        headers: dict[str, str] | None = None,
        data: Any = None,
        retry_auth: bool = True,
    ) -> aiohttp.ClientResponse:
        """One request with auth; on 401 answer the challenge and retry once.

        `data` must be replayable (bytes or None) when `retry_auth` is set.
        """
        await self._ping()
        assert self.base is not None
        if not url.startswith(("http://", "https://")):
            url = urljoin(self.base + "/", url.lstrip("/"))
        if self._challenge is not None and not self.auth.registry_token:
            await self._authenticate(self._challenge, scope)  # bearer tokens are per scope
        for attempt in range(2):
            hdrs = dict(headers or {})
            if self._authorization:
                hdrs["Authorization"] = self._authorization
            try:
                resp = await self.session.request(
                    method, url, headers=hdrs, data=data, ssl=self._ssl(), timeout=_TIMEOUT
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise RegistryError(f'{method.title()} "{url}": {describe(e)}') from None
            if resp.status == 401 and attempt == 0 and retry_auth:
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                resp.release()
                if self._authorization and challenge[0] == "basic":
                    break  # our credentials were refused: do not loop
                self._challenge = challenge
                self._tokens.pop(scope, None)
                await self._authenticate(challenge, scope)
                continue
            return resp
        raise Unauthorized("unauthorized: authentication required")

    # -- login ---------------------------------------------------------------------

    async def login(self) -> None:
        """Check the credentials as `docker login` does (Unauthorized if refused)."""
        await self._ping()
        url = f"{self.base}/v2/"
        if self._challenge is None:
            return  # an open registry accepts anyone
        scheme, params = self._challenge
        if scheme == "bearer":
            await self._fetch_token(params, "")
            return
        try:
            await self._authenticate(self._challenge, "")
        except Unauthorized:
            raise Unauthorized(
                f"login attempt to {url} failed with status: 401 Unauthorized"
            ) from None
        async with await self.request("GET", url, "", retry_auth=False) as resp:
            if resp.status == 401:
                raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
            if resp.status != 200:
                raise RegistryError(f"login attempt to {url} failed with status: {resp.status}")

    # -- manifests -----------------------------------------------------------------

    async def get_manifest(self, path: str, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest by tag or digest."""
        scope = f"repository:{path}:pull"
        url = f"/v2/{path}/manifests/{reference}"
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        async with await self.request("GET", url, scope, headers) as resp:
            body = await read_bounded(resp, MAX_MANIFEST)
            if resp.status != 200:
                self.raise_for(resp.status, body, path, reference)
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"manifest verification failed for digest {reference}: the registry sent {digest}"
            )
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError(f"invalid manifest for {path}:{reference}: not JSON") from None
        if isinstance(doc, dict) and doc.get("mediaType"):
            media_type = str(doc["mediaType"])
        return body, media_type, digest

    async def put_manifest(self, path: str, reference: str, body: bytes, media_type: str) -> str:
        scope = f"repository:{path}:pull,push"
        url = f"/v2/{path}/manifests/{reference}"
        headers = {"Content-Type": media_type}
        async with await self.request("PUT", url, scope, headers, data=body) as resp:
            answer = await resp.read()
            if resp.status not in (200, 201):
                self.raise_for(resp.status, answer, path, reference, push=True)
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def raise_for(
        self, status: int, body: bytes, path: str, reference: str, push: bool = False
    ) -> None:
        code, text = registry_message(status, body)
        name = f"{self.domain}/{path}"
        if status in (401, 403) or code in ("DENIED", "UNAUTHORIZED", "NAME_UNKNOWN"):
            if push:
                raise Unauthorized(
                    text if code else "denied: requested access to the resource is denied"
                )
            raise NotFound(
                f"pull access denied for {name}, repository does not exist or may "
                f"require 'docker login': {text}"
            )
        if status == 404:
            sep = "@" if reference.startswith("sha256:") else ":"
            raise NotFound(f"manifest for {name}{sep}{reference} not found: {text}")
        if status in (400, 413, 415) and push:
            raise InvalidParameter(text)
        raise RegistryError(f"{name}: {text}")

    async def list_tags(self, path: str) -> list[str]:
        scope = f"repository:{path}:pull"
        async with await self.request("GET", f"/v2/{path}/tags/list", scope) as resp:
            body = await read_bounded(resp, MAX_MANIFEST)
            if resp.status != 200:
                self.raise_for(resp.status, body, path, "")
        try:
            tags = json.loads(body).get("tags") or []
        except (ValueError, AttributeError):
            raise RegistryError(f"invalid tag list from {self.domain}/{path}") from None
        return sorted(t for t in tags if isinstance(t, str))

    # -- blobs ---------------------------------------------------------------------

    async def fetch_blob(
        self,
        path: str,
        digest: str,
        sink: Callable[[bytes], Awaitable[None] | None],
        rewind: Callable[[], None],
        progress: Callable[[int], None] | None = None,
        size: int = 0,
    ) -> int:
        """Stream a blob to `sink`, checking its digest; return its size.

        A connection lost mid-blob is resumed with a Range request (a 5xx
        answer is retried alike); if the registry answers the whole blob
        instead, `rewind` empties the sink.
        With `size` (the descriptor's), a longer blob fails as soon as it is.
        """
        digest = normalize_digest(digest)
        scope = f"repository:{path}:pull"
        url = f"/v2/{path}/blobs/{digest}"
        sha = hashlib.sha256()
        received = 0
        for attempt in range(_RESUME_ATTEMPTS + 1):
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                async with await self.request("GET", url, scope, headers) as resp:
                    resumed = f"bytes {received}-"
                    if received and (
                        resp.status == 200
                        or not resp.headers.get("Content-Range", resumed).startswith(resumed)
                    ):
                        rewind()  # no range support (or another range): start over
                        sha, received = hashlib.sha256(), 0
                    elif resp.status not in (200, 206):
                        body = await read_bounded(resp, 1 << 16)
                        code, text = registry_message(resp.status, body)
                        if resp.status == 404:
                            raise NotFound(
                                f"blob {digest} not found in {self.domain}/{path}: {text}"
                            )
                        error = f"fetching blob {digest} of {self.domain}/{path}: {text}"
                        if resp.status < 500 or attempt == _RESUME_ATTEMPTS:
                            raise RegistryError(error)
                        raise _ServerError(error)  # a 5xx may pass: retried like a drop
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        sha.update(chunk)
                        received += len(chunk)
                        if size and received > size:
                            raise RegistryError(
                                f"filesystem layer verification failed for digest {digest}: "
                                f"longer than the {size} bytes the manifest says"
                            )
                        result = sink(chunk)
                        if inspect.isawaitable(result):
                            await result
                        if progress is not None:
                            progress(received)
                break
            except _ServerError:
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            except (
                aiohttp.ClientPayloadError,
                aiohttp.ClientConnectionError,  # a drop, or no byte for sock_read seconds
                ConnectionError,
                TimeoutError,
            ) as e:
                if attempt == _RESUME_ATTEMPTS:
                    of = f" of {size}" if size else ""
                    raise RegistryError(
                        f"fetching blob {digest} of {self.domain}/{path}: the connection broke off "
                        f"{attempt + 1} times, the last after {received}{of} "
                        f"bytes ({describe(e)})"
                    ) from None
                await asyncio.sleep(0.2 * (attempt + 1))
        actual = "sha256:" + sha.hexdigest()
        if actual != digest:
            raise RegistryError(
                f"filesystem layer verification failed for digest {digest} (got {actual})"
            )
        return received

    async def blob_exists(self, path: str, digest: str) -> bool:
        scope = f"repository:{path}:pull,push"
        async with await self.request("HEAD", f"/v2/{path}/blobs/{digest}", scope) as resp:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            self.raise_for(resp.status, b"", path, digest, push=True)
        return False

    async def mount_blob(self, path: str, digest: str, from_path: str) -> bool:
        """Cross-repository mount: True if the registry linked the blob without an upload."""
        scope = f"repository:{path}:pull,push repository:{from_path}:pull"
        query = urlencode({"mount": digest, "from": from_path})
        url = f"/v2/{path}/blobs/uploads/?{query}"
        async with await self.request("POST", url, scope) as resp:
            await resp.read()
            if resp.status == 201:
                return True
            location = resp.headers.get("Location")
        if location:  # an upload was started instead: cancel it
            try:
                async with await self.request("DELETE", location, scope) as resp:
                    await resp.read()
            except DockyardError:
                pass
        return False


async def read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    data = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > limit:
            raise RegistryError(f"the registry's answer is larger than {limit} bytes")
    return bytes(data)


def describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, TimeoutError):
        return "timeout"
    text = str(error) or type(error).__name__
    return text


def new_session() -> aiohttp.ClientSession:
    """A client session for one pull/push/login (no cookies). HTTP(S)_PROXY and
    NO_PROXY from the daemon's environment are honoured, as dockerd does."""
    return aiohttp.ClientSession(
        trust_env=True,
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=8),
        headers={
            "User-Agent": "dockyard (registry client)",
            "Docker-Distribution-API-Version": "registry/2.0",
        },
        auto_decompress=False,  # blobs are hashed as stored, never transparently gunzipped
    )
