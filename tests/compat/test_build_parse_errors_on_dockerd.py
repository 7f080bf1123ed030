"""A Dockerfile dockerd refuses before any step is refused here with the same status
and message: the same raw context tar POSTed to /build of a running dockerd
($DOCKYARD_TEST_DOCKERD_HOST; skipped, saying so, without one) and of ours."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from tests.compat.test_build_on_dockerd import dockerd  # noqa: F401 - the fixture
from tests.unit.test_build_parse_errors import BAD_INSTRUCTIONS


def _tar(dockerfile: str) -> bytes:
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return body.getvalue()


@pytest.mark.parametrize(("instruction", "message"), BAD_INSTRUCTIONS)
def test_a_bad_instruction_gets_dockerds_answer(dockerd, daemon, instruction, message):  # noqa: F811
    tar = _tar(f"FROM busybox\nRUN true\n{instruction}\n")
    status, _, body = dockerd.request("POST", "/build?t=dockyard-test-parse-error", tar)
    theirs = json.loads(body)["message"]
    assert (status, theirs) == (400, f"dockerfile parse error line 3: {message}")
    ours = daemon.request("POST", "/build", tar, {"Content-Type": "application/x-tar"})
    assert (ours.status, ours.message) == (status, theirs)


def test_no_instructions_gets_dockerds_answer(dockerd, daemon):  # noqa: F811
    tar = _tar("# nothing but a comment\n")
    status, _, body = dockerd.request("POST", "/build", tar)
    ours = daemon.request("POST", "/build", tar, {"Content-Type": "application/x-tar"})
    assert (ours.status, ours.message) == (status, json.loads(body)["message"])
