"""JSON bodies as the API reads them: content type, depth, UTF-8."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.api.params import _media_type, decode_json
from dockyard.engine.models import CreateRequest
from dockyard.errors import InvalidParameter


@pytest.mark.parametrize(
    ("header", "media"),
    [
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        ("text/plain;charset=UTF-8", "text/plain"),
        ("", None),
        ("a/b/c", None),
        ("json", None),
    ],
)
def test_media_type_as_go_parses_it(header, media):
    assert _media_type(header) == media


def test_depth_is_bounded():
    assert decode_json(b"[" * 64 + b"]" * 64, Any) is not None
    for depth in (65, 10_000, 1_000_000):
        with pytest.raises(InvalidParameter, match="exceeded max depth"):
            decode_json(b"[" * depth + b"]" * depth, Any)


def test_brackets_inside_strings_do_not_nest():
    body = b'{"Image": "' + b"[" * 1000 + b'"}'
    assert decode_json(body, CreateRequest).image == "[" * 1000


def test_invalid_utf8_is_invalid_json():
    with pytest.raises(InvalidParameter, match="invalid UTF-8 at byte 11"):
        decode_json(b'{"Image": "\xc3\x28"}', CreateRequest)


def test_trailing_content_is_invalid_json():
    with pytest.raises(InvalidParameter, match="invalid JSON"):
        decode_json(b'{"Image": "x"} {}', CreateRequest)


def test_filters_are_bounded_like_bodies():
    from aiohttp.test_utils import make_mocked_request

    from dockyard.api.params import qfilters

    deep = "[" * 3000 + "]" * 3000
    with pytest.raises(InvalidParameter, match="invalid filter: exceeded max depth"):
        qfilters(make_mocked_request("GET", f"/containers/json?filters={deep}"))
    ok = make_mocked_request("GET", '/containers/json?filters={"status":["running"]}')
    assert qfilters(ok) == {"status": ["running"]}
    with pytest.raises(InvalidParameter, match="invalid filter"):
        qfilters(make_mocked_request("GET", "/containers/json?filters={"))
