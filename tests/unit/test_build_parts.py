"""The builder's pure parts: Dockerfile syntax checks, word expansion, .dockerignore
rules, the COPY checksum, and which upper-dir entries are only mount stubs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.dockerignore import Matcher, read_patterns
from dockyard.engine.build import syntax, words
from dockyard.engine.build.sources import Entry, Ownership, checksum
from dockyard.errors import InvalidParameter
from dockyard.image.mount_stubs import is_empty, mount_stubs


def test_parse_reports_the_line():
    with pytest.raises(
        InvalidParameter, match=r"^dockerfile parse error line 3: unknown instruction: FOO$"
    ):
        syntax.parse("FROM a\nRUN x\nFOO bar\n")
    with pytest.raises(
        InvalidParameter, match=r"^dockerfile parse error line 2: unterminated heredoc"
    ):
        syntax.parse("FROM a\nRUN <<EOF\nabc\n")
    with pytest.raises(
        InvalidParameter, match=r"^dockerfile parse error line 1: Unknown flag: nope$"
    ):
        syntax.parse("COPY --nope=1 a b\n")
    with pytest.raises(InvalidParameter, match="requires BuildKit"):
        syntax.parse("FROM a\nRUN --mount=type=cache,target=/x true\n")
    with pytest.raises(InvalidParameter, match="ONBUILD ONBUILD"):
        syntax.parse("FROM a\nONBUILD ONBUILD RUN x\n")


def test_parse_keeps_flags_heredocs_and_escape():
    instructions, escape = syntax.parse(
        "# escape=`\nFROM a AS b\nCOPY --from=b --chown=1:2 x /y\nRUN <<EOF\necho hi\nEOF\n"
    )
    assert escape == "`"
    copy = instructions[1]
    assert copy.flags == {"from": "b", "chown": "1:2"} and copy.args == ["x", "/y"]
    assert instructions[2].heredocs[0].content == "echo hi\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$A ${A}", "1 1"),
        ("${UNSET:-dflt} ${EMPTY:-e} ${EMPTY-set}", "dflt e "),
        ("${A:+alt} ${UNSET:+alt}", "alt "),
        ("'$A' \"$A\" \\$A", "$A 1 $A"),
        ('"a b"c', "a bc"),
    ],
)
def test_word_expansion(text, expected):
    assert words.word(text, {"A": "1", "EMPTY": ""}) == expected


def test_words_split_and_escape_token():
    env = {"A": "x y"}
    assert words.words('a "b c" $A ${NONE}', env) == ["a", "b c", "x", "y"]
    assert words.words("a` b", {}, escape="`") == ["a b"]
    with pytest.raises(InvalidParameter, match="is not allowed to be unset"):
        words.word("${REQ?}", {})
    with pytest.raises(InvalidParameter, match="matching double-quote"):
        words.word('"open', {})


def test_dockerignore_rules():
    m = Matcher(read_patterns("# c\nlogs/*\n!logs/keep.log\n/secret\n**/*.tmp\nbuild\n"))
    assert m.excluded("logs/a.log")
    assert not m.excluded("logs/keep.log")
    assert m.excluded("secret")
    assert m.excluded("deep/er/x.tmp") and m.excluded("x.tmp")
    assert m.excluded("build/out/bin")  # a parent directory matched
    assert not m.excluded("src/main.c")
    assert not Matcher(read_patterns("*.md\n")).excluded("docs/a.md")  # * stays in its directory


def test_checksum_covers_content_mode_owner_not_mtime(tmp_path: Path):
    f = tmp_path / "f"
    f.write_text("one")

    def digest(own: Ownership | None = None) -> str:
        return checksum([Entry("f", str(f), os.stat(f))], own or Ownership())

    first = digest()
    os.utime(f, (1, 1))
    assert digest() == first
    f.chmod(0o600)
    assert digest() != first
    f.chmod(0o644)
    assert digest(Ownership(uid=1, gid=1)) != digest()
    f.write_text("two")
    assert digest() != first


def test_mount_stubs_only_when_absent_from_the_image(tmp_path: Path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (upper / "etc").mkdir(parents=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (upper / "etc" / name).write_text("")
    (upper / "proc").mkdir()
    stubs = mount_stubs(str(upper), [str(lower)])
    # etc/hosts was in the image: a change (emptied), not a stub; etc exists below
    assert stubs == {"etc/hostname", "etc/resolv.conf", "proc"}
    assert not is_empty(str(upper), stubs)
    scratch = tmp_path / "scratch"
    (scratch / "etc").mkdir(parents=True)
    (scratch / "etc" / "hosts").write_text("")
    stubs = mount_stubs(str(scratch), [])
    assert stubs == {"etc/hosts", "etc"}
    assert is_empty(str(scratch), stubs)
