#!/usr/bin/env bash
# Install Dockyard on a fresh Debian 12 machine, as root.
#
#   bash scripts/install.sh          packages, venv, /usr/local/bin/dockyard,
#                                    the docker CLI's compose plugin,
#                                    daemon on /run/dockyard.sock, busybox image
#   bash scripts/install.sh --deps   packages and venv only (what tests need)
#
# Idempotent: every step checks before it acts, so a second run takes seconds.
# Never installs or starts dockerd/podman: Dockyard is the engine here.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
SOCK=/run/dockyard.sock
LOG=/var/log/dockyard.log
# CI points this at a fresh directory so state left by earlier runs cannot leak in.
DATA_ROOT="${DOCKYARD_DATA_ROOT:-/var/lib/dockyard}"
MODE="${1:-all}"

# busybox-static: the base image; curl: the seed's transcripts; iproute2,
# procps, psmisc, util-linux, kmod: what the runtime and the tests inspect;
# iptables: the bridge network's NAT and forwarding rules; libseccomp2 compiles
# seccomp profiles (through pyseccomp); tini is --init's /sbin/docker-init (its
# static build, bind-mounted into containers); mmdebstrap makes the debian base
# image (`dockyard image bootstrap debian`) from the Debian mirror; docker-compose is
# Debian's Compose 1.29 (the Python one many CI scripts call; Compose v2 comes from
# the venv).
APT_PACKAGES=(python3 python3-venv busybox-static curl ca-certificates iproute2 procps psmisc util-linux kmod iptables libseccomp2 tini mmdebstrap docker-compose)
# Only for the tests (--deps): gcc and libc6-dev build the static probe that
# tests/security/test_seccomp.py runs inside a container; docker-registry,
# apache2-utils (htpasswd), openssl (a token server's keys) and skopeo are the
# registry tests' other side; runc: the tests compare a container's view with
# runc's on the same bundle; golang-github-containers-common ships
# /usr/share/containers/seccomp.json; containerd drives dockyard-runtime through
# its runc shim in tests/integration/test_oci_runtime_containerd.py.
# chromium: the dashboard's tests drive Debian's build headless (Playwright, pointed at
# /usr/bin/chromium: no browser is downloaded).
TEST_APT_PACKAGES=(gcc libc6-dev docker-registry apache2-utils openssl skopeo runc golang-github-containers-common containerd chromium)

say() { echo "install: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (containers need namespaces, mounts and cgroups)"
    exit 1
fi

install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
    # Any python3 >= 3.11 with a working venv module will do (pyenv's or Debian's).
    local candidates=("${PYTHON:-}" python3 /usr/bin/python3)
    for py in "${candidates[@]}"; do
        [ -n "$py" ] || continue
        command -v "$py" >/dev/null 2>&1 || continue
        if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"
            return
        fi
    done
    say "no python3 >= 3.11 with venv found"
    exit 1
}

install_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        local py
        py="$(pick_python)"
        say "creating $VENV with $py"
        "$py" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    local stamp="$VENV/.dockyard-pyproject.sha256"
    local want
    want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
    if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import dockyard, pytest, docker' 2>/dev/null; }; then
        say "pip install -e '.[test]'"
        "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO[test]"
        echo "$want" >"$stamp"
    fi
    # Byte-compile the sources now: where PYTHONDONTWRITEBYTECODE is set, every
    # `dockyard` command would otherwise compile what it imports (~10 ms each run).
    "$VENV/bin/python" -m compileall -q "$REPO/src" >/dev/null
    # dockyard-runtime's run path compiled into one file (dockyard/runtime/run_image.py),
    # which its launcher loads in one read instead of ~25 imports per container.
    "$VENV/bin/python" -IS -c "import sys; sys.path.insert(0, '$REPO/src'); from dockyard.runtime.run_image import build; build()"
}

link_cli() {
    # A launcher rather than pip's entry point: `python -S` skips site-packages and
    # their .pth files (5 ms of every command); the CLI needs only the standard
    # library and its own sources (`dockyard daemon` loads site-packages itself).
    # dockyard-runtime (runc's command line, for containerd) is launched the same way.
    # `run` rather than `main`: it also skips the interpreter's teardown where it has nothing to do.
    write_launcher /usr/local/bin/dockyard dockyard.cli.main run
    # Its entry() skips the interpreter's teardown (a whole process per container),
    # and -I (isolated: no PYTHON* variables, not its own directory on sys.path) keeps
    # what containerd's environment holds out of a root process's imports, as runc's.
    # Its run path comes from the image that install_venv built (run_image.load: one
    # file read; the plain imports where the image is missing or stale), loaded by
    # the lines run_image.preload() writes (through the image's boot file).
    write_launcher /usr/local/bin/dockyard-runtime dockyard.runtime.oci_cli entry -IS \
        "$("$VENV/bin/python" -IS "$REPO/src/dockyard/runtime/run_image.py" --preload "$REPO/src")"
}

write_launcher() {
    local target="$1" module="$2" entry="$3" flags="${4:--S}" preload="${5:-}"
    rm -f "$target"
    cat >"$target.tmp" <<EOF
#!$VENV/bin/python3 $flags
import sys
sys.path.insert(0, "$REPO/src")
$preload
from $module import $entry
raise SystemExit($entry())
EOF
    chmod 755 "$target.tmp"
    mv "$target.tmp" "$target"
}

vendor_xterm() {
    # The dashboard's terminal: xterm.js from npm at the versions package-lock.json
    # pins (with their integrity hashes), copied into the package's static files.
    # Never committed, never fetched by the page from anywhere but the dashboard.
    local ui="$REPO/src/dockyard/dashboard"
    local vendor="$ui/static/vendor"
    local stamp="$vendor/.package-lock.sha256"
    local want
    want="$(sha256sum "$ui/package-lock.json" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$vendor/xterm.js" ]; then
        return
    fi
    command -v npm >/dev/null 2>&1 || install_packages npm
    say "npm ci (xterm.js for the dashboard)"
    local build
    build="$(mktemp -d)"
    cp "$ui/package.json" "$ui/package-lock.json" "$build/"
    (cd "$build" && npm ci --ignore-scripts --no-audit --no-fund --silent)
    mkdir -p "$vendor"
    cp "$build/node_modules/@xterm/xterm/lib/xterm.js" "$build/node_modules/@xterm/xterm/css/xterm.css" \
        "$build/node_modules/@xterm/addon-fit/lib/addon-fit.js" "$vendor/"
    cp "$build/node_modules/@xterm/xterm/LICENSE" "$vendor/LICENSE.xterm"
    rm -rf "$build"
    echo "$want" >"$stamp"
}

link_compose_plugin() {
    # `docker compose` with DOCKER_HOST=unix:///run/dockyard.sock: the docker CLI finds
    # its compose plugin in ~/.docker/cli-plugins. A plugin that is not ours (a docker
    # install's) is left alone.
    local bin dir="${DOCKER_CONFIG:-${HOME:-/root}/.docker}/cli-plugins"
    bin="$(PYTHONPATH="$REPO/src" "$VENV/bin/python" -c 'from dockyard.cli.compose import binary; print(binary())')"
    mkdir -p "$dir"
    if [ -e "$dir/docker-compose" ] && [ ! -L "$dir/docker-compose" ]; then
        say "$dir/docker-compose exists and is not a link: left as it is"
        return
    fi
    ln -sfn "$bin" "$dir/docker-compose"
}

daemon_up() {
    curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
}

start_daemon() {
    if daemon_up; then
        return
    fi
    say "starting dockyard daemon on $SOCK (log: $LOG)"
    # setsid + nohup: the daemon outlives this script and its terminal.
    setsid nohup "$VENV/bin/python" -m dockyard daemon -H "unix://$SOCK" \
        --data-root "$DATA_ROOT" --pidfile /run/dockyard.pid </dev/null >>"$LOG" 2>&1 &
    for _ in $(seq 1 100); do
        daemon_up && return
        sleep 0.2
    done
    say "daemon did not answer on $SOCK within 20s; last log lines:"
    tail -n 30 "$LOG" >&2 || true
    exit 1
}

install_packages "${APT_PACKAGES[@]}"
install_venv
vendor_xterm
if [ "$MODE" = "--deps" ]; then
    install_packages "${TEST_APT_PACKAGES[@]}"
    exit 0
fi
link_cli
link_compose_plugin
start_daemon
DOCKYARD_HOST="unix://$SOCK" "$REPO/scripts/make-base-image" busybox >/dev/null
say "done: try \`dockyard run busybox /bin/echo hello world\`"
