"""Go text/template (+ docker/cli functions) as `docker ... --format` prints it."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from dockyard.cli.commands.images import HEADERS as IMAGES_HEADERS
from dockyard.cli.commands.ps import HEADERS as PS_HEADERS
from dockyard.cli.gotemplate import (
    TemplateError,
    format_table,
    parse_table,
    render,
    render_header,
    tabwrite,
)

INSPECT = {
    "Id": "3f4ab8c1d2e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f",
    "Created": "2026-11-28T04:00:00.123456789Z",
    "Path": "nginx",
    "Args": ["-g", "daemon off;"],
    "State": {
        "Status": "running",
        "Running": True,
        "Paused": False,
        "Pid": 1234,
        "ExitCode": 0,
        "StartedAt": "2026-11-28T04:00:01Z",
        "Health": None,
    },
    "Name": "/web",
    "RestartCount": 0,
    "Config": {
        "Hostname": "3f4ab8c1d2e5",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin", "NGINX_VERSION=1.27.0"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Image": "nginx:latest",
        "Volumes": None,
        "Labels": {"a.b": "c", "maintainer": "NGINX <docker-maint@nginx.com>"},
        "ExposedPorts": {"80/tcp": {}},
    },
    "NetworkSettings": {
        "Networks": {
            "bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1"},
            "app": {"IPAddress": "10.0.0.5", "Gateway": "10.0.0.1"},
        },
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
    },
    "HostConfig": {"Memory": 0, "NanoCpus": 1500000000, "CpuShares": 0},
}


def r(template: str, data: object = None) -> str:
    return render(template, copy.deepcopy(INSPECT) if data is None else data)


# ---------------------------------------------------------------- fields


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.State.Pid}}", "1234"),
        ("{{.State.Running}}", "true"),
        ("{{.State.Paused}}", "false"),
        ("{{.State.Status}}", "running"),
        ("{{.Name}}", "/web"),
        ("{{.Id}}", INSPECT["Id"]),
        ("{{.HostConfig.NanoCpus}}", "1500000000"),
        ("{{.Config.Env}}", "[PATH=/usr/local/sbin:/usr/local/bin NGINX_VERSION=1.27.0]"),
        ("{{.Args}}", "[-g daemon off;]"),
        ("{{.Config.Labels}}", "map[a.b:c maintainer:NGINX <docker-maint@nginx.com>]"),
        ("{{.Config.ExposedPorts}}", "map[80/tcp:map[]]"),
        ("{{.Missing}}", "<no value>"),
        ("{{.Missing.Deeper}}", "<no value>"),
        ("{{.State.Missing}}", "<no value>"),
        ("{{.State.Health}}", "<nil>"),
        ("{{$.Name}}", "/web"),
        ("{{with .State}}{{.Pid}} {{$.Name}}{{end}}", "1234 /web"),
        ('{{(index .NetworkSettings.Networks "bridge").IPAddress}}', "172.17.0.2"),
        ("{{.NetworkSettings.Networks.bridge.IPAddress}}", "172.17.0.2"),
        ("name={{.Name}} pid={{.State.Pid}}\n", "name=/web pid=1234\n"),
    ],
)
def test_fields(template: str, expected: str) -> None:
    assert r(template) == expected


def test_dot_and_literals() -> None:
    assert render("{{.}}", "x") == "x"
    assert render("{{.}}", 3) == "3"
    assert render("{{.}}", None) == "<nil>"
    assert render("{{.}}", [1, "a", None, True]) == "[1 a <nil> true]"
    assert (
        render("{{\"hi\"}} {{`raw\\n`}} {{3}} {{-3}} {{true}} {{'a'}}", {})
        == "hi raw\\n 3 -3 true 97"
    )
    assert render("{{0x1F}} {{1e3}} {{1.5}} {{1_000}}", {}) == "31 1000 1.5 1000"
    assert render('{{"a\\tb\\u00e9"}}', {}) == "a\tbé"


def test_float_formatting_like_go() -> None:
    assert render("{{.}}", 1000000.0) == "1e+06"
    assert render("{{.}}", 123456.0) == "123456"
    assert render("{{.}}", 1.5) == "1.5"
    assert render("{{.}}", 0.0001) == "0.0001"
    assert render("{{.}}", 0.00001) == "1e-05"
    assert render("{{.}}", 1234567.5) == "1.2345675e+06"
    assert render("{{json .}}", 1000000.0) == "1000000"
    assert render("{{json .}}", 1e21) == "1e+21"
    assert render("{{json .}}", 1e-7) == "1e-7"
    assert render("{{json .}}", 2.5) == "2.5"


# ---------------------------------------------------------------- json


def test_json() -> None:
    assert r("{{json .Config.Env}}") == (
        '["PATH=/usr/local/sbin:/usr/local/bin","NGINX_VERSION=1.27.0"]'
    )
    assert r("{{json .State}}") == (
        '{"Status":"running","Running":true,"Paused":false,"Pid":1234,"ExitCode":0,'
        '"StartedAt":"2026-11-28T04:00:01Z","Health":null}'
    )
    # docker's json func disables HTML escaping (SetEscapeHTML(false))
    assert r("{{json .Config.Labels}}") == (
        '{"a.b":"c","maintainer":"NGINX <docker-maint@nginx.com>"}'
    )
    assert r("{{.Config.Cmd | json}}") == '["nginx","-g","daemon off;"]'
    assert r("{{json .Config.Volumes}}") == "null"
    assert r("{{json .Missing}}") == "null"
    assert render("{{json .}}", {"s": 'q"\\\n\t\x01\u2028é'}) == (
        '{"s":"q\\"\\\\\\n\\t\\u0001\\u2028é"}'
    )
    assert r("{{json .Config}}").startswith('{"Hostname":"3f4ab8c1d2e5","Env":[')


# ---------------------------------------------------------------- actions


def test_range() -> None:
    assert r("{{range .Config.Env}}{{println .}}{{end}}") == (
        "PATH=/usr/local/sbin:/usr/local/bin\nNGINX_VERSION=1.27.0\n"
    )
    # maps iterate in sorted key order
    assert (
        r("{{range $k,$v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}\n{{end}}")
        == "app 10.0.0.5\nbridge 172.17.0.2\n"
    )
    assert r("{{range $i, $e := .Args}}{{$i}}:{{$e}};{{end}}") == "0:-g;1:daemon off;;"
    assert r("{{range $e := .Args}}[{{$e}}]{{end}}") == "[-g][daemon off;]"
    assert r("{{range .NetworkSettings.Networks}}{{.Gateway}} {{end}}") == "10.0.0.1 172.17.0.1 "
    assert r("{{range .Config.Volumes}}x{{else}}none{{end}}") == "none"
    assert r("{{range .Missing}}x{{else}}none{{end}}") == "none"
    assert r("{{range .HostConfig.Missing}}x{{end}}") == ""
    assert render("{{range .}}{{.}}{{end}}", 3) == "012"
    assert (
        r(
            "{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{(index $conf 0).HostPort}}{{end}}"
        )
        == "80/tcp -> 8080"
    )


def test_break_continue() -> None:
    t = "{{range .}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}"
    assert render(t, [1, 2, 3, 4, 5]) == "13"


def test_if_else() -> None:
    assert r('{{if eq .State.Status "running"}}up{{else}}down{{end}}') == "up"
    assert r('{{if ne .State.Status "running"}}up{{else}}down{{end}}') == "down"
    assert r("{{if .State.Paused}}p{{else if .State.Running}}r{{else}}x{{end}}") == "r"
    assert r("{{if .Missing}}a{{else}}b{{end}}") == "b"
    assert r("{{if .Config.Volumes}}a{{else}}b{{end}}") == "b"
    assert r("{{if .Config.Env}}a{{end}}") == "a"
    assert r("{{if not .State.Paused}}ok{{end}}") == "ok"
    assert r("{{if and .State.Running (gt .State.Pid 0)}}ok{{end}}") == "ok"
    assert r("{{if or .State.Paused .Missing}}a{{else}}b{{end}}") == "b"
    assert r("{{or .Missing .Name}}") == "/web"
    assert r("{{and .Name .State.Pid}}") == "1234"
    assert r('{{if eq .State.Status "exited" "running"}}y{{end}}') == "y"


def test_else_with() -> None:
    t = "{{with .State.Health}}h{{else with .State}}{{.Status}}{{else}}none{{end}}"
    assert r(t) == "running"
    assert render(t, {"State": {}}) == "none"


def test_with() -> None:
    assert r("{{with .State.Health}}{{.Status}}{{else}}no healthcheck{{end}}") == "no healthcheck"
    assert r("{{with .State}}{{.Status}}{{end}}") == "running"
    assert r("{{with $s := .State}}{{$s.Pid}}{{end}}") == "1234"


def test_variables() -> None:
    assert r("{{$x := .Name}}{{$x}}") == "/web"
    assert r("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}") == "2"
    assert r("{{$n := len .Args}}{{$n}}") == "2"


def test_trim_markers_and_comments() -> None:
    assert r("a  {{- .Name -}}  b") == "a/webb"
    assert r("{{range .Args -}}\n  {{.}}\n{{- end}}") == "-gdaemon off;"
    assert r("x {{/* comment */}} y") == "x  y"
    assert r("x {{- /* comment */ -}} y") == "xy"
    assert r("{{-3}}") == "-3"


def test_define_template_block() -> None:
    assert r(
        '{{define "ip"}}{{.IPAddress}}{{end}}{{template "ip" .NetworkSettings.Networks.app}}'
    ) == ("10.0.0.5")
    assert r('{{block "n"  .Name}}[{{.}}]{{end}}') == "[/web]"


# ---------------------------------------------------------------- functions


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{index .Config.Labels "a.b"}}', "c"),
        # Labels is a map[string]string in docker: a missing key is ""
        ('{{index .Config.Labels "nope"}}', ""),
        ('{{index .NetworkSettings.Networks "nope"}}', "<no value>"),
        ("{{.Config.Labels.nope}}", "<no value>"),
        ("{{index .Args 1}}", "daemon off;"),
        ('{{index .NetworkSettings.Ports "80/tcp" 0 "HostPort"}}', "8080"),
        ("{{upper .Name}}", "/WEB"),
        ("{{lower .State.Status}}", "running"),
        ('{{title "hello docker-world"}}', "Hello Docker-World"),
        ('{{join .Config.Cmd " "}}', "nginx -g daemon off;"),
        ('{{split "a:b:c" ":"}}', "[a b c]"),
        ('{{index (split .Config.Image ":") 0}}', "nginx"),
        ("{{pad .State.Status 2 1}}|", "  running |"),
        ('{{pad "" 2 1}}|', "|"),
        ("{{truncate .Id 12}}", "3f4ab8c1d2e5"),
        ("{{truncate .Name 10}}", "/web"),
        ("{{len .Config.Env}}", "2"),
        ("{{len .Name}}", "4"),
        ("{{len .Config.Labels}}", "2"),
        ('{{printf "%s-%d" .Name 3}}', "/web-3"),
        (
            '{{printf "%v|%5s|%-5s|%05d|%x|%q|%t" .Args "a" "b" 42 255 "q" true}}',
            '[-g daemon off;]|    a|b    |00042|ff|"q"|true',
        ),
        ('{{printf "%.2f %e %g" 3.14159 1234.5 0.5}}', "3.14 1.234500e+03 0.5"),
        ('{{printf "%d"}}', "%!d(MISSING)"),
        ('{{printf "%d" "x"}}', "%!d(string=x)"),
        ('{{printf "a" 1}}', "a%!(EXTRA int=1)"),
        ('{{printf "%s" .State.Pid}}', "%!s(int=1234)"),
        ('{{printf "100%%"}}', "100%"),
        ("{{print .Name .State.Pid 1 2}}", "/web1234 1 2"),
        ("{{println .Name 1}}", "/web 1\n"),
        ("{{slice .Name 1}}", "web"),
        ("{{slice .Args 0 1}}", "[-g]"),
        ("{{eq .State.Pid 1234}}", "true"),
        ("{{lt .State.Pid 2000}} {{le 1 1}} {{gt 2 1}} {{ge 1 2}}", "true true true false"),
        ('{{lt "a" "b"}}', "true"),
        ("{{not .Missing}}", "true"),
        ('{{html "<a&b>"}}', "&lt;a&amp;b&gt;"),
        ('{{.Name | printf "%s!"}}', "/web!"),
    ],
)
def test_functions(template: str, expected: str) -> None:
    assert r(template) == expected


def test_pipeline_final_argument() -> None:
    assert r('{{.Name | printf "%s-%s" "x"}}') == "x-/web"
    assert r("{{.Config.Env | len}}") == "2"
    assert r('{{split .Config.Image ":" | json}}') == '["nginx","latest"]'
    assert r('{{(split .Config.Image ":") | len}}') == "2"
    # the piped value is the *last* argument: join(",", Cmd) is a type error, as in Go
    with pytest.raises(TemplateError, match=r"expected \[\]string; got string"):
        r('{{.Config.Cmd | join ","}}')


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{foo .Name}}", 'template: :1: function "foo" not defined'),
        ("{{.Name", "template: :1: unclosed action"),
        ("{{if .Name}}x", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{}}", "template: :1: missing value for command"),
        ("{{.Name | 3}}", "template: :1: non executable command in pipeline stage 2"),
        ('{{"x}}', "template: :1: unterminated quoted string"),
        ("{{/* x", "template: :1: unclosed comment"),
        ("{{)}}", "template: :1: unexpected right paren U+0029 ')'"),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("line1\n{{bad}}", 'template: :2: function "bad" not defined'),
        ("{{.Name ^ 1}}", 'template: :1: unexpected "^" in operand'),
    ],
)
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        r(template)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{.Name.Foo}}",
            'template: :1:2: executing "" at <.Name.Foo>: can\'t evaluate field Foo in type string',
        ),
        (
            "{{.State.Health.Status}}",
            'template: :1:2: executing "" at <.State.Health.Status>: '
            "nil pointer evaluating interface {}.Status",
        ),
        (
            "{{index .Args 5}}",
            'template: :1:2: executing "" at <index .Args 5>: '
            "error calling index: index out of range: 5",
        ),
        (
            "{{join .Args}}",
            'template: :1:2: executing "" at <join .Args>: wrong number of args for join: want 2 got 1',
        ),
        (
            "{{upper .State.Pid}}",
            'template: :1:2: executing "" at <upper .State.Pid>: '
            "wrong type for value; expected string; got int",
        ),
        (
            "{{eq .Name 1}}",
            'template: :1:2: executing "" at <eq .Name 1>: '
            "error calling eq: incompatible types for comparison",
        ),
        ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
        (
            '{{"a" "b"}}',
            'template: :1:2: executing "" at <"a">: can\'t give argument to non-function "a"',
        ),
        (
            '{{template "nope"}}',
            'template: :1:2: executing "" at <{{template "nope"}}>: no such template "nope"',
        ),
    ],
)
def test_exec_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        r(template)
    if "no such template" in message:
        assert str(exc.value).endswith('no such template "nope"')
    else:
        assert str(exc.value) == message


def test_template_error_is_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


# ---------------------------------------------------------------- tables


PS_ROWS = [
    {
        "ID": "3f4ab8c1d2e5",
        "Image": "nginx",
        "Command": '"/docker-entrypoint.…"',
        "RunningFor": "2 minutes ago",
        "Status": "Up 2 minutes",
        "Ports": "0.0.0.0:8080->80/tcp",
        "Names": "web",
        "Labels": "a=b",
    },
    {
        "ID": "9a8b7c6d5e4f",
        "Image": "redis:7-alpine",
        "Command": '"docker-entrypoint.s…"',
        "RunningFor": "About an hour ago",
        "Status": "Exited (0) 5 minutes ago",
        "Ports": "",
        "Names": "cache",
        "Labels": "",
    },
]


def test_parse_table() -> None:
    assert parse_table("table {{.ID}}\\t{{.Names}}") == (True, "{{.ID}}\t{{.Names}}")
    assert parse_table("table") == (True, "")
    assert parse_table("{{.ID}}\\n") == (False, "{{.ID}}\n")
    assert parse_table("  {{.ID}}  ") == (False, "{{.ID}}")
    assert parse_table("json") == (False, "{{json .}}")


def test_ps_default_table() -> None:
    out = format_table(
        "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}",
        PS_ROWS,
        PS_HEADERS,
    )
    assert out == (
        "CONTAINER ID   IMAGE            COMMAND                  CREATED             "
        "STATUS                     PORTS                  NAMES\n"
        '3f4ab8c1d2e5   nginx            "/docker-entrypoint.…"   2 minutes ago       '
        "Up 2 minutes               0.0.0.0:8080->80/tcp   web\n"
        '9a8b7c6d5e4f   redis:7-alpine   "docker-entrypoint.s…"   About an hour ago   '
        "Exited (0) 5 minutes ago                          cache\n"
    )


def test_table_min_width_and_single_column() -> None:
    out = format_table("table {{.ID}}\\t{{.Names}}", PS_ROWS, PS_HEADERS)
    assert out == "CONTAINER ID   NAMES\n3f4ab8c1d2e5   web\n9a8b7c6d5e4f   cache\n"
    # short cells still get the minimum width 10 (incl. padding)
    out = format_table("table {{.Names}}\\t{{.Labels}}", PS_ROWS, PS_HEADERS)
    assert out == "NAMES     LABELS\nweb       a=b\ncache     \n"
    out = format_table("table {{.Names}}", PS_ROWS, PS_HEADERS)
    assert out == "NAMES\nweb\ncache\n"


def test_table_header_functions_keep_titles() -> None:
    # docker's HeaderFunctions: upper/json/... leave the column title intact
    assert render_header("{{upper .Names}}\t{{json .Labels}}", PS_HEADERS) == "NAMES\tLABELS"
    assert render_header("{{truncate .ID 3}}", PS_HEADERS) == "CONTAINER ID"
    assert render_header("{{.ID}}", IMAGES_HEADERS) == "IMAGE ID"
    assert render_header("{{.RunningFor}}", {}) == "RUNNING FOR"
    out = format_table("table {{upper .Names}}\\t{{truncate .ID 4}}", PS_ROWS, PS_HEADERS)
    assert out == "NAMES     CONTAINER ID\nWEB       3f4a\nCACHE     9a8b\n"


def test_table_header_errors_are_ignored() -> None:
    # docker ignores header execution errors: the header keeps what was rendered
    assert render_header("{{.Names}}\t{{.Names.Foo}}", PS_HEADERS) == "NAMES\t"


def test_row_errors_raise() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Foo in type string"):
        format_table("table {{.Names.Foo}}", PS_ROWS, PS_HEADERS)


def test_non_table_format_rows() -> None:
    assert format_table("{{.Names}}: {{.Status}}", PS_ROWS) == (
        "web: Up 2 minutes\ncache: Exited (0) 5 minutes ago\n"
    )
    assert format_table("{{.Names}}\\t{{.ID}}", PS_ROWS[:1]) == "web\t3f4ab8c1d2e5\n"


def test_images_table() -> None:
    rows = [
        {
            "Repository": "nginx",
            "Tag": "latest",
            "ID": "a1b2c3d4e5f6",
            "CreatedSince": "2 weeks ago",
            "Size": "192MB",
        },
        {
            "Repository": "<none>",
            "Tag": "<none>",
            "ID": "0f9e8d7c6b5a",
            "CreatedSince": "3 months ago",
            "Size": "7.8MB",
        },
    ]
    out = format_table(
        "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}",
        rows,
        IMAGES_HEADERS,
    )
    assert out == (
        "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE\n"
        "nginx        latest    a1b2c3d4e5f6   2 weeks ago    192MB\n"
        "<none>       <none>    0f9e8d7c6b5a   3 months ago   7.8MB\n"
    )


def test_tabwrite() -> None:
    assert tabwrite([["a", "bb"], ["ccc", "d"]]) == "a         bb\nccc       d\n"
    assert tabwrite("x\ty\n", minwidth=0, padding=1) == "x y\n"
    # non-contiguous columns are aligned separately (elastic tabstops)
    assert tabwrite("aaaa\tb\tc\nshort\n1\t2\t3\n", minwidth=0, padding=1) == (
        "aaaa b c\nshort\n1 2 3\n"
    )
    # trailing cell (no terminating tab) does not widen the column
    assert tabwrite("a\tlonglonglonglong\nbb\tc\n", minwidth=0, padding=1) == (
        "a  longlonglonglong\nbb c\n"
    )
    # wide characters count double (go-runewidth)
    assert tabwrite("日本\tx\nab\ty\n", minwidth=0, padding=1) == "日本 x\nab   y\n"


def test_import_is_light() -> None:
    code = (
        "import sys; import dockyard.cli.gotemplate; "
        "heavy = {'json', 'decimal', 'unicodedata', 'urllib.parse', 'dataclasses'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
