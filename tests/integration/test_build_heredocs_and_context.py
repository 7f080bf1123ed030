"""Heredocs as BuildKit runs them (a `#!` body runs as a file by its interpreter,
`<<-` strips tabs, COPY expands an unquoted body), and a context tar sent
straight to POST /build: the daemon applies .dockerignore only as dockerd's
classic builder does (the Dockerfile and .dockerignore leave the context when
its patterns name them; every other pattern is the client's to apply)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.integration.test_cli_build import build, steps_cached, write_context


def test_shebang_heredoc_runs_as_a_file_by_its_interpreter(dockyard, tmp_path, unique):
    dockerfile = """\
FROM busybox
RUN <<EOF
#!/bin/awk -f
BEGIN { print "awk ran this" > "/from-awk" }
EOF
RUN <<SCRIPT
#!/bin/sh
echo "$0" > /script-name
ls -l "$0" | cut -c1-10 > /script-mode
touch "$0" 2>/dev/null && echo writable > /script-ro || echo read-only > /script-ro
SCRIPT
RUN <<EOF
echo "plain heredoc in $0" > /plain
EOF
"""
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    tag = unique("shebang")
    proc = build(dockyard, ctx, "-t", tag)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = dockyard(
        "run", "--rm", tag, "sh", "-c",
        "cat /from-awk /script-name /script-mode /script-ro /plain; ls /dev/pipes 2>&1 || true",
    )  # fmt: skip
    lines = out.stdout.splitlines()
    # awk's program ran (sh would have failed on `BEGIN {`); the script was /dev/pipes/<name>,
    # executable and read-only; a body without #! is the shell's command string.
    assert lines[:5] == [
        "awk ran this",
        "/dev/pipes/SCRIPT",
        "-rwxr-xr-x",
        "read-only",
        "plain heredoc in /bin/sh",
    ], out.stdout
    assert "No such file" in lines[5]  # the script is not left in the image
    # a changed body is a changed step; the same body is cached
    again = build(dockyard, ctx, "-t", tag)
    assert steps_cached(again.stdout) == [True, True, True], again.stdout
    (ctx / "Dockerfile").write_text(dockerfile.replace("awk ran this", "awk ran that"))
    changed = build(dockyard, ctx, "-t", tag)
    assert steps_cached(changed.stdout) == [False, False, False], changed.stdout
    dockyard("rmi", tag)


def test_shebang_options_reach_the_interpreter_and_a_missing_one_fails(dockyard, tmp_path):
    # `#!/bin/sh -e`: the -e is the interpreter's; piped to `sh -c` the line would be a
    # comment and the build would go on past `false`.
    ctx = write_context(
        tmp_path,
        {"Dockerfile": "FROM busybox\nRUN <<EOF\n#!/bin/sh -e\nfalse\necho not reached\nEOF\n"},
    )
    proc = build(dockyard, ctx)
    assert proc.returncode != 0
    assert "returned a non-zero code: 1" in proc.stderr, proc.stderr
    assert "not reached" not in proc.stdout
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN <<EOF\n#!/no/such/interpreter\nx\nEOF\n")
    proc = build(dockyard, ctx)
    assert proc.returncode != 0
    assert "returned a non-zero code: 127" in proc.stderr, proc.stderr


def test_heredoc_chomp_and_copy_expansion(dockyard, tmp_path, unique):
    dockerfile = (
        "FROM busybox\n"
        "ARG NAME=world\n"
        "ENV GREETING=hello\n"
        "COPY <<EOF /expanded.txt\n"
        "$GREETING ${NAME} '$NAME' \\$NAME \"$NAME\"\n"
        "EOF\n"
        "COPY <<'EOF' /quoted.txt\n"
        "$GREETING ${NAME}\n"
        "EOF\n"
        "COPY <<-EOF /chomped.txt\n"
        "\tindented $NAME\n"
        "\t\ttwice\n"
        "EOF\n"
        "RUN <<-EOF\n"
        "\techo ran > /ran.txt\n"
        "EOF\n"
    )
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    tag = unique("hd")
    proc = build(dockyard, ctx, "-t", tag, "--build-arg", "NAME=there")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = dockyard(
        "run", "--rm", tag, "cat", "/expanded.txt", "/quoted.txt", "/chomped.txt", "/ran.txt"
    )
    assert out.stdout == (
        "hello there '$NAME' \\$NAME \"there\"\n$GREETING ${NAME}\nindented there\ntwice\nran\n"
    ), out.stdout
    # the expanded content is the cache key: another value copies again
    again = build(dockyard, ctx, "-t", tag, "--build-arg", "NAME=else")
    assert steps_cached(again.stdout)[:3] == [True, True, False], again.stdout
    dockyard("rmi", tag)


def context_tar(files: dict[str, str]) -> bytes:
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return body.getvalue()


def raw_build(daemon, tar: bytes, query: str = "") -> tuple[str, str]:
    """(image id, the stream's text) of a POST /build of that exact tar."""
    resp = daemon.request(
        "POST", "/build" + query, tar, {"Content-Type": "application/x-tar"}, timeout=120
    )
    assert resp.status == 200, resp.body
    image, text = "", []
    for line in resp.body.decode().splitlines():
        msg = json.loads(line)
        assert "errorDetail" not in msg, resp.body
        text.append(msg.get("stream", ""))
        image = (msg.get("aux") or {}).get("ID", image)
    return image, "".join(text)


IGNORED_CONTEXT = {
    "Dockerfile": "FROM busybox\nCOPY . /ctx/\nCOPY secret.txt /direct.txt\n",
    ".dockerignore": "secret.txt\nlogs\nDockerfile\n.dockerignore\n",
    "secret.txt": "still in the tar",
    "logs/a.log": "log",
    "kept.txt": "kept",
}


def listing(dockyard, image: str, path: str) -> list[str]:
    return sorted(dockyard("run", "--rm", image, "find", path).stdout.split())


def test_api_context_keeps_what_only_the_client_excludes(daemon, dockyard):
    image, _ = raw_build(daemon, context_tar(IGNORED_CONTEXT))
    # The daemon removed the Dockerfile and .dockerignore (its patterns name them);
    # the other patterns are the client's: files the tar holds are there to copy.
    assert listing(dockyard, image, "/ctx") == [
        "/ctx",
        "/ctx/kept.txt",
        "/ctx/logs",
        "/ctx/logs/a.log",
        "/ctx/secret.txt",
    ]
    assert dockyard("run", "--rm", image, "cat", "/direct.txt").stdout == "still in the tar"
    # Patterns that do not name them leave the Dockerfile and .dockerignore in place,
    # also under a -f name; `!` exceptions count.
    files = dict(IGNORED_CONTEXT)
    files[".dockerignore"] = "secret.txt\nbuild/*\n!build/Dockerfile.dev\n"
    files["build/Dockerfile.dev"] = files.pop("Dockerfile")
    image2, _ = raw_build(daemon, context_tar(files), "?dockerfile=build/Dockerfile.dev")
    assert listing(dockyard, image2, "/ctx") == [
        "/ctx",
        "/ctx/.dockerignore",
        "/ctx/build",
        "/ctx/build/Dockerfile.dev",
        "/ctx/kept.txt",
        "/ctx/logs",
        "/ctx/logs/a.log",
        "/ctx/secret.txt",
    ]
    files[".dockerignore"] = "build\n"
    image3, _ = raw_build(daemon, context_tar(files), "?dockerfile=build/Dockerfile.dev")
    assert "/ctx/build/Dockerfile.dev" not in listing(dockyard, image3, "/ctx")
    dockyard("rmi", image, image2, image3)


def test_cli_context_still_leaves_ignored_files_out(dockyard, tmp_path: Path, unique):
    ctx = write_context(tmp_path, dict(IGNORED_CONTEXT))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
    tag = unique("cliignore")
    proc = build(dockyard, ctx, "-t", tag)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert listing(dockyard, tag, "/ctx") == ["/ctx", "/ctx/kept.txt"]
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY secret.txt /\n")
    refused = build(dockyard, ctx)
    assert refused.returncode != 0
    assert "file not found in build context or excluded by .dockerignore" in refused.stderr
    dockyard("rmi", tag)


def test_hostile_context_entries_are_refused(daemon):
    """The context reader's own checks: names out of the context, a link used as a
    directory, device nodes, a truncated archive, a bad header checksum."""

    def members(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
        body = io.BytesIO()
        with tarfile.open(fileobj=body, mode="w", format=tarfile.GNU_FORMAT) as tar:
            df = tarfile.TarInfo("Dockerfile")
            df.size = len(b"FROM busybox\n")
            tar.addfile(df, io.BytesIO(b"FROM busybox\n"))
            for info, data in entries:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if data else None)
        return body.getvalue()

    def refused(tar: bytes) -> str:
        resp = daemon.request(
            "POST", "/build", tar, {"Content-Type": "application/x-tar"}, timeout=60
        )
        text = resp.body.decode(errors="replace")
        assert resp.status != 200 or "errorDetail" in text, text
        return text

    up = tarfile.TarInfo("a/../../escape")
    assert "outside of the build context" in refused(members((up, b"x")))
    link = tarfile.TarInfo("etc")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    below = tarfile.TarInfo("etc/dockyard-build-escape")
    assert "is not a directory" in refused(members((link, b""), (below, b"x")))
    assert not Path("/etc/dockyard-build-escape").exists()
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    assert "outside of the build context" in refused(members((hard, b"")))
    blk = tarfile.TarInfo("disk")
    blk.type, blk.devmajor, blk.devminor = tarfile.BLKTYPE, 8, 0
    assert "device node" in refused(members((blk, b"")))
    whole = members((tarfile.TarInfo("big"), b"y" * 4096))
    assert "unexpected end" in refused(whole[: 512 * 3 + 100])
    broken = bytearray(whole)
    broken[512 * 2 + 10] ^= 0xFF  # a name byte of the second header
    assert "checksum" in refused(bytes(broken))
    assert not list((daemon.data_root / "tmp").glob("build-*"))
