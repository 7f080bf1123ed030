import pytest

from dockyard.errors import InvalidParameter
from dockyard.image.changes import apply_changes


def test_cmd_and_entrypoint_forms():
    assert apply_changes({}, ["CMD echo hi"]) == {"Cmd": ["/bin/sh", "-c", "echo hi"]}
    assert apply_changes({}, ['CMD ["echo", "hi"]']) == {"Cmd": ["echo", "hi"]}
    assert apply_changes({}, ['ENTRYPOINT ["/bin/app", "-v"]'])["Entrypoint"] == ["/bin/app", "-v"]
    assert apply_changes({}, ["ENTRYPOINT /bin/app -v"])["Entrypoint"] == [
        "/bin/sh",
        "-c",
        "/bin/app -v",
    ]
    # Not valid JSON: shell form, like Docker.
    assert apply_changes({}, ["CMD [oops"])["Cmd"] == ["/bin/sh", "-c", "[oops"]


def test_entrypoint_resets_inherited_cmd_unless_cmd_given():
    base = {"Cmd": ["sh"]}
    assert apply_changes(base, ['ENTRYPOINT ["/x"]'])["Cmd"] is None
    out = apply_changes(base, ['CMD ["a"]', 'ENTRYPOINT ["/x"]'])
    assert out["Cmd"] == ["a"] and out["Entrypoint"] == ["/x"]
    assert base == {"Cmd": ["sh"]}  # input not mutated


def test_env_forms_and_substitution():
    out = apply_changes(
        {"Env": ["PATH=/usr/bin"]},
        [
            "ENV A 1 2",
            'ENV B="v 2" C=x\\ y',
            "ENV PATH=$PATH:/opt/bin",
            "ENV D=${B}-${NOPE:-dflt} E='$A'",
            "ENV A=new F=$A",
        ],
    )
    assert out["Env"] == [
        "PATH=/usr/bin:/opt/bin",
        "A=new",
        "B=v 2",
        "C=x y",
        "D=v 2-dflt",
        "E=$A",
        "F=1 2",  # same-line pairs see the environment from before the line
    ]


def test_expose_label_user_volume_workdir_stopsignal_onbuild():
    out = apply_changes(
        {},
        [
            "EXPOSE 80 53/udp 8000-8001",
            'LABEL a=b "c d"="e f"',
            "LABEL legacy value with spaces",
            "USER nobody:nogroup",
            "VOLUME /data /logs",
            'VOLUME ["/json"]',
            "WORKDIR /srv",
            "WORKDIR app/../app2",
            "STOPSIGNAL SIGQUIT",
            "onbuild RUN make",
        ],
    )
    assert out["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert out["Labels"] == {"a": "b", "c d": "e f", "legacy": "value with spaces"}
    assert out["User"] == "nobody:nogroup"
    assert out["Volumes"] == {"/data": {}, "/logs": {}, "/json": {}}
    assert out["WorkingDir"] == "/srv/app2"
    assert out["StopSignal"] == "SIGQUIT"
    assert out["OnBuild"] == ["RUN make"]


def test_healthcheck():
    out = apply_changes({}, ["HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/"])
    assert out["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://x/"],
        "Interval": 5_000_000_000,
        "Retries": 3,
    }
    assert apply_changes({}, ['HEALTHCHECK CMD ["true"]'])["Healthcheck"] == {
        "Test": ["CMD", "true"]
    }
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}


def test_blank_and_comment_lines_ignored():
    assert apply_changes({}, ["", "# comment", "  "]) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("FROM busybox", "from is not a valid change command"),
        ("RUN echo", "run is not a valid change command"),
        ("COPY a b", "copy is not a valid change command"),
        ("EXPOSE 80/foo", "invalid proto: foo"),
        ("EXPOSE abc", "invalid containerPort: abc"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV A=1 B", 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ],
)
def test_invalid_changes(change, message):
    with pytest.raises(InvalidParameter) as exc:
        apply_changes({}, [change])
    assert exc.value.message == message
