"""Reading query parameters and JSON bodies the way dockerd does."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from dockyard.api.context import API_VERSION
from dockyard.api.shapes import Version
from dockyard.errors import InvalidParameter, PayloadTooLarge

T = TypeVar("T")


def version(request: web.Request) -> Version:
    return request[API_VERSION]


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    """dockerd's BoolValue: "", "0", "no", "false", "none" are false; anything else true."""
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.strip().lower() not in ("", "0", "no", "false", "none")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f'invalid value for "{name}": {raw!r} is not an integer') from None


def qfloat_time(request: web.Request, name: str) -> float:
    """since/until: unix seconds with optional fraction ("1700000000.5")."""
    raw = request.query.get(name, "")
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise InvalidParameter(f'invalid value for "{name}": {raw!r}') from None


def qfilters(request: web.Request) -> Any:
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    try:
        # Bounded as a body is: a query string holds ~8000 brackets, deeper than
        # Python's own recursion limit.
        return decode_json(raw.encode("utf-8", "surrogatepass"), Any)
    except InvalidParameter as e:
        raise InvalidParameter(
            "invalid filter: " + e.message.removeprefix("invalid JSON: ")
        ) from None


# What the API reads of a JSON body. A create body is a few KiB; 1 MiB leaves room for
# thousands of Env/Labels entries while bounding the memory a request can cost.
MAX_JSON_BODY = 1 << 20
# Real bodies nest 5-6 levels (HostConfig.LogConfig.Config...); deeper is an attack on
# the decoder's recursion.
MAX_JSON_DEPTH = 64


def check_json_content_type(request: web.Request) -> None:
    """dockerd's httputils.CheckForJSON: a body must say it is application/json.

    Browsers send text/plain, form and multipart bodies cross-origin without a
    preflight ("simple requests"); refusing them keeps a web page from driving the API."""
    ct = request.headers.get("Content-Type", "")
    if not ct and not request.body_exists:
        return
    mimetype = _media_type(ct)
    if mimetype is None:
        raise InvalidParameter(f"malformed Content-Type header ({ct}): mime: no media type")
    if mimetype != "application/json":
        raise InvalidParameter(
            f"unsupported Content-Type header ({ct}): must be 'application/json'"
        )


def _media_type(ct: str) -> str | None:
    """Go's mime.ParseMediaType, as far as the type goes: lower-cased, parameters dropped."""
    mimetype = ct.split(";", 1)[0].strip().lower()
    major, slash, minor = mimetype.partition("/")
    if not (major and slash and minor) or not all(_is_token(p) for p in (major, minor)):
        return None
    return mimetype


def _is_token(text: str) -> bool:
    return all(33 <= ord(ch) < 127 and ch not in '()<>@,;:\\"/[]?=' for ch in text)


async def read_bounded(request: web.Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The body, refused once it passes `limit` bytes: never held whole in memory."""
    too_large = PayloadTooLarge(f"request body is too large (maximum {limit} bytes)")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(raw: bytes, model: type[T], max_depth: int = MAX_JSON_DEPTH) -> T:
    """Strict UTF-8, bounded depth, then the typed model."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidParameter(f"invalid JSON: invalid UTF-8 at byte {e.start}") from None
    try:
        # Untyped first: its recursion is guarded in C (RecursionError), and the
        # depth is then measured without recursing in Python.
        value = msgspec.json.decode(raw)
    except RecursionError:
        value = None
        depth = max_depth + 1
    except msgspec.DecodeError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    else:
        depth = _depth(value, max_depth)
    if depth > max_depth:
        raise InvalidParameter(f"invalid JSON: exceeded max depth (maximum {max_depth} levels)")
    try:
        return msgspec.convert(value, type=model)
    except msgspec.ValidationError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of decoded JSON, stopping once past `limit`."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            break
        todo.extend((child, level + 1) for child in item if isinstance(child, dict | list))
    return deepest


async def body(request: web.Request, model: type[T], *, optional: bool = False) -> T | None:
    if optional and not request.body_exists:
        return None  # as dockerd's start: no body, no Content-Type to check
    check_json_content_type(request)
    raw = await read_bounded(request)
    if not raw.strip():
        if optional:
            return None
        raise InvalidParameter("invalid JSON: empty request body")
    return decode_json(raw, model)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data) + b"\n", status=status, content_type="application/json"
    )


def legacy_json_response(data: Any, status: int = 200) -> web.Response:
    """As the 2013 daemon wrote it: no trailing newline, text/plain; charset=utf-8."""
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="text/plain", charset="utf-8"
    )
