"""json's load/loads/dump/dumps through its C accelerator (`_json`), without `json`.

Importing `json` imports `re` (and `re` imports `enum`): ~4 ms of every
`dockyard-runtime run`, a whole process per container. The C scanner and
encoder that `json` itself uses need no regex; this module drives them
directly and gives the same objects and the same text. Anything off the
plain path (indent, a decoding error, a non-UTF-8 document, a Python
without `_json`) goes to the real `json`, so its errors and output are
json's own.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - every CPython has it
    _json = None

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What json.decoder.JSONDecoder hands the C scanner (json's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict = {}


def _no_default(o: object) -> object:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_Context())
    _ENCODERS = {
        (sep, sort): _json.make_encoder(
            {}, _no_default, _json.encode_basestring_ascii, None, sep[1], sep[0], sort, False, True
        )
        for sep in ((", ", ": "), (",", ":"))
        for sort in (False, True)
    }


def _json_module():  # noqa: ANN202 - the json module, imported where it is needed
    import json

    return json


def loads(s: str | bytes | bytearray) -> object:
    if _json is None:
        return _json_module().loads(s)
    text = s
    if not isinstance(text, str):
        try:
            text = bytes(text).decode()
        except UnicodeDecodeError:
            return _json_module().loads(s)
    start = 0
    while start < len(text) and text[start] in _WS:
        start += 1
    try:
        obj, end = _scan(text, start)
    except (StopIteration, SystemError):
        # Not JSON. The scanner raises json.decoder's JSONDecodeError only once that
        # module is loaded (SystemError before): json itself says what is wrong.
        return _json_module().loads(s)
    if end != len(text) and text[end:].strip(_WS):
        return _json_module().loads(s)  # extra data: json says where
    return obj


def load(f: object) -> object:
    return loads(f.read())  # type: ignore[attr-defined]


def dumps(
    obj: object,
    *,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    encoder = None
    if _json is not None and indent is None:
        encoder = _ENCODERS.get((separators or (", ", ": "), sort_keys))
    if encoder is None:
        return _json_module().dumps(obj, indent=indent, separators=separators, sort_keys=sort_keys)
    if isinstance(obj, str):
        return _json.encode_basestring_ascii(obj)
    return "".join(encoder(obj, 0))


def dump(obj: object, f: object, **kwargs: object) -> None:
    f.write(dumps(obj, **kwargs))  # type: ignore[attr-defined,arg-type]
