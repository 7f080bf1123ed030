import pytest

from dockyard.errors import InvalidParameter
from dockyard.image.users import resolve_groups, resolve_user

PASSWD = b"""root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
"""
GROUP = b"""root:x:0:
wheel:x:10:root
daemon:x:1:
www-data:x:33:
app:x:1000:
docker:x:999:app,other
audio:x:29:other,app
"""


def files(passwd: bytes | None = PASSWD, group: bytes | None = GROUP):
    return {"/etc/passwd": passwd, "/etc/group": group}.get


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", (0, 0, [10])),  # as `docker run busybox id`: groups=0(root),10(wheel)
        ("root", (0, 0, [10])),
        ("0", (0, 0, [10])),
        ("0:0", (0, 0, [])),  # explicit group: no supplementary groups
        ("app", (1000, 1000, [999, 29])),
        ("1000", (1000, 1000, [999, 29])),
        ("www-data", (33, 33, [])),
        ("app:docker", (1000, 999, [])),
        ("app:29", (1000, 29, [])),
        ("app:4242", (1000, 4242, [])),
        ("1234", (1234, 0, [])),
        ("1234:5678", (1234, 5678, [])),
        ("1234:audio", (1234, 29, [])),
        (":33", (0, 33, [])),
    ],
)
def test_resolve_user(spec, expected):
    assert resolve_user(spec, files()) == expected


def test_without_passwd_and_group_files():
    read = files(None, None)
    assert resolve_user("", read) == (0, 0, [])
    assert resolve_user("1000:1000", read) == (1000, 1000, [])
    with pytest.raises(InvalidParameter) as exc:
        resolve_user("app", read)
    assert exc.value.message == "unable to find user app: no matching entries in passwd file"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchuser", "unable to find user nosuchuser: no matching entries in passwd file"),
        ("app:nosuchgroup", "unable to find group nosuchgroup: no matching entries in group file"),
        ("-1", "uids and gids must be in range 0-2147483647"),
        ("0:99999999999", "uids and gids must be in range 0-2147483647"),
    ],
)
def test_errors_worded_like_dockerd(spec, message):
    with pytest.raises(InvalidParameter) as exc:
        resolve_user(spec, files())
    assert exc.value.message == message


def test_resolve_group_add():
    assert resolve_groups([], files()) == []
    assert resolve_groups(["docker", "29", "4242", "audio"], files()) == [999, 29, 4242]
    with pytest.raises(InvalidParameter) as exc:
        resolve_groups(["nosuch"], files())
    assert exc.value.message == "Unable to find group nosuch: no matching entries in group file"
