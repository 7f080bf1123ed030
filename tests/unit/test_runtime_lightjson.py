"""lightjson: json's C scanner/encoder driven without importing json (or re).

What a user would notice if it drifted: a config.json read differently from
json, state/hook JSON written differently, or a bad config.json answered
with something other than json's own error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.runtime import lightjson

SRC = str(Path(__file__).resolve().parents[2] / "src")

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@given(values)
def test_same_text_and_same_objects_as_json(value: object) -> None:
    for kwargs in ({}, {"separators": (",", ":"), "sort_keys": True}, {"indent": 2}):
        assert lightjson.dumps(value, **kwargs) == json.dumps(value, **kwargs)
    text = json.dumps(value)
    assert lightjson.loads(text) == json.loads(text)
    assert lightjson.loads(f" \n{text}\t\r\n".encode()) == json.loads(text)


@pytest.mark.parametrize(
    "bad", ["", "   ", '{"a": ', '{"a": "x', "[1,2", '{"a" 1}', '"\x01"', '{"a":1}}', "[1,]"]
)
def test_a_bad_document_gets_jsons_own_error(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        lightjson.loads(bad)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(bad)
    assert str(ours.value) == str(theirs.value)


def test_invalid_utf8_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        lightjson.loads(b'{"a": "\xff"}')


def test_a_fresh_interpreter_gets_jsons_error_without_json_loaded() -> None:
    # The C scanner cannot raise JSONDecodeError until json.decoder is imported: this
    # is the state dockyard-runtime is in when it reads a truncated config.json.
    code = (
        f"import sys; sys.path.insert(0, {SRC!r}); from dockyard.runtime import lightjson\n"
        "assert 'json' not in sys.modules and 're' not in sys.modules\n"
        'try:\n    lightjson.loads(\'{"process": {"args": [\')\n'
        "except ValueError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("JSONDecodeError Expecting value")
