"""The container service's rules, over the real store and images and a fake runtime."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import pytest
from fakes import World, async_test, echo, eventually, exit_with, settle

from dockyard.engine.clock import ZERO_TIME
from dockyard.engine.models import HostConfig, RestartPolicy
from dockyard.errors import Conflict, InvalidParameter, NotFound, NotModified, RuntimeFailure


async def world(tmp_path, **image_kw) -> World:
    w = World(tmp_path)
    await w.image("ubuntu", **image_kw)
    return w


# -- create: what the container gets from the image ---------------------------------


@async_test
async def test_create_merges_image_env_with_user_env_winning_by_key(tmp_path):
    w = await world(tmp_path, changes=["ENV PATH=/img/bin LANG=C FOO=image"])
    c = await w.create(env=["FOO=user", "EXTRA=1"])
    assert c.config.env == ["PATH=/img/bin", "LANG=C", "FOO=user", "EXTRA=1"]


@async_test
async def test_create_takes_cmd_workdir_user_from_image_when_not_given(tmp_path):
    w = await world(tmp_path, changes=['CMD ["/bin/sh", "-c", "date"]', "WORKDIR /srv", "USER www"])
    c = await w.create(cmd=None)
    assert (c.path, c.args) == ("/bin/sh", ["-c", "date"])
    assert c.config.working_dir == "/srv"
    assert c.config.user == "www"
    own = await w.create(cmd=["/bin/ls"], working_dir="/tmp", user="root")
    assert (own.path, own.args) == ("/bin/ls", [])
    assert own.config.working_dir == "/tmp" and own.config.user == "root"


@async_test
async def test_image_entrypoint_gets_user_cmd_as_arguments(tmp_path):
    w = await world(tmp_path, changes=['ENTRYPOINT ["/bin/ep"]', 'CMD ["--default"]'])
    assert [(await w.create(cmd=None)).path, *(await w.create(cmd=None)).args] == [
        "/bin/ep",
        "--default",
    ]
    c = await w.create(cmd=["--mine"])
    assert (c.path, c.args) == ("/bin/ep", ["--mine"])
    assert c.config.entrypoint == ["/bin/ep"]


@async_test
async def test_empty_entrypoint_string_clears_image_entrypoint(tmp_path):
    # `docker run --entrypoint "" image cmd` sends Entrypoint [""].
    w = await world(tmp_path, changes=['ENTRYPOINT ["/bin/ep"]', 'CMD ["--default"]'])
    c = await w.create(cmd=["/bin/echo", "hi"], entrypoint=[""])
    assert (c.path, c.args) == ("/bin/echo", ["hi"])
    assert c.config.entrypoint == []
    # Without a command of one's own the image's CMD is the whole command line.
    c2 = await w.create(cmd=None, entrypoint=[""])
    assert (c2.path, c2.args) == ("--default", [])


@async_test
async def test_entrypoint_empty_list_clears_but_null_keeps_the_image_entrypoint(tmp_path):
    # dockerd: only a null Entrypoint means "not set"; an empty list clears the image's.
    w = await world(tmp_path, changes=['ENTRYPOINT ["/bin/ep"]'])
    c = await w.create(cmd=["/bin/true"], entrypoint=[])
    assert (c.path, c.args) == ("/bin/true", [])
    c = await w.create(cmd=["x"], entrypoint=None)
    assert (c.path, c.args) == ("/bin/ep", ["x"])


@async_test
async def test_create_without_any_command_is_refused(tmp_path):
    w = await world(tmp_path)
    with pytest.raises(InvalidParameter, match="no command specified"):
        await w.create(cmd=None)


@async_test
async def test_create_of_unknown_image_says_no_such_image(tmp_path):
    w = await world(tmp_path)
    with pytest.raises(NotFound, match=r"^No such image: nosuch:latest$"):
        await w.create("nosuch")


@async_test
async def test_default_hostname_is_short_id_and_written_to_etc_hostname(tmp_path):
    w = await world(tmp_path)
    c = await w.create()
    assert c.config.hostname == c.id[:12] == c.short_id
    assert Path(c.hostname_path).read_text() == c.short_id + "\n"
    named = await w.create(hostname="web")
    assert named.config.hostname == "web"


# -- names and lookup -----------------------------------------------------------------


@async_test
async def test_random_names_are_adjective_surname(tmp_path):
    w = await world(tmp_path)
    names = {(await w.create()).name for _ in range(5)}
    assert len(names) == 5
    for n in names:
        assert re.fullmatch(r"/[a-z]+_[a-z]+\d?", n), n


@async_test
async def test_invalid_name_is_refused_with_dockerds_message(tmp_path):
    w = await world(tmp_path)
    with pytest.raises(InvalidParameter) as e:
        await w.create(name="bad name!")
    assert e.value.message == (
        "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )
    # As dockerd's pattern: at least two characters.
    with pytest.raises(InvalidParameter, match=r"Invalid container name \(x\)"):
        await w.create(name="x")
    assert (await w.create(name="/ok")).name == "/ok"


@async_test
async def test_duplicate_name_conflicts_naming_the_holder(tmp_path):
    w = await world(tmp_path)
    first = await w.create(name="web")
    with pytest.raises(Conflict) as e:
        await w.create(name="web")
    assert e.value.message == (
        f'Conflict. The container name "/web" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


@async_test
async def test_lookup_by_name_slash_name_full_id_and_prefix(tmp_path):
    w = await world(tmp_path)
    c = await w.create(name="web")
    get = w.containers.get
    assert get("web").id == get("/web").id == get(c.id).id == get(c.id[:5]).id == c.id
    with pytest.raises(NotFound, match=r"^No such container: nope$"):
        get("nope")


@async_test
async def test_ambiguous_id_prefix_is_an_error(tmp_path):
    w = await world(tmp_path)
    # 17 ids over 16 hex digits: two of them share their first digit.
    ids = [(await w.create()).id for _ in range(17)]
    first = [i[0] for i in ids]
    shared = next(d for d in first if first.count(d) > 1)
    with pytest.raises(InvalidParameter) as e:
        w.containers.get(shared)
    assert e.value.message == f"Multiple IDs found with provided prefix: {shared}"


# -- start, stop, kill, wait --------------------------------------------------------


@async_test
async def test_start_records_running_state_and_the_runtime_gets_the_command(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "10"])
    link = w.launcher.last(c.id)
    assert link.args == ["/bin/sleep", "10"]
    assert c.state.status == "running" and c.state.running
    assert c.state.pid == link.pid and c.state.started_at == link.started_at
    with pytest.raises(NotModified):
        await w.containers.start(c.id)
    assert w.launcher.runs(c.id) == 1


@async_test
async def test_exit_code_and_finished_at_are_recorded_and_persisted(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/false"] = exit_with(3)
    c = await w.run(cmd=["/bin/false"])
    state = await w.containers.wait(c.id)
    assert state.exit_code == 3 and state.status == "exited" and not state.running
    assert state.finished_at != ZERO_TIME
    stored = {x.id: x for x in w.store.containers()}[c.id]
    assert stored.state.exit_code == 3 and stored.state.status == "exited"


@async_test
async def test_wait_not_running_returns_at_once_for_exited_container(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/false"] = exit_with(4)
    c = await w.run(cmd=["/bin/false"])
    await w.containers.wait(c.id)
    state = await asyncio.wait_for(w.containers.wait(c.id, "not-running"), 0.5)
    assert state.exit_code == 4


@async_test
async def test_wait_next_exit_waits_for_the_next_run(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/false"] = exit_with(4)
    c = await w.run(cmd=["/bin/false"])
    await w.containers.wait(c.id)
    fut = w.containers.waiter(c.id, "next-exit")
    await settle()
    assert not fut.done()  # the exit that already happened does not count
    w.launcher.programs["/bin/false"] = exit_with(5)
    await w.containers.start(c.id)
    assert (await asyncio.wait_for(fut, 1)).exit_code == 5


@async_test
async def test_wait_removed_resolves_on_removal(tmp_path):
    w = await world(tmp_path)
    c = await w.create()
    fut = w.containers.waiter(c.id, "removed")
    await settle()
    assert not fut.done()
    await w.containers.remove(c.id)
    await asyncio.wait_for(fut, 1)
    with pytest.raises(NotFound):
        w.containers.get(c.id)


@async_test
async def test_wait_with_unknown_condition_is_invalid(tmp_path):
    w = await world(tmp_path)
    c = await w.create()
    with pytest.raises(InvalidParameter, match="invalid condition"):
        w.containers.waiter(c.id, "whenever")


@async_test
async def test_stop_sends_sigterm_and_records_exit(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "100"])
    await w.containers.stop(c.id)
    link = w.launcher.last(c.id)
    assert link.kills == [signal.SIGTERM]
    assert c.state.status == "exited" and c.state.exit_code == 128 + signal.SIGTERM


@async_test
async def test_stop_kills_when_the_process_ignores_sigterm_past_the_timeout(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "100"])
    w.launcher.last(c.id).ignored.add(signal.SIGTERM)
    await w.containers.stop(c.id, timeout=0)
    assert w.launcher.last(c.id).kills == [signal.SIGTERM, signal.SIGKILL]
    assert c.state.exit_code == 137


@async_test
async def test_stop_of_a_stopped_container_is_not_modified(tmp_path):
    w = await world(tmp_path)
    c = await w.create()
    with pytest.raises(NotModified):
        await w.containers.stop(c.id)


@async_test
async def test_kill_default_is_sigkill_and_named_signals_parse(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "100"])
    link = w.launcher.last(c.id)
    await w.containers.kill(c.id, "hup")
    await w.containers.wait(c.id)
    assert link.kills == [signal.SIGHUP]
    c2 = await w.run(cmd=["/bin/sleep", "100"])
    await w.containers.kill(c2.id)
    assert w.launcher.last(c2.id).kills == [signal.SIGKILL]
    with pytest.raises(InvalidParameter, match="Invalid signal: SIGNOPE"):
        await w.containers.kill(c2.id, "SIGNOPE")


@async_test
async def test_kill_of_a_stopped_container_is_a_conflict(tmp_path):
    w = await world(tmp_path)
    c = await w.create(name="idle")
    with pytest.raises(Conflict) as e:
        await w.containers.kill("idle")
    assert e.value.message == f"Cannot kill container: idle: Container {c.id} is not running"


# -- restart policies and auto-remove -----------------------------------------------


@async_test
async def test_on_failure_restarts_up_to_max_retries(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/false"] = exit_with(1)
    host = HostConfig(restart_policy=RestartPolicy("on-failure", 2))
    c = await w.run(cmd=["/bin/false"], host_config=host)
    await eventually(lambda: w.launcher.runs(c.id) == 3 and not c.state.running, 3)
    await asyncio.sleep(0.6)  # a fourth run would be due by now
    assert w.launcher.runs(c.id) == 3
    assert c.restart_count == 2 and c.state.exit_code == 1


@async_test
async def test_on_failure_does_not_restart_after_success_or_user_stop(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/true"] = exit_with(0)
    host = HostConfig(restart_policy=RestartPolicy("on-failure", 0))
    c = await w.run(cmd=["/bin/true"], host_config=host)
    await w.containers.wait(c.id)
    c2 = await w.run(
        cmd=["/bin/sleep"], host_config=HostConfig(restart_policy=RestartPolicy("always"))
    )
    await w.containers.stop(c2.id)
    await asyncio.sleep(0.3)
    assert w.launcher.runs(c.id) == 1 and w.launcher.runs(c2.id) == 1
    assert not c2.state.running


@async_test
async def test_auto_remove_removes_the_container_after_it_exits(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/echo"] = echo
    c = await w.run(cmd=["/bin/echo", "bye"], host_config=HostConfig(auto_remove=True))
    removed = w.containers.waiter(c.id, "removed")
    await asyncio.wait_for(removed, 1)
    with pytest.raises(NotFound):
        w.containers.get(c.id)
    assert c.id not in {x.id for x in w.store.containers()}
    assert not (tmp_path / "containers" / c.id).exists()


@async_test
async def test_auto_remove_with_restart_policy_is_refused(tmp_path):
    w = await world(tmp_path)
    host = HostConfig(auto_remove=True, restart_policy=RestartPolicy("always"))
    with pytest.raises(InvalidParameter, match="can't create 'AutoRemove' container"):
        await w.create(host_config=host)


# -- remove -------------------------------------------------------------------------


@async_test
async def test_rm_of_running_container_without_force_is_dockerds_conflict(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"], name="busy")
    with pytest.raises(Conflict) as e:
        await w.containers.remove("busy")
    assert e.value.message == (
        'cannot remove container "/busy": container is running: stop the container before '
        "removing or force remove"
    )
    assert c.state.running


@async_test
async def test_rm_force_kills_and_removes_record_and_files(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"], name="busy")
    await w.containers.remove("busy", force=True)
    assert w.launcher.last(c.id).kills == [signal.SIGKILL]
    assert w.containers.list(all_=True) == []
    assert w.store.containers() == []
    assert not (tmp_path / "containers" / c.id).exists()
    # The name is free again.
    await w.create(name="busy")


# -- runtime failures at start ---------------------------------------------------------


@async_test
async def test_missing_command_records_127_and_stays_created(tmp_path):
    w = await world(tmp_path)
    w.launcher.missing.add("/nope")
    c = await w.create(cmd=["/nope"])
    with pytest.raises(RuntimeFailure, match="executable file not found"):
        await w.containers.start(c.id)
    assert c.state.status == "created" and not c.state.running
    assert c.state.exit_code == 127
    assert "executable file not found" in c.state.error
    stored = {x.id: x for x in w.store.containers()}[c.id]
    assert stored.state.exit_code == 127


@async_test
async def test_not_executable_command_records_126(tmp_path):
    w = await world(tmp_path)
    w.launcher.not_executable.add("/etc/passwd")
    c = await w.create(cmd=["/etc/passwd"])
    with pytest.raises(RuntimeFailure):
        await w.containers.start(c.id)
    assert c.state.exit_code == 126 and c.state.status == "created"


# -- the OCI bundle the runtime gets ---------------------------------------------------


@async_test
async def test_bundle_has_env_user_and_cwd_from_image_and_defaults(tmp_path):
    w = await world(tmp_path, changes=["USER www", "WORKDIR /var/www"])
    c = await w.run(cmd=["/bin/sleep"], env=["A=1"])
    with open(tmp_path / "containers" / c.id / "config.json") as f:
        process = json.load(f)["process"]
    assert process["cwd"] == "/var/www"
    assert (process["user"]["uid"], process["user"]["gid"]) == (33, 33)
    env = process["env"]
    assert "A=1" in env and f"HOSTNAME={c.short_id}" in env and "HOME=/var/www" in env
    assert any(e.startswith("PATH=") for e in env)


# -- daemon restart --------------------------------------------------------------------


@async_test
async def test_restore_marks_container_whose_monitor_vanished_exited_255(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"])
    w2 = await w.restarted()
    await w2.containers.restore()
    again = w2.containers.get(c.id)
    assert again.state.status == "exited" and again.state.exit_code == 255
    assert again.state.finished_at != ZERO_TIME
    assert w2.launcher.reattached == [c.id]


@async_test
async def test_restore_uses_exit_json_when_the_monitor_left_one(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"])
    (tmp_path / "containers" / c.id / "exit.json").write_text(
        json.dumps({"exit_code": 42, "finished_at": "2026-01-02T03:04:05Z"})
    )
    w2 = await w.restarted()
    await w2.containers.restore()
    state = w2.containers.get(c.id).state
    assert (state.exit_code, state.finished_at) == (42, "2026-01-02T03:04:05Z")


@async_test
async def test_restore_reattaches_to_a_live_monitor_and_follows_its_exit(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"])
    old_link = w.launcher.last(c.id)
    w2 = await w.restarted()
    w2.launcher.alive[c.id] = old_link
    await w2.containers.restore()
    again = w2.containers.get(c.id)
    assert again.state.running and again.state.pid == old_link.pid
    waiting = w2.containers.waiter(c.id)
    old_link.exit(7)
    assert (await asyncio.wait_for(waiting, 1)).exit_code == 7
    assert w2.containers.get(c.id).state.status == "exited"


@async_test
async def test_restore_restarts_always_containers_whose_monitor_vanished(tmp_path):
    w = await world(tmp_path)
    c = await w.run(
        cmd=["/bin/sleep"], host_config=HostConfig(restart_policy=RestartPolicy("always"))
    )
    w2 = await w.restarted()
    await w2.containers.restore()
    assert w2.containers.get(c.id).state.running
    assert w2.launcher.runs(c.id) == 1


# -- attach -------------------------------------------------------------------------


async def collect(frames, until: bytes, limit: float = 1.0) -> bytes:
    got = b""

    async def run() -> None:
        nonlocal got
        async for _kind, data in frames:
            got += data
            if got.endswith(until):
                return

    await asyncio.wait_for(run(), limit)
    return got


@async_test
async def test_attach_logs_and_stream_does_not_duplicate_inflight_output(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"])
    link = w.launcher.last(c.id)
    link.emit(1, b"one\n")
    await settle()  # published before the attach: only in the log
    link.emit(1, b"two\n")  # in the log and still in flight
    streams = await w.containers.attach(c.id, logs=True, stream=True)
    link.emit(1, b"three\n")
    link.exit(0)
    got = b""
    async for _kind, data in streams.frames:
        got += data
    assert got == b"one\ntwo\nthree\n"


@async_test
async def test_attach_stream_to_created_container_waits_for_its_start(tmp_path):
    # `docker start -a`: attach first, then start.
    w = await world(tmp_path)
    w.launcher.programs["/bin/echo"] = echo
    c = await w.create(cmd=["/bin/echo", "hello", "world"])
    streams = await w.containers.attach(c.id, stream=True)
    await w.containers.start(c.id)
    got = [f async for f in streams.frames]
    assert got == [(1, b"hello world\n")]


@async_test
async def test_attach_filters_streams(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"])
    streams = await w.containers.attach(c.id, stream=True, stdout=False, stderr=True)
    link = w.launcher.last(c.id)
    link.emit(1, b"out\n")
    link.emit(2, b"err\n")
    link.exit(0)
    assert [f async for f in streams.frames] == [(2, b"err\n")]


@async_test
async def test_stdin_sent_before_start_reaches_the_process(tmp_path):
    # `docker run -i`: the CLI attaches and sends stdin, then starts.
    w = await world(tmp_path)
    c = await w.create(cmd=["/bin/cat"], open_stdin=True, stdin_once=True)
    streams = await w.containers.attach(c.id, stdin=True, stream=True)
    sent = asyncio.create_task(streams.stdin(b"hello\n"))
    closed = asyncio.create_task(streams.close_stdin())
    await settle()
    await w.containers.start(c.id)
    await asyncio.wait_for(asyncio.gather(sent, closed), 1)
    link = w.launcher.last(c.id)
    assert bytes(link.stdin) == b"hello\n" and link.stdin_closed


@async_test
async def test_attach_after_a_restart_replays_the_old_run_and_follows_the_new(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/echo"] = echo
    c = await w.run(cmd=["/bin/echo", "first"])
    await w.containers.wait(c.id)
    w.launcher.programs["/bin/echo"] = lambda link: asyncio.sleep(0)
    await w.containers.start(c.id)
    link = w.launcher.last(c.id)
    await asyncio.sleep(0.002)  # the log's clock moves past the new run's start
    link.emit(1, b"second\n")
    streams = await w.containers.attach(c.id, logs=True, stream=True)
    link.emit(1, b"third\n")
    link.exit(0)
    assert b"".join([d async for _k, d in streams.frames]) == b"first\nsecond\nthird\n"


@async_test
async def test_rm_force_of_a_running_auto_remove_container_succeeds(tmp_path):
    # `docker run -d --rm ... ; docker rm -f` : the CLI prints the id, no error.
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"], host_config=HostConfig(auto_remove=True))
    await w.containers.remove(c.id, force=True)
    await settle(20)
    assert w.containers.list(all_=True) == []


@async_test
async def test_restore_finishes_a_removal_a_crash_interrupted(tmp_path):
    w = await world(tmp_path)
    c = await w.create()
    c.state.status = "removing"  # the daemon died in the middle of `docker rm`
    w.store.put_container(c)
    w2 = await w.restarted()
    await w2.containers.restore()  # the daemon must start
    assert w2.containers.list(all_=True) == []
    assert not (tmp_path / "containers" / c.id).exists()


@async_test
async def test_restore_sweeps_the_directory_of_a_create_a_crash_cut_short(tmp_path):
    w = await world(tmp_path)
    kept = await w.create()
    orphan = tmp_path / "containers" / ("f" * 64)  # dirs made, record never written
    (orphan / "upper").mkdir(parents=True)
    w2 = await w.restarted()
    await w2.containers.restore()
    assert not orphan.exists()
    assert (tmp_path / "containers" / kept.id).is_dir()
    assert [c.id for c in w2.containers.list(all_=True)] == [kept.id]


@async_test
async def test_stop_during_restart_backoff_keeps_the_container_stopped(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/false"] = exit_with(1)
    host = HostConfig(restart_policy=RestartPolicy("on-failure", 0))
    c = await w.run(cmd=["/bin/false"], host_config=host)
    await w.containers.wait(c.id)
    try:
        await w.containers.stop(c.id)
    except NotModified:
        pass
    await asyncio.sleep(0.4)  # past the first backoff (0.2 s)
    assert w.launcher.runs(c.id) == 1


@async_test
async def test_restore_restarts_unless_stopped_containers_that_died_with_the_daemon(tmp_path):
    w = await world(tmp_path)
    host = HostConfig(restart_policy=RestartPolicy("unless-stopped"))
    c = await w.run(cmd=["/bin/sleep"], host_config=host)
    w2 = await w.restarted()
    await w2.containers.restore()
    assert w2.containers.get(c.id).state.running


@async_test
async def test_a_clean_daemon_restart_brings_unless_stopped_back_but_not_a_user_stop(tmp_path):
    """dockerd's kill marks HasBeenManuallyStopped only when the daemon is not shutting
    down: compose services with `restart: unless-stopped` come back after a restart."""
    w = await world(tmp_path)
    host = HostConfig(restart_policy=RestartPolicy("unless-stopped"))
    back = await w.run(cmd=["/bin/sleep"], name="back", host_config=host)
    user = await w.run(cmd=["/bin/sleep"], name="user", host_config=host)
    await w.containers.stop(user.id)
    await w.containers.shutdown(live_restore=False)
    assert w.launcher.last(back.id).kills == [signal.SIGTERM]
    await settle(20)
    assert w.launcher.runs(back.id) == 1  # no policy restart while shutting down
    w.store.close()
    w2 = World(tmp_path)
    await w2.containers.restore()
    assert w2.containers.get(back.id).state.running
    assert not w2.containers.get(user.id).state.running


@async_test
async def test_a_daemon_restart_brings_always_back_even_after_a_user_stop(tmp_path):
    """dockerd's docs: an `always` container stopped by hand is restarted when the
    daemon restarts; an `unless-stopped` one stopped by hand stays down."""
    w = await world(tmp_path)
    always = await w.run(
        cmd=["/bin/sleep"],
        name="always",
        host_config=HostConfig(restart_policy=RestartPolicy("always")),
    )
    unless = await w.run(
        cmd=["/bin/sleep"],
        name="unless",
        host_config=HostConfig(restart_policy=RestartPolicy("unless-stopped")),
    )
    await w.containers.stop(always.id)
    await w.containers.stop(unless.id)
    await settle(20)
    assert w.launcher.runs(always.id) == 1  # a user stop is not restarted by the policy
    await w.containers.shutdown(live_restore=False)
    w.store.close()
    w2 = World(tmp_path)
    await w2.containers.restore()
    assert w2.containers.get(always.id).state.running
    assert not w2.containers.get(unless.id).state.running


@async_test
async def test_daemon_shutdown_stops_containers_unless_live_restore(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"])
    await w.containers.shutdown(live_restore=False)
    assert w.launcher.last(c.id).kills == [signal.SIGTERM]
    stored = {x.id: x for x in w.store.containers()}[c.id]
    assert stored.state.status == "exited"

    (tmp_path / "other").mkdir()
    w2 = await world(tmp_path / "other")
    kept = await w2.run(cmd=["/bin/sleep"])
    await w2.containers.shutdown(live_restore=True)
    link = w2.launcher.last(kept.id)
    assert link.kills == [] and link.closed and not link.exited
    assert {x.id: x for x in w2.store.containers()}[kept.id].state.running


# -- a full data root, races -----------------------------------------------------------------


def _fill_the_store(w: World, monkeypatch) -> list[str]:
    """From now on every write to the store fails as SQLite does on a full disk."""
    import sqlite3

    refused: list[str] = []

    def full(*_args, **_kwargs):
        err = sqlite3.OperationalError("database or disk is full")
        err.sqlite_errorcode = 13
        refused.append("write")
        raise err

    monkeypatch.setattr(w.containers._store, "put_container", full)
    monkeypatch.setattr(w.containers._store, "delete_container", full)
    return refused


@async_test
async def test_full_store_exit_is_recorded_in_memory_and_waiters_wake(tmp_path, monkeypatch):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "100"])
    refused = _fill_the_store(w, monkeypatch)
    waiting = w.containers.waiter(c.id)
    await w.containers.kill(c.id)
    state = await asyncio.wait_for(waiting, 1)
    assert refused and state.exit_code == 137 and not state.running
    assert w.containers.get(c.id).state.exit_code == 137
    # rm -f still removes it (the record goes at the next start, with the bundle gone).
    await w.containers.remove(c.id, force=True)
    with pytest.raises(NotFound):
        w.containers.get(c.id)
    assert not Path(c.bundle).exists()


@async_test
async def test_full_store_records_are_written_once_there_is_space(tmp_path, monkeypatch):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "100"])
    with pytest.MonkeyPatch.context() as mp:
        _fill_the_store(w, mp)
        await w.containers.kill(c.id)
    other = await w.create()  # space again: this save also writes the pending one
    assert other.id
    w2 = await w.restarted()
    assert w2.containers.get(c.id).state.exit_code == 137


@async_test
async def test_a_removal_a_full_store_cut_short_is_finished_at_restore(tmp_path, monkeypatch):
    w = await world(tmp_path)
    w.launcher.programs["/bin/true"] = exit_with(0)
    c = await w.run(cmd=["/bin/true"])
    await w.containers.wait(c.id)
    _fill_the_store(w, monkeypatch)
    await w.containers.remove(c.id)
    monkeypatch.undo()
    w2 = await w.restarted()
    await w2.containers.restore()
    assert w2.containers.list(all_=True) == []


@async_test
async def test_concurrent_starts_run_one_process(tmp_path):
    w = await world(tmp_path)
    c = await w.create(cmd=["/bin/sleep", "100"])
    real_run = w.launcher.run

    async def slow_run(*args, **kwargs):
        await asyncio.sleep(0.05)
        return await real_run(*args, **kwargs)

    w.launcher.run = slow_run
    results = await asyncio.gather(
        *(w.containers.start(c.id) for _ in range(4)), return_exceptions=True
    )
    assert w.launcher.runs(c.id) == 1
    assert sum(1 for r in results if isinstance(r, NotModified)) == 3


@async_test
async def test_sigkill_returns_once_the_container_is_dead(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "100"])
    await w.containers.kill(c.id)
    assert (c.state.running, c.state.exit_code) == (False, 137)
    await w.containers.remove(c.id)  # no -f needed


@async_test
async def test_restarting_container_refuses_rm_and_stop_ends_it(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/false"] = exit_with(3)
    host = HostConfig(restart_policy=RestartPolicy("always"))
    c = await w.run(cmd=["/bin/false"], host_config=host)
    await w.containers.wait(c.id)
    assert (c.state.status, c.state.running, c.state.restarting) == ("restarting", True, True)
    with pytest.raises(Conflict) as e:
        await w.containers.remove(c.id)
    assert e.value.message == (
        f'cannot remove container "{c.name}": container is restarting: stop the container '
        "before removing or force remove"
    )
    with pytest.raises(Conflict, match="is restarting, wait until the container is running"):
        await w.containers.kill(c.id)
    await w.containers.stop(c.id)
    assert (c.state.status, c.state.running, c.state.restarting) == ("exited", False, False)
    await asyncio.sleep(0.4)  # past the back-off
    assert w.launcher.runs(c.id) == 1
    await w.containers.remove(c.id)


@async_test
async def test_a_rm_container_whose_start_finds_the_disk_full_is_removed(tmp_path, monkeypatch):
    """`run --rm` waits for condition=removed: a start that fails for space must remove."""
    import errno

    from dockyard.engine import lifecycle as containers_mod

    w = await world(tmp_path)
    c = await w.create(cmd=["/bin/sleep"], host_config=HostConfig(auto_remove=True))
    removed = w.containers.waiter(c.id, "removed")

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "config.json")

    monkeypatch.setattr(containers_mod, "write_bundle", full)
    with pytest.raises(OSError):
        await w.containers.start(c.id)
    await asyncio.wait_for(removed, 1)
    with pytest.raises(NotFound):
        w.containers.get(c.id)
