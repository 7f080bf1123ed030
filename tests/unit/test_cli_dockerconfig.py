"""Registry credentials in docker's config.json: auths, credential helpers, the X-Registry-Auth header."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from dockyard.cli.context import CLIError
from dockyard.cli.dockerconfig import (
    INDEX_SERVER,
    DockerConfig,
    auth_header,
    registry_auth,
    registry_domain,
    server_key,
)


def test_server_keys_and_registry_domains():
    assert server_key("docker.io") == INDEX_SERVER
    assert server_key("https://index.docker.io/v1/") == INDEX_SERVER
    assert server_key("http://127.0.0.1:5000/") == "127.0.0.1:5000"
    assert registry_domain("busybox") == "docker.io"
    assert registry_domain("me/app") == "docker.io"
    assert registry_domain("127.0.0.1:5000/app") == "127.0.0.1:5000"
    assert registry_domain("localhost/app") == "localhost"
    assert registry_domain("reg.example.com/team/app") == "reg.example.com"


def test_auths_are_stored_as_docker_does(tmp_path):
    config = DockerConfig(str(tmp_path / "cfg"))
    assert config.get("127.0.0.1:5000") == {}
    config.store("127.0.0.1:5000", "alice", "pa:ss")
    path = tmp_path / "cfg" / "config.json"
    doc = json.loads(path.read_text())
    assert doc == {"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"alice:pa:ss").decode()}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = DockerConfig(str(tmp_path / "cfg"))
    assert again.get("127.0.0.1:5000") == {
        "serveraddress": "127.0.0.1:5000",
        "username": "alice",
        "password": "pa:ss",
    }
    assert again.erase("127.0.0.1:5000") is True
    assert again.erase("127.0.0.1:5000") is False
    assert json.loads(path.read_text()) == {"auths": {}}


def test_other_keys_of_the_file_are_kept(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {}}))
    DockerConfig(str(tmp_path)).store("r.lan", "u", "p")
    assert json.loads(path.read_text())["psFormat"] == "table {{.ID}}"


def test_header_is_base64url_json_and_anonymous_is_empty_object(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert registry_auth(None, "127.0.0.1:5000/app") == "e30="
    DockerConfig(str(tmp_path)).store("127.0.0.1:5000", "u", "p")
    header = registry_auth(None, "127.0.0.1:5000/app")
    assert json.loads(base64.urlsafe_b64decode(header)) == {
        "serveraddress": "127.0.0.1:5000",
        "username": "u",
        "password": "p",
    }
    assert auth_header({}) == "e30="


def test_a_missing_credential_helper_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "desktop"}))
    with pytest.raises(CLIError) as e:
        DockerConfig(str(tmp_path)).get("127.0.0.1:5000")
    assert (
        'exec: "docker-credential-desktop": executable file not found in $PATH' in e.value.message
    )


def test_credential_helper_protocol(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    store = tmp_path / "secrets.json"
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"path = {str(store)!r}\n"
        "try:\n    data = json.load(open(path))\nexcept FileNotFoundError:\n    data = {}\n"
        "action, arg = sys.argv[1], sys.stdin.read().strip()\n"
        "if action == 'store':\n"
        "    doc = json.loads(arg); data[doc['ServerURL']] = doc\n"
        "elif action == 'get':\n"
        "    if arg not in data:\n        print('credentials not found'); sys.exit(1)\n"
        "    print(json.dumps(data[arg]))\n"
        "elif action == 'erase':\n"
        "    data.pop(arg, None)\n"
        "json.dump(data, open(path, 'w'))\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"r.lan": "fake"}}))
    config = DockerConfig(str(tmp_path))
    assert config.get("r.lan") == {}
    config.store("r.lan", "bob", "hunter2")
    # The secret lives with the helper, not in config.json.
    assert "hunter2" not in (tmp_path / "config.json").read_text()
    assert DockerConfig(str(tmp_path)).get("r.lan") == {
        "username": "bob",
        "password": "hunter2",
        "serveraddress": "r.lan",
    }
    assert config.erase("r.lan") is True
    assert DockerConfig(str(tmp_path)).get("r.lan") == {}
