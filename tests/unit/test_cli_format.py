"""Human durations, sizes and the rows `ps` and `images` print, as docker renders them."""

from __future__ import annotations

import pytest

from dockyard.cli.commands.images import image_rows
from dockyard.cli.commands.logs import api_timestamp
from dockyard.cli.commands.ps import container_row
from dockyard.cli.formatting import (
    Formatter,
    bytes_size,
    ellipsis,
    format_ports,
    go_quote,
    human_duration,
    human_size,
    parse_time,
    short_id,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1, "1 second"),
        (5, "5 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60 + 59, "59 minutes"),
        (3600, "About an hour"),
        (5399, "About an hour"),
        (5400, "2 hours"),  # Duration.Round(time.Hour) rounds half up
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1200, "1.2kB"),
        (4_260_000, "4.26MB"),
        (4_264_999, "4.26MB"),
        (1_234_567_890, "1.23GB"),
        (999_999, "1e+03kB"),  # Go's %.3g rounds up into the exponent too
    ],
)
def test_human_size(size, text):
    assert human_size(size) == text


def test_bytes_size():
    assert bytes_size(2 * 1024**3) == "2GiB"
    assert bytes_size(2088546304) == "1.945GiB"


def test_short_id_and_ellipsis_and_quote():
    assert short_id("sha256:" + "a" * 64) == "a" * 12
    assert ellipsis("x" * 25, 20) == "x" * 19 + "…"
    assert go_quote('sh -c "echo\thi"') == '"sh -c \\"echo\\thi\\""'


def test_ports():
    ports = [
        {"PrivatePort": 443, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
    ]
    assert format_ports(ports) == "443/tcp, 0.0.0.0:8080->80/tcp, :::8080->80/tcp"


def test_parse_time_rfc3339_nanoseconds():
    assert parse_time("2013-01-02T13:23:37.123456789Z") == pytest.approx(1357133017.123456)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time(1357133017) == 1357133017.0


def test_container_row():
    now = 1_700_000_000
    row = container_row(
        {
            "Id": "f" * 64,
            "Names": ["/web", "/other/link"],
            "Image": "sha256:" + "b" * 64,
            "Command": "nginx -g 'daemon off;'",
            "Created": now - 7200,
            "Status": "Exited (0) 3 seconds ago",
            "SizeRw": 1200,
            "SizeRootFs": 4_260_000,
            "Labels": {"b": "2", "a": "1"},
        },
        trunc=True,
        now=now,
    )
    assert row["ID"] == "f" * 12
    assert row["Image"] == "b" * 12
    assert row["Command"] == '"nginx -g \'daemon of…"'
    assert row["RunningFor"] == "2 hours ago"
    assert row["Names"] == "web"
    assert row["Size"] == "1.2kB (virtual 4.26MB)"
    assert row["Labels"] == "a=1,b=2"


def test_image_rows():
    img = {
        "Id": "sha256:" + "c" * 64,
        "RepoTags": ["busybox:latest", "localhost:5000/busybox:1"],
        "RepoDigests": ["busybox@sha256:" + "d" * 64],
        "Created": 1_700_000_000 - 86400 * 3,
        "Size": 4_261_000,
    }
    rows = image_rows(img, trunc=True, now=1_700_000_000)
    assert [(r["Repository"], r["Tag"]) for r in rows] == [
        ("busybox", "latest"),
        ("localhost:5000/busybox", "1"),
    ]
    assert rows[0]["ID"] == "c" * 12
    assert rows[0]["CreatedSince"] == "3 days ago"
    assert rows[0]["Size"] == "4.26MB"
    assert rows[0]["Digest"] == "sha256:" + "d" * 64
    dangling = image_rows({"Id": "sha256:" + "e" * 64, "RepoTags": ["<none>:<none>"]}, True)
    assert (dangling[0]["Repository"], dangling[0]["Tag"]) == ("<none>", "<none>")


def test_images_table_layout():
    rows = [
        {
            "Repository": "busybox",
            "Tag": "latest",
            "ID": "c" * 12,
            "CreatedSince": "3 days ago",
            "Size": "4.26MB",
        },
    ]
    out = Formatter(
        "", "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
        {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "Size": "SIZE"},
    ).render(rows)  # fmt: skip
    assert out == (
        "REPOSITORY   TAG       IMAGE ID       CREATED      SIZE\n"
        "busybox      latest    cccccccccccc   3 days ago   4.26MB\n"
    )


def test_custom_format_and_table_format():
    rows = [{"ID": "abc", "Names": "web"}]
    assert Formatter("{{.ID}}:{{.Names}}", "", {}).render(rows) == "abc:web\n"
    out = Formatter("table {{.ID}}\\t{{.Names}}", "", {"ID": "CONTAINER ID", "Names": "NAMES"})
    assert out.render(rows) == "CONTAINER ID   NAMES\nabc            web\n"


def test_logs_since_forms():
    assert api_timestamp("10m", now=1000.0) == "400.000000000"
    assert api_timestamp("1357133017") == "1357133017"
    assert api_timestamp("2013-01-02T13:23:37Z") == "1357133017.000000000"
    # to the nanosecond, as `logs -t` prints a line's time (docker's RFC3339Nano)
    assert api_timestamp("2026-11-29T03:45:43.975311325Z") == "1795923943.975311325"
    assert api_timestamp("2013-01-02T14:23:37.5+01:00") == "1357133017.500000000"
    assert api_timestamp("2013-01-02T13:23:37.1234567891Z") == "1357133017.123456789"


def test_fast_table_path_matches_the_template_engine():
    from dockyard.cli import gotemplate
    from dockyard.cli.commands.ps import DEFAULT_TABLE, HEADERS, container_row

    now = 1_700_000_000
    containers = [
        {"Id": "a" * 64, "Names": ["/web"], "Image": "busybox", "Command": "sleep 1000000000000000000",
         "Created": now - 5, "Status": "Up 5 seconds",
         "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]},
        {"Id": "b" * 64, "Names": ["/a-much-longer-name-than-the-header"], "Image": "sha256:" + "c" * 64,
         "Command": "", "Created": now - 86400 * 20, "Status": "Created", "SizeRw": 0},
    ]  # fmt: skip
    rows = [container_row(c, trunc=True, now=now) for c in containers]
    for fmt in ("table", "table {{.ID}}\\t{{.Names}}", "{{.ID}}", "{{.Names}}\\t{{.Status}}"):
        full = "table " + DEFAULT_TABLE if fmt == "table" else fmt
        expected = gotemplate.format_table(full, rows, HEADERS)
        assert Formatter(fmt, DEFAULT_TABLE, HEADERS).render(rows) == expected, fmt
    assert Formatter("table", DEFAULT_TABLE, HEADERS).render([]) == gotemplate.format_table(
        "table " + DEFAULT_TABLE, [], HEADERS
    )
