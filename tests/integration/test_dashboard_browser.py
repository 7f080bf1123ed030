"""The dashboard in a real browser: Debian's chromium, headless, driven by
Playwright (pointed at /usr/bin/chromium: nothing is downloaded). What a user does:
opens the logged URL, watches a container started from the CLI appear, its logs
stream, its start timeline, stops it with the button, opens a shell in it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.dashboard_daemon import Dashboard, dashboard_daemon

pytestmark = pytest.mark.root

CHROMIUM = "/usr/bin/chromium"
VENDOR = Path(__file__).resolve().parents[2] / "src/dockyard/dashboard/static/vendor"
TIMEOUT_MS = 30_000  # a loaded machine: the page itself answers in milliseconds


@pytest.fixture(scope="module")
def ui() -> Iterator[Dashboard]:
    yield from dashboard_daemon()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: bash scripts/install.sh --deps")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: chromium's sandbox refuses to run as root, as the tests do
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(ui: Dashboard, browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(ui.url)
    pg.wait_for_selector("#conn.live")
    yield pg
    context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def container(ui: Dashboard, unique) -> Iterator[Any]:
    names: list[str] = []

    def run(*args: str) -> str:
        name = unique("dash")
        r = ui.daemon.dockyard("run", "-d", "--name", name, *args)
        assert r.returncode == 0, r.stderr
        names.append(name)
        return name

    yield run
    if names:
        ui.daemon.dockyard("rm", "-f", *names)


def row(name: str, state: str | None = None) -> str:
    return f'#containers tr[data-name="{name}"]' + (f'[data-state="{state}"]' if state else "")


def inspect_state(ui: Dashboard, name: str) -> dict:
    r = ui.daemon.request("GET", f"/containers/{name}/json")
    return r.json()["State"] if r.status == 200 else {}


def test_the_page_loads_with_the_token_and_not_without(
    ui: Dashboard, browser: Any, page: Any
) -> None:
    assert page.url == f"{ui.origin}/"  # the token left the address bar for a cookie
    assert page.title() == "Dockyard"
    assert page.inner_text("#conn") == "live"
    stranger = browser.new_context()
    try:
        resp = stranger.new_page().goto(f"{ui.origin}/")
        assert resp.status == 401
        assert "<html" not in resp.text() and "token" in resp.text()
    finally:
        stranger.close()


def test_a_container_started_from_the_cli_appears_without_a_reload(
    ui: Dashboard, page: Any, container: Any
) -> None:
    page.evaluate("window.__notReloaded = true")
    name = container("busybox", "sleep", "300")
    page.wait_for_selector(row(name, "running"))
    assert page.evaluate("window.__notReloaded") is True
    assert page.inner_text(row(name) + " td:nth-child(2)") == "busybox"
    ui.daemon.dockyard("kill", name)
    page.wait_for_selector(row(name, "exited"))


def test_its_logs_stream(ui: Dashboard, page: Any, container: Any) -> None:
    name = container(
        "busybox", "sh", "-c",
        "echo ready; while true; do if [ -f /go ]; then echo streamed-$((6*7)); echo oops >&2; rm /go; fi; sleep 0.1; done",
    )  # fmt: skip
    page.click(row(name))
    page.wait_for_function("() => document.querySelector('#logs').textContent.includes('ready')")
    assert "streamed-42" not in page.inner_text("#logs")
    r = ui.daemon.dockyard("exec", name, "touch", "/go")
    assert r.returncode == 0, r.stderr
    page.wait_for_function(
        "() => document.querySelector('#logs').textContent.includes('streamed-42')"
    )
    page.wait_for_selector("#logs .stderr:has-text('oops')")


def test_the_start_timeline_renders(page: Any, container: Any) -> None:
    name = container("busybox", "sleep", "300")
    page.click(row(name, "running"))
    page.click("#subtabs button[data-pane=timeline]")
    page.wait_for_selector("#timeline svg rect.bar")
    bars = page.locator("#timeline svg rect.bar")
    assert bars.count() > 10  # the phases and the kernel calls of the start
    labels = page.locator("#timeline svg text").all_text_contents()
    assert "fork to started" in labels
    assert any(label.startswith("init: ") for label in labels)
    assert any(label.startswith("monitor: ") for label in labels)
    assert "kernel calls" in page.inner_text("#timeline-note")
    widths = [float(w) for w in bars.evaluate_all("bs => bs.map(b => b.getAttribute('width'))")]
    assert max(widths) > 50  # drawn to scale, not all hairlines


def test_a_never_started_container_says_so_on_its_timeline(
    ui: Dashboard, page: Any, unique
) -> None:
    name = unique("dash-created")
    assert ui.daemon.dockyard("create", "--name", name, "busybox", "true").returncode == 0
    try:
        page.wait_for_selector(row(name, "created"))
        page.click(row(name))
        page.click("#subtabs button[data-pane=timeline]")
        page.wait_for_function(
            "() => document.querySelector('#timeline-note').textContent.includes('not been started')"
        )
        assert page.locator("#timeline svg").count() == 0
    finally:
        ui.daemon.dockyard("rm", "-f", name)


def test_the_stop_start_and_restart_buttons(ui: Dashboard, page: Any, container: Any) -> None:
    name = container("busybox", "sleep", "300")
    page.click(row(name, "running"))
    page.wait_for_selector(".actions button[data-action=stop]:not([disabled])")
    page.click(".actions button[data-action=stop]")
    page.wait_for_selector(row(name, "exited"))
    assert inspect_state(ui, name)["Running"] is False
    page.wait_for_selector(".actions button[data-action=start]:not([disabled])")
    page.click(".actions button[data-action=start]")
    page.wait_for_selector(row(name, "running"))
    first = inspect_state(ui, name)
    assert first["Running"] is True
    page.wait_for_selector(".actions button[data-action=restart]:not([disabled])")
    page.click(".actions button[data-action=restart]")
    deadline = time.monotonic() + 30
    while inspect_state(ui, name).get("StartedAt") == first["StartedAt"]:
        assert time.monotonic() < deadline, "the restart button did not restart it"
        time.sleep(0.1)
    page.wait_for_selector(row(name, "running"))


def test_the_remove_button_asks_once_more_then_removes(
    ui: Dashboard, page: Any, container: Any
) -> None:
    name = container("busybox", "sleep", "300")
    page.click(row(name, "running"))
    page.click(".actions button[data-action=remove]")
    assert page.inner_text(".actions button[data-action=remove]") == "Confirm remove"
    assert inspect_state(ui, name)["Running"] is True
    page.click(".actions button[data-action=remove]")
    page.wait_for_selector(row(name), state="detached")
    assert ui.daemon.request("GET", f"/containers/{name}/json").status == 404
    assert page.is_hidden("#detail")


def test_stats_draw_live(page: Any, container: Any) -> None:
    name = container("busybox", "sh", "-c", "sleep 300 & sleep 300 & wait")
    page.click(row(name, "running"))
    page.click("#subtabs button[data-pane=stats]")
    page.wait_for_function("() => document.querySelector('#stat-pids').textContent === '3'")
    page.wait_for_function("() => document.querySelector('#stat-mem').textContent.includes('B')")


def test_the_terminal_runs_a_shell_in_the_container(
    ui: Dashboard, page: Any, container: Any
) -> None:
    assert (VENDOR / "xterm.js").exists(), (
        "xterm.js is not vendored: bash scripts/install.sh --deps"
    )
    name = container("busybox", "sleep", "300")
    page.click(row(name, "running"))
    page.click("#subtabs button[data-pane=terminal]")
    page.fill("#term-cmd", "/bin/sh")
    page.click("#term-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#term-status').textContent.startsWith('exec ')"
    )
    page.wait_for_function("() => document.querySelector('#terminal').textContent.includes('#')")
    page.keyboard.type("echo $((6*7))x > /proof; echo done-$((1+1))\n")
    page.wait_for_function(
        "() => document.querySelector('#terminal').textContent.includes('done-2')"
    )
    r = ui.daemon.dockyard("exec", name, "cat", "/proof")
    assert r.stdout == "42x\n"
    page.keyboard.type("exit\n")
    page.wait_for_function("() => document.querySelector('#term-status').textContent === 'exited'")


def test_attach_joins_the_containers_own_shell(ui: Dashboard, page: Any, container: Any) -> None:
    """The Engine API's GET /containers/{id}/attach/ws, straight from the page."""
    assert (VENDOR / "xterm.js").exists(), (
        "xterm.js is not vendored: bash scripts/install.sh --deps"
    )
    name = container("-it", "busybox", "sh")
    page.click(row(name, "running"))
    page.click("#subtabs button[data-pane=terminal]")
    page.click("#term-attach")
    page.wait_for_function(
        "() => document.querySelector('#term-status').textContent.startsWith('attached')"
    )
    page.click("#terminal")
    page.keyboard.type("echo $((6*7))y > /proof2; echo att-$((2+2))\n")
    page.wait_for_function(
        "() => document.querySelector('#terminal').textContent.includes('att-4')"
    )
    assert ui.daemon.dockyard("exec", name, "cat", "/proof2").stdout == "42y\n"
    page.click("#subtabs button[data-pane=logs]")  # leaving the pane detaches
    page.wait_for_function("() => document.querySelector('#logs').textContent.includes('att-4')")
    assert inspect_state(ui, name)["Running"] is True


def test_images_networks_and_volumes_are_listed(ui: Dashboard, page: Any, unique) -> None:
    vol = unique("dashvol")
    assert ui.daemon.dockyard("volume", "create", vol).returncode == 0
    try:
        page.click("#tabs button[data-tab=images]")
        page.wait_for_selector("#images td:has-text('busybox:latest')")
        page.click("#tabs button[data-tab=networks]")
        page.wait_for_selector("#networks td:text-is('bridge')")
        page.click("#tabs button[data-tab=volumes]")
        page.wait_for_selector(f"#volumes td:text-is('{vol}')")
    finally:
        ui.daemon.dockyard("volume", "rm", vol)


def test_the_daemon_keeps_serving_with_a_page_open(ui: Dashboard, page: Any) -> None:
    started = time.monotonic()
    r = ui.daemon.dockyard("run", "--rm", "busybox", "echo", "still here")
    assert r.returncode == 0 and r.stdout == "still here\n", r.stderr
    assert time.monotonic() - started < 30
    assert page.inner_text("#conn") == "live"
