import pytest

from dockyard.errors import InvalidParameter
from dockyard.image.reference import Reference, is_image_id, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "familiar", "shown"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None, "busybox", "busybox:latest"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox", "busybox:1.36"),
        (
            "library/busybox",
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "busybox",
            "busybox:latest",
        ),
        (
            "docker.io/library/busybox:latest",
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "busybox",
            "busybox:latest",
        ),
        (
            "index.docker.io/library/busybox",
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "busybox",
            "busybox:latest",
        ),
        (
            "myrepo/app",
            "docker.io",
            "myrepo/app",
            "latest",
            None,
            "myrepo/app",
            "myrepo/app:latest",
        ),
        (
            "docker.io/myrepo/app:v2",
            "docker.io",
            "myrepo/app",
            "v2",
            None,
            "myrepo/app",
            "myrepo/app:v2",
        ),
        (
            "localhost:5000/a/b:c",
            "localhost:5000",
            "a/b",
            "c",
            None,
            "localhost:5000/a/b",
            "localhost:5000/a/b:c",
        ),
        ("localhost/a", "localhost", "a", "latest", None, "localhost/a", "localhost/a:latest"),
        (
            "127.0.0.1:5000/x",
            "127.0.0.1:5000",
            "x",
            "latest",
            None,
            "127.0.0.1:5000/x",
            "127.0.0.1:5000/x:latest",
        ),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None, "[::1]:5000/x", "[::1]:5000/x:y"),
        (
            "quay.io/org/sub/img:1.0-rc_1",
            "quay.io",
            "org/sub/img",
            "1.0-rc_1",
            None,
            "quay.io/org/sub/img",
            "quay.io/org/sub/img:1.0-rc_1",
        ),
        (
            f"busybox@{DIGEST}",
            "docker.io",
            "library/busybox",
            None,
            DIGEST,
            "busybox",
            f"busybox@{DIGEST}",
        ),
        (
            f"busybox:1.36@{DIGEST}",
            "docker.io",
            "library/busybox",
            "1.36",
            DIGEST,
            "busybox",
            f"busybox:1.36@{DIGEST}",
        ),
        (
            "a__b.c-d---e/f",
            "docker.io",
            "a__b.c-d---e/f",
            "latest",
            None,
            "a__b.c-d---e/f",
            "a__b.c-d---e/f:latest",
        ),
    ],
)
def test_parse_normalises_like_docker(text, domain, path, tag, digest, familiar, shown):
    ref = parse_reference(text)
    assert ref == Reference(domain, path, tag, digest)
    assert ref.familiar_name == familiar
    assert str(ref) == shown


def test_no_default_tag_when_asked():
    ref = parse_reference("busybox", default_tag=None)
    assert ref.tag is None
    assert str(ref) == "busybox"
    assert ref.name == "docker.io/library/busybox"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid reference format"),
        (
            "Busybox",
            "invalid reference format: repository name (library/Busybox) must be lowercase",
        ),
        (
            "myrepo/App:1",
            "invalid reference format: repository name (myrepo/App) must be lowercase",
        ),
        ("busybox:", "invalid reference format"),
        ("busybox:a:b", "invalid reference format"),
        ("-busybox", "invalid reference format"),
        ("busybox:-tag", "invalid reference format"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
        ("busybox@md5:" + "a" * 64, "unsupported digest algorithm"),
        ("a//b", "invalid reference format"),
        (
            "a" * 64,
            f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings",
        ),
        (
            "x/" + "a" * 300,
            "invalid reference format: repository name must not be more than 255 characters",
        ),
    ],
)
def test_bad_references_rejected_with_dockerd_wording(text, message):
    with pytest.raises(InvalidParameter) as exc:
        parse_reference(text)
    assert exc.value.message == message


def test_tag_too_long_rejected():
    with pytest.raises(InvalidParameter):
        parse_reference("busybox:" + "t" * 129)
    assert parse_reference("busybox:" + "t" * 128).tag == "t" * 128


def test_is_image_id():
    assert is_image_id("sha256:" + "a" * 64)
    assert is_image_id("a" * 64)
    assert not is_image_id("busybox")
