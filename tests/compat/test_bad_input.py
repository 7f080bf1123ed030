"""What a client gets for bad input, and what survives a crashed daemon.

Status codes and wording are dockerd's: scripts and the docker CLI match on them.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import tarfile
import time
import uuid
from pathlib import Path

import pytest


def err(resp) -> str:
    """The `message` of an error answer; the body must be {"message": ...}."""
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str), resp.body
    assert body["message"].strip(), resp.body
    return body["message"]


def test_malformed_json_is_400(daemon):
    resp = daemon.request(
        "POST", "/containers/create", b'{"Image": "busybox", ', {"Content-Type": "application/json"}
    )
    assert resp.status == 400, resp.body
    err(resp)


def test_wrong_json_type_is_400(daemon):
    resp = daemon.request("POST", "/containers/create", {"Image": "busybox", "Cmd": 42})
    assert resp.status == 400, resp.body
    err(resp)


def test_unknown_image_is_404(daemon):
    resp = daemon.request(
        "POST", "/containers/create", {"Image": "no-such-image-dky", "Cmd": ["true"]}
    )
    assert resp.status == 404, resp.body
    assert err(resp).startswith("No such image: no-such-image-dky"), resp.body


def test_duplicate_name_is_409(daemon, unique):
    name = unique("dup")
    first = daemon.request(
        "POST", f"/containers/create?name={name}", {"Image": "busybox", "Cmd": ["true"]}
    )
    assert first.status == 201, first.body
    second = daemon.request(
        "POST", f"/containers/create?name={name}", {"Image": "busybox", "Cmd": ["true"]}
    )
    assert second.status == 409, second.body
    msg = err(second)
    assert f'"/{name}" is already in use by container "{first.json()["Id"]}"' in msg, msg


def test_delete_running_without_force_is_409(daemon, unique):
    created = daemon.request(
        "POST",
        f"/containers/create?name={unique('run')}",
        {"Image": "busybox", "Cmd": ["sleep", "30"]},
    )
    assert created.status == 201, created.body
    cid = created.json()["Id"]
    assert daemon.request("POST", f"/containers/{cid}/start").status == 204
    resp = daemon.request("DELETE", f"/containers/{cid}")
    assert resp.status == 409, resp.body
    assert "running" in err(resp)
    # Still there and still running: a refused delete changes nothing.
    state = daemon.request("GET", f"/containers/{cid}/json").json()["State"]
    assert state["Running"] is True
    forced = daemon.request("DELETE", f"/containers/{cid}?force=1")
    assert forced.status == 204, forced.body
    assert daemon.request("GET", f"/containers/{cid}/json").status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/containers/no-such-ctr/json"),
        ("POST", "/containers/no-such-ctr/start"),
        ("POST", "/containers/no-such-ctr/stop"),
        ("POST", "/containers/no-such-ctr/wait"),
        ("GET", "/containers/no-such-ctr/logs?stdout=1"),
        ("DELETE", "/containers/no-such-ctr"),
    ],
)
def test_unknown_container_is_404(daemon, method, path):
    resp = daemon.request(method, path)
    assert resp.status == 404, resp.body
    assert err(resp) == "No such container: no-such-ctr"


# -- hostile image tars --------------------------------------------------------


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = linkname
    return info


def import_tar(daemon, data: bytes, repo: str) -> tuple[int, str]:
    """POST /images/create?fromSrc=-; (status, error message or '').

    dockerd reports an import error either as an HTTP error or, once the
    progress stream has begun, as an {"error": ...} object inside a 200.
    """
    resp = daemon.request(
        "POST",
        f"/images/create?fromSrc=-&repo={repo}&tag=latest",
        data,
        {"Content-Type": "application/x-tar"},
    )
    if resp.status >= 400:
        return resp.status, err(resp)
    for line in resp.body.decode(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("error"):
            return 500, str(obj["error"])
    return resp.status, ""


def outside_candidates(daemon, name: str) -> list[Path]:
    """Where `name` would land if extraction escaped: every ancestor of the data root."""
    paths = [p / name for p in [daemon.data_root, *daemon.data_root.parents]]
    return paths + [Path("/tmp") / name, Path("/") / name]


def found_anywhere(daemon, name: str) -> list[Path]:
    hits = [p for p in outside_candidates(daemon, name) if os.path.lexists(p)]
    hits += [p for p in daemon.base.rglob(name)]
    return hits


def test_import_benign_tar_works(daemon, unique):
    """The control for the hostile cases: a plain tar imports."""
    repo = unique("benign")
    status, msg = import_tar(
        daemon, tar_of((entry("hello.txt"), b"hi\n"), (entry("etc", tarfile.DIRTYPE), None)), repo
    )
    assert status == 200 and not msg, msg
    assert daemon.request("GET", f"/images/{repo}:latest/json").status == 200


def test_import_refuses_dotdot_entry(daemon, unique):
    name = f"escape-{uuid.uuid4().hex}"
    data = tar_of(
        (entry("ok.txt"), b"fine\n"), (entry(f"../../../../../../../../{name}"), b"pwned\n")
    )
    repo = unique("hostile")
    status, msg = import_tar(daemon, data, repo)
    assert status >= 400, "a ../ entry was accepted"
    assert msg
    assert found_anywhere(daemon, name) == []
    assert daemon.request("GET", f"/images/{repo}:latest/json").status == 404


def test_import_absolute_entry_stays_inside(daemon, unique):
    # tar's own convention is to strip the leading "/", so refusing or
    # extracting inside the layer are both fine; landing in /tmp is not.
    name = f"abs-{uuid.uuid4().hex}"
    import_tar(daemon, tar_of((entry(f"/tmp/{name}"), b"pwned\n")), unique("abs"))
    assert not os.path.lexists(f"/tmp/{name}")


def test_import_write_through_absolute_symlink_stays_inside(daemon, unique):
    """`evil -> /tmp/X` then `evil/pwned`: dockerd resolves the link inside the
    layer (as in a chroot), so the file may land at <layer>/tmp/X/pwned, or the
    import may be refused; it must never land in the host's /tmp/X."""
    target = Path(f"/tmp/dkytarget-{uuid.uuid4().hex[:8]}")
    target.mkdir()
    try:
        data = tar_of(
            (entry("evil", tarfile.SYMTYPE, linkname=str(target)), None),
            (entry("evil/pwned"), b"pwned\n"),
        )
        status, msg = import_tar(daemon, data, unique("symlink"))
        assert list(target.iterdir()) == [], "the import wrote outside the data root"
        if status >= 400:
            assert msg
        else:
            inside = [
                p for p in daemon.data_root.rglob("pwned") if str(p).endswith(f"{target}/pwned")
            ]
            assert inside, "accepted, but the file is nowhere inside the layer either"
    finally:
        for p in target.iterdir():
            p.unlink()
        target.rmdir()


def test_import_refuses_hardlink_out(daemon, unique):
    data = tar_of(
        (entry("passwd", tarfile.LNKTYPE, linkname="../../../../../../../../etc/passwd"), None)
    )
    status, msg = import_tar(daemon, data, unique("hardlink"))
    assert status >= 400, "a hard link to a host file was accepted"
    assert msg
    host = os.stat("/etc/passwd")
    linked = [
        p
        for p in daemon.data_root.rglob("passwd")
        if p.is_file() and p.stat().st_ino == host.st_ino
    ]
    assert linked == []


def test_cli_import_of_hostile_tar_is_one_clear_line(daemon, unique, tmp_path):
    tar = tmp_path / "evil.tar"
    tar.write_bytes(tar_of((entry("../../../../etc/dky-evil"), b"x\n")))
    proc = daemon.dockyard("import", str(tar), unique("evil"))
    assert proc.returncode != 0
    assert proc.stderr.strip(), "no error message"
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


# -- crash and restart -----------------------------------------------------------


def wait_until(predicate, timeout: float = 30, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_sigkill_daemon_loses_nothing(daemon_factory):
    d1 = daemon_factory()
    d1.import_busybox()
    done = d1.dockyard("run", "--name", "done", "busybox", "echo", "finished")
    assert done.returncode == 0 and done.stdout == "finished\n", done.stderr
    run = d1.dockyard(
        "run", "-d", "--name", "survivor", "busybox", "sh", "-c", "echo started; sleep 8; exit 42"
    )
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    assert wait_until(lambda: d1.dockyard("logs", "survivor").stdout == "started\n", timeout=10)
    before = json.loads(d1.dockyard("inspect", "survivor").stdout)[0]
    assert before["State"]["Running"] is True

    d1.proc.send_signal(signal.SIGKILL)
    d1.proc.wait(timeout=10)
    # The container's process outlives its daemon, like with dockerd --live-restore.
    assert before["State"]["Pid"] > 0 and os.path.exists(f"/proc/{before['State']['Pid']}")

    d2 = daemon_factory(base=d1.base, data_root=d1.data_root)
    ps = d2.dockyard("ps", "-a", "--no-trunc")
    assert ps.returncode == 0, ps.stderr + d2.log_tail()
    assert cid in ps.stdout and "survivor" in ps.stdout
    assert re.search(r"Exited \(0\).*done", ps.stdout), ps.stdout
    assert d2.dockyard("logs", "done").stdout == "finished\n"
    assert d2.dockyard("logs", "survivor").stdout == "started\n"
    after = json.loads(d2.dockyard("inspect", "survivor").stdout)[0]
    assert after["Id"] == before["Id"]
    assert after["State"]["Running"] is True, after["State"]
    assert after["State"]["Pid"] == before["State"]["Pid"]

    wait = d2.dockyard("wait", "survivor", timeout=60)
    assert wait.stdout.strip() == "42", wait.stdout + wait.stderr
    final = json.loads(d2.dockyard("inspect", "survivor").stdout)[0]["State"]
    assert final["Running"] is False and final["ExitCode"] == 42
    assert d2.dockyard("logs", "survivor").stdout == "started\n"


def test_second_daemon_on_same_data_root_refuses(daemon_factory):
    d1 = daemon_factory()
    d2 = daemon_factory(data_root=d1.data_root, wait=False)
    try:
        code = d2.proc.wait(timeout=30)
    except Exception:
        pytest.fail("a second daemon on the same data root kept running\n" + d2.log_tail())
    assert code != 0
    log = d2.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log
    assert str(d1.data_root) in log or "already" in log.lower(), log
    # The first daemon is unharmed.
    assert d1.request("GET", "/_ping").status == 200
