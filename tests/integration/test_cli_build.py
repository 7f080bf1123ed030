"""`dockyard build` and `dockyard commit` against a real daemon: built images run,
the cache is right (and survives a restart), bad input fails before any step."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import os
import re
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import mounts_under


def write_context(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def build(dockyard, context: Path, *args: str, timeout: float = 120):
    return dockyard("build", *args, str(context), timeout=timeout)


def image_config(daemon, ref: str) -> dict:
    resp = daemon.request("GET", f"/images/{ref}/json")
    assert resp.status == 200, resp.body
    return resp.json()


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[int]:
    """An http server for `directory` on 127.0.0.1 (its port), for ADD URL and remote=."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(directory), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def steps_cached(output: str) -> list[bool]:
    """For each step after FROM: whether it said `Using cache`."""
    chunks = re.split(r"^Step \d+/\d+ : ", output, flags=re.M)[2:]
    return ["Using cache" in c for c in chunks]


APP = """\
FROM busybox
ENV GREETING="hello world"
RUN echo "built with $GREETING" > /built.txt
COPY app/ /app/
WORKDIR /app
RUN cat main.txt > copied.txt
CMD ["cat", "/built.txt", "copied.txt"]
"""


def test_build_runs_and_is_shaped_like_dockerd(daemon, dockyard, tmp_path, unique):
    ctx = write_context(tmp_path, {"Dockerfile": APP, "app/main.txt": "main v1\n"})
    tag = unique("app")
    proc = build(dockyard, ctx, "-t", tag)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Step 1/7 : FROM busybox" in proc.stdout
    assert re.search(r"^Successfully built [0-9a-f]{12}$", proc.stdout, re.M)
    assert f"Successfully tagged {tag}:latest" in proc.stdout
    run = dockyard("run", "--rm", tag)
    assert run.stdout == "built with hello world\nmain v1\n", run.stderr
    info = image_config(daemon, tag)
    cfg = info["Config"]
    assert "GREETING=hello world" in cfg["Env"]
    assert cfg["WorkingDir"] == "/app"
    assert cfg["Cmd"] == ["cat", "/built.txt", "copied.txt"]
    base = image_config(daemon, "busybox")["RootFS"]["Layers"]
    # RUN, COPY, RUN made layers; ENV, WORKDIR, CMD are empty layers
    assert len(info["RootFS"]["Layers"]) == len(base) + 3
    # intermediate images are hidden from `images`, listed by `images -a`
    listed = dockyard("images", "-q").stdout.split()
    everything = dockyard("images", "-aq").stdout.split()
    assert len(everything) >= len(listed) + 5
    rmi = dockyard("rmi", tag)
    assert rmi.returncode == 0, rmi.stderr
    # the intermediate images of the build go with it (dockerd's prune of parents)
    assert rmi.stdout.count("Deleted:") >= 6, rmi.stdout


def test_history_entries_as_dockerd_writes_them(daemon, dockyard, tmp_path, unique):
    ctx = write_context(tmp_path, {"Dockerfile": APP, "app/main.txt": "x\n"})
    tag = unique("hist")
    assert build(dockyard, ctx, "-t", tag).returncode == 0
    image_id = image_config(daemon, tag)["Id"]
    blob = (daemon.data_root / "blobs" / "sha256" / image_id.removeprefix("sha256:")).read_bytes()
    history = json.loads(blob)["history"][-6:]
    assert history[0]["created_by"] == "/bin/sh -c #(nop)  ENV GREETING=hello world"
    assert history[0]["empty_layer"] is True
    assert history[1]["created_by"] == '/bin/sh -c echo "built with $GREETING" > /built.txt'
    assert "empty_layer" not in history[1]
    assert re.fullmatch(
        r"/bin/sh -c #\(nop\) COPY dir:[0-9a-f]{64} in /app/ ", history[2]["created_by"]
    )
    # WORKDIR of a directory the COPY made: an empty layer; one word after the shell
    assert history[3] == {
        **history[3],
        "created_by": "/bin/sh -c #(nop) WORKDIR /app",
        "empty_layer": True,
    }
    assert history[5]["created_by"] == '/bin/sh -c #(nop)  CMD ["cat" "/built.txt" "copied.txt"]'
    dockyard("rmi", tag)


def test_cache_reuse_and_one_file_change(dockyard, tmp_path, unique):
    ctx = write_context(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\nRUN echo one > /1\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n"
            "RUN cat /a.txt /b.txt > /ab\n",
            "a.txt": "a\n",
            "b.txt": "b\n",
        },
    )
    tag = unique("cache")
    first = build(dockyard, ctx, "-t", tag)
    assert first.returncode == 0, first.stderr
    assert steps_cached(first.stdout) in ([False] * 4, [True] + [False] * 3)
    again = build(dockyard, ctx, "-t", tag)
    assert steps_cached(again.stdout) == [True] * 4, again.stdout
    # a new mtime alone changes nothing the cache looks at
    os.utime(ctx / "b.txt", (1, 1))
    assert steps_cached(build(dockyard, ctx, "-t", tag).stdout) == [True] * 4
    # one changed file reruns the step that reads it and every step after it
    (ctx / "b.txt").write_text("B\n")
    changed = build(dockyard, ctx, "-t", tag)
    assert steps_cached(changed.stdout) == [True, True, False, False], changed.stdout
    assert dockyard("run", "--rm", tag, "cat", "/ab").stdout == "a\nB\n"
    # a mode change is a change too
    (ctx / "b.txt").chmod(0o600)
    assert steps_cached(build(dockyard, ctx, "-t", tag).stdout) == [True, True, False, False]
    nocache = build(dockyard, ctx, "-t", tag, "--no-cache")
    assert steps_cached(nocache.stdout) == [False] * 4
    dockyard("rmi", tag)


def test_cache_survives_daemon_restart(daemon_factory, tmp_path):
    d = daemon_factory()
    d.import_busybox()
    ctx = write_context(
        tmp_path, {"Dockerfile": "FROM busybox\nRUN echo x > /x\nCOPY f /f\n", "f": "f"}
    )
    first = d.dockyard("build", "-t", "restart:1", str(ctx), timeout=120)
    assert first.returncode == 0, first.stderr
    assert d.stop() == 0
    d.start()
    again = d.dockyard("build", "-t", "restart:1", str(ctx), timeout=120)
    assert steps_cached(again.stdout) == [True, True], again.stdout


def test_multistage_target_args_and_heredocs(dockyard, tmp_path, unique):
    dockerfile = """\
ARG BASE=busybox
FROM ${BASE} AS builder
ARG MSG=default
RUN echo "msg=$MSG" > /built.txt
RUN <<EOF
echo line1 > /hd.txt
echo line2 >> /hd.txt
EOF
COPY <<EOF /inline.txt
inline
EOF

FROM busybox AS final
COPY --from=builder /built.txt /hd.txt /inline.txt /out/
CMD ["sh", "-c", "cat /out/*"]

FROM busybox AS other
RUN exit 1
"""
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    tag = unique("multi")
    proc = build(dockyard, ctx, "-t", tag, "--build-arg", "MSG=given", "--target", "final")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "exit 1" not in proc.stdout  # the stage after the target is not built
    run = dockyard("run", "--rm", tag)
    assert run.stdout == "msg=given\nline1\nline2\ninline\n", run.stderr
    dockyard("rmi", tag)


def test_dockerignore_and_symlinks_out_of_the_context(dockyard, tmp_path, unique):
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
            ".dockerignore": "logs/*\n!logs/keep.log\nsecret.txt\n",
            "logs/keep.log": "keep",
            "logs/drop.log": "drop",
            "secret.txt": "secret",
            "src/a.txt": "a",
        },
    )
    (tmp_path / "outside").write_text("host file")
    os.symlink(str(tmp_path / "outside"), ctx / "src" / "abs-link")
    os.symlink("../../outside", ctx / "src" / "rel-link")
    tag = unique("ignore")
    proc = build(dockyard, ctx, "-t", tag)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    listing = dockyard("run", "--rm", tag, "find", "/ctx").stdout.split()
    assert "/ctx/logs/keep.log" in listing
    assert "/ctx/logs/drop.log" not in listing
    assert "/ctx/secret.txt" not in listing
    links = dockyard(
        "run", "--rm", tag, "sh", "-c", "readlink /ctx/src/abs-link; readlink /ctx/src/rel-link"
    )
    assert links.stdout.split() == [str(tmp_path / "outside"), "../../outside"]
    # a symlink source itself resolves inside the context: not the host's file
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY src/abs-link /x\n")
    refused = build(dockyard, ctx)
    assert refused.returncode != 0
    assert "file not found in build context" in refused.stderr
    assert "Step" not in refused.stdout
    dockyard("rmi", tag)


def test_copy_rules_chown_chmod_wildcards_and_add(daemon, dockyard, tmp_path, unique):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"from the archive\n"
        info = tarfile.TarInfo("d/f")
        info.size, info.uid = len(data), 33
        tar.addfile(info, io.BytesIO(data))
    ctx = write_context(
        tmp_path,
        {
            "Dockerfile": """\
FROM busybox
COPY one.txt /renamed.txt
COPY one.txt /dir/
COPY *.txt /glob/
COPY --chown=daemon:daemon --chmod=640 one.txt /owned/
ADD arch.tgz /unpacked/
ADD http://127.0.0.1:{port}/served.txt /dl/
COPY one.txt two.txt /multi/
""",
            "one.txt": "1\n",
            "two.txt": "2\n",
        },
    )
    (ctx / "arch.tgz").write_bytes(archive.getvalue())
    served = tmp_path / "www"
    served.mkdir()
    (served / "served.txt").write_text("served\n")

    with serve(served) as port:
        text = (ctx / "Dockerfile").read_text().replace("{port}", str(port))
        (ctx / "Dockerfile").write_text(text)
        tag = unique("copy")
        proc = build(dockyard, ctx, "-t", tag)
        assert proc.returncode == 0, proc.stderr + proc.stdout
    script = (
        "cat /renamed.txt /dir/one.txt; ls /glob; stat -c '%u:%g %a' /owned/one.txt;"
        "cat /unpacked/d/f; stat -c '%u' /unpacked/d/f; cat /dl/served.txt;"
        "stat -c '%a' /dl/served.txt; ls /multi"
    )
    out = dockyard("run", "--rm", tag, "sh", "-c", script).stdout.split("\n")
    assert out[:11] == [
        "1", "1", "one.txt", "two.txt", "1:1 640", "from the archive", "33", "served", "600",
        "one.txt", "two.txt",
    ], out  # fmt: skip
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY one.txt two.txt /nodir\n")
    refused = build(dockyard, ctx)
    assert "the destination must be a directory and end with a /" in refused.stderr
    dockyard("rmi", tag)


def test_metadata_instructions_escape_and_onbuild(daemon, dockyard, tmp_path, unique):
    parent = unique("parent")
    ctx = write_context(
        tmp_path / "p",
        {
            "Dockerfile": """\
# escape=`
FROM busybox
SHELL ["/bin/sh", "-e", "-c"]
RUN echo one `
    two > /escaped
LABEL version="1.0" "with space"="yes"
EXPOSE 80 53/udp
VOLUME ["/data"]
USER daemon
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD true
ENTRYPOINT ["/bin/sh", "-c"]
ONBUILD RUN echo triggered > /tmp/trig
"""
        },
    )
    assert build(dockyard, ctx, "-t", parent).returncode == 0
    cfg = image_config(daemon, parent)["Config"]
    assert cfg["Labels"] == {"version": "1.0", "with space": "yes"}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["User"] == "daemon"
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 5_000_000_000,
        "Retries": 2,
    }
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["OnBuild"] == ["RUN echo triggered > /tmp/trig"]
    assert cfg["Shell"] == ["/bin/sh", "-e", "-c"]
    run = dockyard("run", "--rm", "--entrypoint", "cat", parent, "/escaped")
    assert run.stdout == "one two\n"
    child = unique("child")
    cctx = write_context(tmp_path / "c", {"Dockerfile": f"FROM {parent}\n"})
    proc = build(dockyard, cctx, "-t", child)
    assert "# Executing 1 build trigger" in proc.stdout, proc.stdout + proc.stderr
    assert (
        dockyard("run", "--rm", "--entrypoint", "cat", child, "/tmp/trig").stdout == "triggered\n"
    )
    assert image_config(daemon, child)["Config"]["OnBuild"] is None
    dockyard("rmi", child, parent)


@pytest.mark.parametrize(
    ("dockerfile", "args", "message"),
    [
        (
            "FROM busybox\nRUN true\nFOO bar\n",
            [],
            "dockerfile parse error line 3: unknown instruction: FOO",
        ),
        ("FROM busybox\nRUN true\nCOPY ../x /x\n", [], "forbidden path outside the build context"),
        ("FROM busybox\nRUN true\nCOPY missing /x\n", [], "file not found in build context"),
        (
            "FROM busybox\nCOPY --from=nostage /x /x\n",
            [],
            "no build stage and no image named nostage",
        ),
        (
            "FROM busybox AS a\nRUN true\n",
            ["--target", "nope"],
            "failed to reach build target nope",
        ),
        (
            "FROM busybox\nRUN <<EOF\necho\n",
            [],
            "dockerfile parse error line 2: unterminated heredoc",
        ),
        (
            "RUN true\nFROM busybox\n",
            [],
            "dockerfile parse error line 1: no build stage in current context",
        ),
        ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", [], "requires BuildKit"),
        # missing arguments: refused as dockerd refuses them, before "Step 1"
        (
            "FROM busybox\nRUN true\nENV\n",
            [],
            "dockerfile parse error line 3: ENV requires at least one argument",
        ),
        (
            "FROM busybox\nRUN true\nCOPY onlyone\n",
            [],
            "dockerfile parse error line 3: COPY requires at least two arguments",
        ),
        ("FROM busybox\nUSER\n", [], "dockerfile parse error line 2: USER requires exactly one"),
    ],
)
def test_bad_dockerfiles_fail_before_any_step(dockyard, tmp_path, dockerfile, args, message):
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    proc = build(dockyard, ctx, *args)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr
    assert "Step 1" not in proc.stdout


def test_failing_run_shows_output_and_code_and_forcerm_cleans(daemon, dockyard, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo visible-output; exit 3\n"})
    before = set(dockyard("ps", "-aq", "--no-trunc").stdout.split())
    proc = build(dockyard, ctx, "--force-rm")
    assert proc.returncode == 3  # as docker: the step's exit code
    assert "visible-output" in proc.stdout
    assert "returned a non-zero code: 3" in proc.stderr
    assert set(dockyard("ps", "-aq", "--no-trunc").stdout.split()) == before


def test_client_gone_mid_step_leaves_nothing(daemon, dockyard, tmp_path):
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        data = b"FROM busybox\nRUN echo started; sleep 60\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = body.getvalue()
    before = set(dockyard("ps", "-aq", "--no-trunc").stdout.split())
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.socket)
    sock.sendall(
        b"POST /build?nocache=1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        + f"Content-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    seen = b""
    deadline = time.monotonic() + 60
    while b"started" not in seen and time.monotonic() < deadline:
        seen += sock.recv(4096)
    assert b"started" in seen, seen
    sock.close()  # Ctrl-C
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = set(dockyard("ps", "-aq", "--no-trunc").stdout.split()) - before
        tmp = daemon.data_root / "tmp"
        builds = [p for p in tmp.iterdir() if p.name.startswith("build-")] if tmp.exists() else []
        if not left and not builds:
            break
        time.sleep(0.2)
    assert not left, "the step's container is still there"
    assert not builds
    assert not mounts_under(str(daemon.data_root / "tmp"))


def test_quiet_iidfile_stdin_and_tar_contexts(dockyard, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nLABEL from=dir\n"})
    iid = tmp_path / "iid"
    proc = build(dockyard, ctx, "-q", "--iidfile", str(iid))
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", proc.stdout)
    assert iid.read_text() == proc.stdout.strip()
    stdin = dockyard("build", "-q", "-", input="FROM busybox\nLABEL from=stdin\n")
    assert stdin.returncode == 0, stdin.stderr
    with tarfile.open(tmp_path / "c.tar", "w") as tar:
        tar.add(ctx / "Dockerfile", arcname="Dockerfile")
    from_tar = dockyard("build", "-q", str(tmp_path / "c.tar"))
    assert from_tar.stdout == proc.stdout  # the same steps: the same image, from cache


def test_labels_and_build_args_options(daemon, dockyard, tmp_path, unique):
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nARG V\nRUN echo $V > /v\n"})
    tag = unique("opts")
    proc = build(dockyard, ctx, "-t", tag, "--label", "team=core", "--build-arg", "V=42",
                 "--build-arg", "UNUSED=1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in proc.stdout
    assert image_config(daemon, tag)["Config"]["Labels"] == {"team": "core"}
    assert dockyard("run", "--rm", tag, "cat", "/v").stdout == "42\n"
    dockyard("rmi", tag)


def saved_layer(dockyard, tmp_path, tag: str, layer: str) -> tarfile.TarFile:
    """The layer tar `docker save` gives of `tag` (a committed layer's is rebuilt
    from its directory: the store keeps no tar of it)."""
    out = tmp_path / f"saved-{layer[:12]}.tar"
    assert dockyard("save", "-o", str(out), tag).returncode == 0
    with tarfile.open(out) as outer:
        member = outer.extractfile(f"blobs/sha256/{layer}")
        assert member is not None
        data = member.read()
    assert hashlib.sha256(data).hexdigest() == layer  # its diffID, byte for byte
    return tarfile.open(fileobj=io.BytesIO(data))


def test_commit_with_changes_message_author_and_whiteouts(daemon, dockyard, unique, tmp_path):
    name = unique("c")
    assert dockyard("run", "--name", name, "busybox", "sh", "-c",
                    "echo hi > /new; rm /etc/group; mkdir -p /a/b").returncode == 0  # fmt: skip
    tag = unique("snap")
    proc = dockyard("commit", "-c", "ENV FOO=bar", "-c", 'CMD ["cat", "/new"]', "-m", "msg",
                    "-a", "me <me@x>", name, tag)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", proc.stdout)
    info = image_config(daemon, tag)
    assert info["Comment"] == "msg" and info["Author"] == "me <me@x>"
    assert "FOO=bar" in info["Config"]["Env"]
    assert dockyard("run", "--rm", tag).stdout == "hi\n"
    check = dockyard(
        "run", "--rm", tag, "sh", "-c", "test ! -e /etc/group && test -d /a/b && echo ok"
    )
    assert check.stdout == "ok\n"
    layer = info["RootFS"]["Layers"][-1].removeprefix("sha256:")
    with saved_layer(dockyard, tmp_path, tag, layer) as tar:
        names = tar.getnames()
    assert "etc/.wh.group" in names
    # the runtime's mount points are not the container's changes
    assert "etc/hosts" not in names and "etc/resolv.conf" not in names
    dockyard("rm", name)
    dockyard("rmi", tag)


def test_commit_pauses_a_running_container(daemon, dockyard, unique):
    name = unique("run")
    assert dockyard("run", "-d", "--name", name, "busybox", "sh", "-c",
                    "echo live > /state; sleep 60").returncode == 0  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if dockyard("exec", name, "cat", "/state").stdout == "live\n":
            break
        time.sleep(0.1)
    tag = unique("live")
    proc = dockyard("commit", name, tag)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(dockyard("inspect", name).stdout)[0]["State"]
    assert state["Running"] and not state["Paused"]
    assert dockyard("run", "--rm", tag, "cat", "/state").stdout == "live\n"
    dockyard("rm", "-f", name)
    dockyard("rmi", tag)


def test_cache_from_a_loaded_image(dockyard, tmp_path, unique):
    ctx = write_context(
        tmp_path / "ctx",
        {"Dockerfile": "FROM busybox\nENV A=1\nRUN echo ran > /ran\nCOPY f /f\n", "f": "f\n"},
    )
    tag = unique("cachefrom")
    assert build(dockyard, ctx, "-t", tag).returncode == 0
    archive = tmp_path / "img.tar"
    assert dockyard("save", "-o", str(archive), tag).returncode == 0
    assert dockyard("rmi", tag).returncode == 0  # the build's intermediate images go too
    assert dockyard("load", "-i", str(archive)).returncode == 0  # no parents: no local cache
    from_cache = build(dockyard, ctx, "-t", unique("cf"), "--cache-from", tag)
    assert from_cache.returncode == 0, from_cache.stderr
    assert steps_cached(from_cache.stdout) == [True] * 3, from_cache.stdout
    missing = build(dockyard, ctx, "--cache-from", "no-such-image-here")
    assert missing.returncode == 1 and "No such image" in missing.stderr


def test_builder_prune_removes_the_cache_of_untagged_builds(daemon, dockyard, tmp_path, unique):
    tagged = unique("kept")
    ctx = write_context(tmp_path / "a", {"Dockerfile": "FROM busybox\nRUN echo a > /a\nENV K=1\n"})
    assert build(dockyard, ctx, "-t", tagged).returncode == 0
    other = write_context(
        tmp_path / "b", {"Dockerfile": f"FROM busybox\nRUN echo {unique('b')} > /b\nENV B=1\n"}
    )
    untagged = build(dockyard, other, "-q").stdout.strip()
    run_step = image_config(daemon, untagged)["Parent"]
    assert run_step and run_step != image_config(daemon, "busybox")["Id"]
    proc = dockyard("builder", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    after = set(dockyard("images", "-aq", "--no-trunc").stdout.split())
    assert run_step not in after  # the untagged build's RUN step goes; its result stays
    assert untagged in after
    assert steps_cached(build(dockyard, ctx, "-t", tagged).stdout) == [True, True]
    assert dockyard("builder", "prune", "-af").returncode == 0
    assert untagged not in set(dockyard("images", "-aq", "--no-trunc").stdout.split())
    assert steps_cached(build(dockyard, ctx, "-t", tagged).stdout) == [True, True]
    dockyard("rmi", tagged)


def test_remote_contexts_over_http(dockyard, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "Dockerfile").write_text('FROM busybox\nCMD ["echo", "remote dockerfile"]\n')
    src = write_context(
        tmp_path / "src",
        {"Dockerfile": 'FROM busybox\nCOPY f /f\nCMD ["cat", "/f"]\n', "f": "from tar\n"},
    )
    with tarfile.open(www / "ctx.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=".")
    with serve(www) as port:
        plain = dockyard("build", "-q", f"http://127.0.0.1:{port}/Dockerfile")
        archive = dockyard("build", "-q", f"http://127.0.0.1:{port}/ctx.tar.gz")
        missing = dockyard("build", "-q", f"http://127.0.0.1:{port}/nothing.tar")
    assert plain.returncode == 0, plain.stderr
    assert dockyard("run", "--rm", plain.stdout.strip()).stdout == "remote dockerfile\n"
    assert archive.returncode == 0, archive.stderr
    assert dockyard("run", "--rm", archive.stdout.strip()).stdout == "from tar\n"
    assert missing.returncode == 1 and "404" in missing.stderr
    git = dockyard("build", "https://127.0.0.1:1/repo.git")
    assert git.returncode == 1 and "not git repositories" in git.stderr


def test_dockerfile_flag_inside_and_outside_the_context(dockyard, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {"docker/Dockerfile.dev": 'FROM busybox\nCOPY f /f\nCMD ["cat", "/f"]\n', "f": "ctx\n"},
    )
    (tmp_path / "Outside.Dockerfile").write_text('FROM busybox\nCOPY f /g\nCMD ["cat", "/g"]\n')
    inside = dockyard("build", "-q", "-f", str(ctx / "docker" / "Dockerfile.dev"), str(ctx))
    assert inside.returncode == 0, inside.stderr
    assert dockyard("run", "--rm", inside.stdout.strip()).stdout == "ctx\n"
    outside = dockyard("build", "-q", "-f", str(tmp_path / "Outside.Dockerfile"), str(ctx))
    assert outside.returncode == 0, outside.stderr
    assert dockyard("run", "--rm", outside.stdout.strip()).stdout == "ctx\n"
    missing = dockyard("build", "-f", str(tmp_path / "nope"), str(ctx))
    assert missing.returncode == 1 and "Cannot locate specified Dockerfile" in missing.stderr


def test_commit_keeps_owners_modes_and_hard_links(daemon, dockyard, unique, tmp_path):
    name = unique("links")
    script = "echo x > /a; ln /a /b; chown 5:6 /a; chmod 4751 /a; mkdir /d; chmod 1777 /d"
    assert dockyard("run", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    tag = unique("linked")
    assert dockyard("commit", name, tag).returncode == 0
    out = dockyard("run", "--rm", tag, "stat", "-c", "%i %h %u:%g %a", "/a", "/b", "/d").stdout
    a, b, d = out.splitlines()
    assert a == b and a.split()[1:] == ["2", "5:6", "4751"], out  # one inode, two names
    assert d.split()[2:] == ["0:0", "1777"]
    layer = image_config(daemon, tag)["RootFS"]["Layers"][-1].removeprefix("sha256:")
    with saved_layer(dockyard, tmp_path, tag, layer) as tar:
        assert tar.getmember("b").islnk() and tar.getmember("b").linkname == "a"
    dockyard("rm", name)
    dockyard("rmi", tag)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("platform=linux/arm64", "only linux/"),
        ("version=2", "BuildKit"),
        ("remote=git://example.invalid/x.git", "not git repositories"),
        ("networkmode=container:abc", "container:<name> is not supported"),
        (
            "ulimits=" + "%5B%7B%22Name%22%3A%22nofile%22%2C%22Soft%22%3A1%2C%22Hard%22%3A1%7D%5D",
            "ulimits",
        ),
        ("memory=1024", "Minimum memory limit"),
        ("t=Bad%20Tag", "invalid reference format"),
        ("cachefrom=%5B%22no-such-image-x%22%5D", "No such image"),
        ("buildargs=%5B1%5D", "buildargs must be a JSON object"),
    ],
)
def test_build_options_refused_before_the_stream(daemon, query, message):
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        data = b"FROM busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    resp = daemon.request(
        "POST", f"/build?{query}", body.getvalue(), {"Content-Type": "application/x-tar"}
    )
    assert resp.status == (404 if "No such image" in message else 400), resp.body
    assert message in resp.message


def _raw_build(daemon, members: list[tuple[tarfile.TarInfo, bytes]]):
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        data = b"FROM busybox\nCOPY . /ctx/\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for member, content in members:
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content) if content else None)
    return daemon.request(
        "POST", "/build", body.getvalue(), {"Content-Type": "application/x-tar"}, timeout=60
    )


def _tar(files: dict[str, bytes]) -> bytes:
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return body.getvalue()


def test_an_error_before_any_output_is_the_answers_status(daemon):
    """As dockerd: a Dockerfile that does not parse (400) or a context without one (500)
    is the answer's status and {"message"}, not a 200 stream with an error in it (compose
    and the docker CLI print it as "Error response from daemon: ...")."""
    ctype = {"Content-Type": "application/x-tar"}
    bad = daemon.request(
        "POST", "/build", _tar({"Dockerfile": b"FROM busybox\nFROBNICATE x\n"}), ctype
    )
    assert bad.status == 400, bad.body
    assert bad.message == "dockerfile parse error line 2: unknown instruction: FROBNICATE"
    none = daemon.request("POST", "/build", _tar({"a": b"x"}), ctype)
    assert none.status == 500, none.body
    assert none.message == "Cannot locate specified Dockerfile: Dockerfile"
    # once a step has printed, an error is the stream's (and the step's exit code)
    failed = daemon.request(
        "POST", "/build", _tar({"Dockerfile": b"FROM busybox\nRUN exit 5\n"}), ctype, timeout=60
    )
    assert failed.status == 200, failed.body
    last = json.loads(failed.body.splitlines()[-1])
    assert last["errorDetail"]["code"] == 5, failed.body
    cid = re.search(rb"Running in ([0-9a-f]{12})", failed.body).group(1).decode()
    daemon.request("DELETE", f"/containers/{cid}?force=1")


def test_hostile_context_archives_write_nothing_outside(daemon, tmp_path):
    target = tmp_path / "escaped"
    up = tarfile.TarInfo("../" * 12 + str(target).lstrip("/"))
    resp = _raw_build(daemon, [(up, b"x")])
    # refused before any output: the answer's status, as dockerd's
    assert resp.status == 400 and "outside of the build context" in resp.message, resp.body
    assert not target.exists()
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
    through = tarfile.TarInfo("link/escaped")
    resp = _raw_build(daemon, [(link, b""), (through, b"x")])
    assert not target.exists(), resp.body
    dev = tarfile.TarInfo("null")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    resp = _raw_build(daemon, [(dev, b"")])
    assert resp.status == 400 and resp.message, resp.body
    assert not list((daemon.data_root / "tmp").glob("build-*"))


def test_workdir_is_made_in_its_own_layer(daemon, dockyard, tmp_path, unique):
    ctx = write_context(
        tmp_path, {"Dockerfile": "FROM busybox\nWORKDIR /srv/made/here\nWORKDIR /etc\n"}
    )
    tag = unique("wd")
    assert build(dockyard, ctx, "-t", tag).returncode == 0
    info = image_config(daemon, tag)
    base = image_config(daemon, "busybox")["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == len(base) + 1  # /etc existed: no layer for it
    layer = info["RootFS"]["Layers"][-1].removeprefix("sha256:")
    with saved_layer(dockyard, tmp_path, tag, layer) as tar:
        assert tar.getnames() == ["srv", "srv/made", "srv/made/here"]
    out = dockyard("run", "--rm", "--workdir", "/", tag, "stat", "-c", "%u %a", "/srv/made/here")
    assert out.stdout == "0 755\n"
    dockyard("rmi", tag)
