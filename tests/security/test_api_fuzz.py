"""Property-based fuzz of the Engine API against a real daemon: no 5xx, no crash.

Bodies come from the v1.50 spec's own schemas (ContainerConfig + HostConfig +
NetworkingConfig for create, the query parameters of list and inspect), plus raw
bytes and arbitrary JSON, so both the decoder and the engine's checks are hit.
The budget is a fixed number of examples per endpoint (about a minute in all on a
loaded 2-core machine); in CI the examples are derandomized so a run is
reproducible, locally each run explores new ones.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from functools import cache
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
yaml = pytest.importorskip("yaml")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# shared/ sits beside the checkout (CI: beside its clone; developers: /work/shared).
SPEC_CANDIDATES = [
    Path(__file__).resolve().parents[2].parent / "shared/reference/docker-engine-api-v1.50.yaml",
    Path("/work/shared/reference/docker-engine-api-v1.50.yaml"),
]
# Keys of the Swagger 2.0 schemas that JSON Schema does not know, or that only
# describe (formats like "dateTime" or "int64" are not JSON Schema formats).
_DROP = {"format", "example", "description", "x-nullable", "x-go-name", "readOnly", "title"}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # nothing written into the checkout
        derandomize=os.environ.get("CI") == "true",
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


@cache
def spec() -> dict[str, Any]:
    for path in SPEC_CANDIDATES:
        if path.is_file():
            return yaml.safe_load(path.read_text())
    missing = "the v1.50 Engine API spec is not beside the checkout (shared/reference)"
    if os.environ.get("CI") == "true":
        pytest.fail(missing)
    pytest.skip(missing)


def inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """The schema with every local $ref replaced by its definition (cycles cut)."""
    if isinstance(node, list):
        return [inline(n, definitions, seen) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return {}
        return inline(definitions[name], definitions, (*seen, name))
    out = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: inline(v, definitions, seen) for k, v in value.items()}
        else:
            out[key] = inline(value, definitions, seen)
    return out


@cache
def create_body_schema() -> dict[str, Any]:
    s = spec()
    params = s["paths"]["/containers/create"]["post"]["parameters"]
    body = next(p for p in params if p["in"] == "body")
    return inline(body["schema"], s["definitions"])


def ok_status(resp) -> None:
    assert resp.status < 500, f"{resp.status}: {resp.body[:500]!r}"


@pytest.fixture
def alive(daemon):
    """The daemon, checked to still be up and answering after the test."""
    yield daemon
    assert daemon.proc.poll() is None, "the daemon died\n" + daemon.log_tail()
    assert daemon.request("GET", "/_ping").status == 200, daemon.log_tail()


def cleanup(daemon, resp) -> None:
    """A created container is shown (inspect, list: its odd values must shape) and removed."""
    if resp.status != 201:
        return
    cid = resp.json()["Id"]
    try:
        ok_status(daemon.request("GET", f"/containers/{cid}/json?size=1"))
        ok_status(daemon.request("GET", "/containers/json?all=1"))
        ok_status(daemon.request("GET", "/v1.4/containers/json?all=1"))
    finally:
        gone = daemon.request("DELETE", f"/containers/{cid}?force=1")
        assert gone.status == 204, gone.body


# Values the engine gives meaning to, mixed into every generated string.
MEANINGFUL = [
    "", "/", "/proc", "/sys", "/tmp", "..", "x", "/tmp:/x", "/tmp:/x:ro", "/tmp:/", "a:b:c:d",
    "\n", "ALL", "CAP_SYS_ADMIN", "host", "none", "bridge", "default", "container:x",
    "no", "always", "on-failure", "unless-stopped", "SIGKILL", "9", "0", "-1", "json-file",
    "1.2.3.4", "busybox", "root", "65535:65535", "80/tcp", "no-new-privileges", "seccomp=x",
]  # fmt: skip
json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
meaningful = st.sampled_from(MEANINGFUL)
# Mostly values the engine knows (so a create gets past its checks), sometimes any text.
strings = st.one_of(meaningful, meaningful, meaningful, st.text(max_size=24))
integers = st.one_of(
    st.sampled_from([0, 1, -1, 6 * 1024 * 1024, 2**31, 2**63 - 1, -(2**63), 2**64]),
    st.integers(),
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a (Swagger 2.0) schema, type-correct; bounds are not kept, on purpose."""
    if "allOf" in schema:
        parts = [from_schema(s) for s in schema["allOf"]]
        return st.tuples(*parts).map(
            lambda ds: {k: v for d in ds if isinstance(d, dict) for k, v in d.items()}
        )
    if "enum" in schema:
        values = st.sampled_from(schema["enum"])
        return values | strings if schema.get("type") == "string" else values
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = {k: from_schema(v) for k, v in (schema.get("properties") or {}).items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not props:
            return st.dictionaries(strings, from_schema(extra), max_size=3)
        return st.fixed_dictionaries({}, optional=props)
    if kind == "array":
        return st.lists(from_schema(schema.get("items") or {}), max_size=4)
    if kind == "string":
        return strings
    if kind == "integer":
        return integers
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | integers
    if kind == "boolean":
        return st.booleans()
    return json_scalars


names = st.one_of(
    st.just(""),
    st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,20}", fullmatch=True),
    st.text(max_size=40),
)


@st.composite
def create_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(from_schema(create_body_schema()))
    # Mostly an image that exists, so the engine gets past the image lookup.
    if draw(st.booleans()):
        body["Image"] = "busybox"
        if not body.get("Cmd"):
            body["Cmd"] = ["true"]
    return body


@given(body=create_bodies(), name=names)
@fuzz_settings(examples=int(os.environ.get("DOCKYARD_FUZZ_CREATE", "800")))
def test_fuzz_create_from_the_spec(alive, body, name):
    query = "?name=" + urllib.parse.quote(name, safe="") if name else ""
    resp = alive.request("POST", f"/v1.50/containers/create{query}", body)
    try:
        ok_status(resp)
    finally:
        cleanup(alive, resp)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                ["Image", "Cmd", "Env", "HostConfig", "Binds", "Labels", "WorkingDir", "Hostname"]
            )
            | st.text(max_size=10),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@given(
    payload=st.one_of(st.binary(max_size=2000), json_values.map(lambda v: json.dumps(v).encode())),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/json; charset=utf-8", "a/b/c", ";"]
    ),
    version=st.sampled_from(["", "/v1.4", "/v1.24", "/v1.50"]),
)
@fuzz_settings(examples=int(os.environ.get("DOCKYARD_FUZZ_RAW", "800")))
def test_fuzz_create_raw_bodies(alive, payload, content_type, version):
    headers = {"Content-Type": content_type} if content_type else {}
    resp = alive.request("POST", f"{version}/containers/create", payload, headers)
    try:
        ok_status(resp)
    finally:
        cleanup(alive, resp)


query_values = st.one_of(
    st.sampled_from(["", "0", "1", "true", "false", "-1", "99999999999999999999"]),
    st.text(max_size=30),
)
filter_values = st.one_of(
    st.text(max_size=40),
    st.dictionaries(
        st.sampled_from(
            ["status", "name", "id", "label", "exited", "before", "since", "ancestor", "x"]
        )
        | st.text(max_size=8),
        st.lists(st.text(max_size=12), max_size=3)
        | st.dictionaries(st.text(max_size=8), st.booleans(), max_size=3)
        | st.text(max_size=8),
        max_size=4,
    ).map(json.dumps),
)


@given(
    all_=query_values,
    limit=query_values,
    size=query_values,
    filters=filter_values,
    legacy=st.booleans(),
)
@fuzz_settings(examples=int(os.environ.get("DOCKYARD_FUZZ_LIST", "400")))
def test_fuzz_list(alive, all_, limit, size, filters, legacy):
    query = urllib.parse.urlencode({"all": all_, "limit": limit, "size": size, "filters": filters})
    resp = alive.request("GET", f"{'/v1.4' if legacy else ''}/containers/json?{query}")
    ok_status(resp)


@given(ref=st.text(min_size=1, max_size=80), size=query_values)
@fuzz_settings(examples=int(os.environ.get("DOCKYARD_FUZZ_INSPECT", "250")))
def test_fuzz_inspect(alive, ref, size):
    path = urllib.parse.quote(ref, safe="")
    resp = alive.request("GET", f"/containers/{path}/json?size={urllib.parse.quote(size)}")
    ok_status(resp)


@pytest.fixture(scope="module")
def idle_container(daemon):
    """One created (never started) container for the query fuzz; removed at the end."""
    resp = daemon.request("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert resp.status == 201, resp.body
    cid = resp.json()["Id"]
    yield cid
    daemon.request("DELETE", f"/containers/{cid}?force=1")


# Endpoints whose answer for a created container is immediate (no start, no blocking
# wait, no removal) with the query parameters the spec gives them.
CONTAINER_QUERIES = [
    ("GET", "logs", ["stdout", "stderr", "tail", "since", "until", "timestamps", "follow"]),
    ("POST", "kill", ["signal"]),
    ("POST", "stop", ["t", "signal"]),
    ("POST", "resize", ["h", "w"]),
    ("GET", "json", ["size"]),
    ("GET", "trace", []),
]


@given(
    op=st.sampled_from(CONTAINER_QUERIES),
    values=st.lists(query_values, min_size=7, max_size=7),
    version=st.sampled_from(["", "/v1.4", "/v1.24", "/v1.50"]),
)
@fuzz_settings(examples=int(os.environ.get("DOCKYARD_FUZZ_QUERIES", "400")))
def test_fuzz_container_queries(alive, idle_container, op, values, version):
    method, action, params = op
    query = urllib.parse.urlencode(dict(zip(params, values, strict=False)))
    resp = alive.request(method, f"{version}/containers/{idle_container}/{action}?{query}")
    ok_status(resp)


@given(
    ref=st.one_of(
        st.sampled_from(["busybox", "busybox:latest", "sha256:", "a/b:c@d"]), st.text(max_size=60)
    ),
    all_=query_values,
    filters=st.one_of(
        st.text(max_size=30),
        st.dictionaries(
            st.sampled_from(["reference", "dangling", "label", "before", "since", "x"]),
            st.lists(
                st.one_of(st.sampled_from(["busybox", "true", "a=b", "*"]), st.text(max_size=10)),
                max_size=3,
            ),
            max_size=3,
        ).map(json.dumps),
    ),
)
@fuzz_settings(examples=int(os.environ.get("DOCKYARD_FUZZ_IMAGES", "300")))
def test_fuzz_images_list_and_inspect(alive, ref, all_, filters):
    query = urllib.parse.urlencode({"all": all_, "filters": filters})
    ok_status(alive.request("GET", f"/images/json?{query}"))
    ok_status(alive.request("GET", f"/images/{urllib.parse.quote(ref, safe='/:@')}/json"))


ref_parts = st.one_of(
    st.sampled_from(["a", "me/app", "localhost:5000/x", "UPPER", "a..b", "a/", "x@sha256:1"]),
    st.text(max_size=30),
)


@given(
    repo=ref_parts,
    tag=st.one_of(st.sampled_from(["", "v1", "-x", "a" * 129]), st.text(max_size=20)),
)
@fuzz_settings(examples=int(os.environ.get("DOCKYARD_FUZZ_TAGS", "200")))
def test_fuzz_image_tag(alive, repo, tag):
    """Reference parsing of user names; a tag made is removed again (never busybox's)."""
    query = urllib.parse.urlencode({"repo": repo, "tag": tag})
    resp = alive.request("POST", f"/images/busybox/tag?{query}")
    ok_status(resp)
    if resp.status == 201 and "busybox" not in repo.lower():
        name = f"{repo}:{tag}" if tag else repo
        gone = alive.request("DELETE", f"/images/{urllib.parse.quote(name, safe='/:@')}")
        ok_status(gone)
