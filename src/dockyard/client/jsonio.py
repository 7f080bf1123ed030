"""JSON for the CLI's hot path without `import json`.

`json` compiles several regular expressions at import time and drags in `re`
(and with it `enum`): about a third of `dockyard version`'s start-up. The C
accelerator `_json`, which `json` itself uses, needs none of that, so when it
is there we drive it directly; anywhere else we fall back to `json`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # not CPython: the stdlib module does the same job
    _json = None  # type: ignore[assignment]

_WS = " \t\n\r"


class _ScannerContext:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_ScannerContext()) if _json is not None else None


def raw_decode(text: str, idx: int = 0) -> tuple[Any, int]:
    """One JSON value starting at (whitespace before) idx -> (value, end index)."""
    if _scan is None:
        import json

        return json.JSONDecoder().raw_decode(text, _skip_ws(text, idx))
    idx = _skip_ws(text, idx)
    try:
        return _scan(text, idx)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at position {exc.value}") from None


def loads(data: str | bytes) -> Any:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    value, end = raw_decode(text)
    if _skip_ws(text, end) != len(text):
        raise ValueError(f"extra data after JSON value at position {end}")
    return value


def _skip_ws(text: str, idx: int) -> int:
    n = len(text)
    while idx < n and text[idx] in _WS:
        idx += 1
    return idx


def dumps(value: Any) -> str:
    """Compact-ish JSON like json.dumps(value) (', ' and ': ' separators, ASCII only)."""
    if _json is None:
        import json

        return json.dumps(value)
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"out of range float value for JSON: {value!r}")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(", ")
            first = False
            if not isinstance(key, str):
                key = _key(key)
            out.append(_json.encode_basestring_ascii(key))
            out.append(": ")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key(key: Any) -> str:
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return repr(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
