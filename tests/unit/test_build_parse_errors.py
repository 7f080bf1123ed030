"""Dockerfile errors found before any step, worded as dockerd 20.10's classic builder
words them (its answers pinned here; tests/compat/test_build_parse_errors_on_dockerd.py
compares them with a running dockerd): `dockerfile parse error line N: ...`, and for an
instruction with missing arguments the same check dockerd makes at parse time."""

from __future__ import annotations

import pytest

from dockyard.engine.build import syntax
from dockyard.engine.build.syntax import DockerfileError

# (instruction after `FROM busybox\nRUN true\n`, dockerd's message for line 3)
BAD_INSTRUCTIONS = [
    ("FOO bar", "unknown instruction: FOO"),
    ("ENV", "ENV requires at least one argument"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ARG", "ARG requires at least one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ("SHELL", "SHELL requires at least one argument"),
    ("SHELL sh -c", "SHELL requires the arguments to be in JSON form"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("USER", "USER requires exactly one argument"),
    ("MAINTAINER", "MAINTAINER requires exactly one argument"),
    ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
    ("FROM", "FROM requires either one or three arguments"),
    ("FROM a b c d", "FROM requires either one or three arguments"),
    (
        "COPY a",
        "COPY requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    ),
    (
        "ADD a",
        "ADD requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    ),
    (
        "COPY",
        "COPY requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    ),
    ("ENV =x", "ENV names can not be blank"),
    ("LABEL =x", "LABEL names can not be blank"),
    ("ARG =x", "ARG names can not be blank"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --interval=abc CMD true", 'time: invalid duration "abc"'),
    ("HEALTHCHECK --retries=0 CMD true", "--retries must be at least 1 (not 0)"),
    ("HEALTHCHECK --retries=x CMD true", 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("COPY --nope=1 a b", "Unknown flag: nope"),
]


@pytest.mark.parametrize(("instruction", "message"), BAD_INSTRUCTIONS)
def test_a_bad_instruction_is_dockerds_parse_error_naming_its_line(instruction, message):
    with pytest.raises(DockerfileError) as err:
        syntax.parse(f"FROM busybox\nRUN true\n{instruction}\n")
    assert err.value.message == f"dockerfile parse error line 3: {message}"


def test_the_line_counts_blank_lines_comments_and_continuations():
    text = "FROM busybox\nRUN true \\\n  && true\n\n# a comment\n\nFOO bar\n"
    with pytest.raises(DockerfileError) as err:
        syntax.parse(text)
    assert err.value.message == "dockerfile parse error line 7: unknown instruction: FOO"


def test_errors_of_the_whole_file_name_no_line_as_dockerd():
    for text in ("\n", "# only a comment\n"):
        with pytest.raises(DockerfileError) as err:
            syntax.parse(text)
        assert err.value.message == "failed to parse Dockerfile: file with no instructions"


def test_a_grammar_error_dockerd_reports_without_a_line_gets_one_here():
    # dockerd: "failed to parse Dockerfile: ENV must have two arguments"; the line is
    # found and named, in dockerd's wording for the errors it places
    with pytest.raises(DockerfileError) as err:
        syntax.parse("FROM busybox\nRUN true\nENV a\n")
    assert err.value.message == "dockerfile parse error line 3: ENV must have two arguments"


def test_instructions_dockerd_takes_with_few_arguments_still_parse():
    # dockerd 20.10 accepts these (RUN with nothing fails when it runs, as there)
    instructions, _ = syntax.parse(
        "FROM busybox\nCMD\nENTRYPOINT\nRUN\nWORKDIR a b\nUSER a b\nARG a b\nCMD []\n"
        "HEALTHCHECK NONE\nHEALTHCHECK --interval=5s --retries=1 CMD true\n"
    )
    assert [i.cmd for i in instructions][-2:] == ["HEALTHCHECK", "HEALTHCHECK"]
    assert instructions[4].args == ["a b"]  # one argument: the rest of the line
