"""`dockyard run`, end to end: what a user sees from real containers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time


def test_readme_hello_world(dockyard):
    proc = dockyard("run", "busybox", "/bin/echo", "hello", "world")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello world\n"


def test_rm_removes_after_exit(dockyard, unique):
    name = unique("rm")
    proc = dockyard("run", "--rm", "--name", name, "busybox", "true")
    assert proc.returncode == 0, proc.stderr
    assert name not in dockyard("ps", "-a").stdout


def test_exit_code_and_streams(dockyard):
    proc = dockyard("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert proc.returncode == 3
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"


def test_killed_by_signal_is_128_plus_n(daemon, dockyard, unique):
    # The signal must come from outside: PID 1 ignores a SIGKILL sent from
    # inside its own namespace (`sh -c 'kill -9 $$'` just exits 0).
    name = unique("sig")
    run = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "run", "--name", name, "busybox", "sh", "-c", "echo up; sleep 30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=daemon.env, text=True,
    )  # fmt: skip
    try:
        assert run.stdout.readline() == "up\n"
        assert dockyard("kill", name).returncode == 0
        assert run.wait(timeout=30) == 137
    finally:
        run.kill()
        run.wait()


def test_command_not_found_is_127(dockyard):
    proc = dockyard("run", "--rm", "busybox", "/no/such/binary")
    assert proc.returncode == 127
    assert "/no/such/binary" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_not_executable_is_126(dockyard):
    proc = dockyard("run", "--rm", "busybox", "/etc/passwd")
    assert proc.returncode == 126
    assert "Traceback" not in proc.stderr


def test_unknown_image_is_125_and_one_line(dockyard):
    proc = dockyard("run", "--rm", "no-such-image-dky", "true")
    assert proc.returncode == 125
    assert "no-such-image-dky" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


def test_unknown_flag_is_125(dockyard):
    proc = dockyard("run", "--no-such-flag", "busybox", "true")
    assert proc.returncode == 125
    assert "no-such-flag" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pid_namespace(dockyard):
    proc = dockyard("run", "--rm", "busybox", "sh", "-c", "echo $$; ps -o pid,comm | wc -l")
    assert proc.returncode == 0, proc.stderr
    pid, lines = proc.stdout.split()
    assert pid == "1"
    assert int(lines) <= 4  # header, sh, ps, wc: none of the host's processes


def test_root_is_the_image(dockyard):
    proc = dockyard("run", "--rm", "busybox", "sh", "-c", "ls /; readlink /bin/ls")
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout.split()
    assert "bin" in names and "etc" in names
    assert "work" not in names  # nothing of the host's root
    assert names[-1] == "busybox"


def test_writes_do_not_leak_between_containers(dockyard):
    assert (
        dockyard(
            "run", "--rm", "busybox", "sh", "-c", "echo x > /tmp/f; echo y > /etc/f"
        ).returncode
        == 0
    )
    proc = dockyard("run", "--rm", "busybox", "sh", "-c", "cat /tmp/f /etc/f")
    assert proc.returncode != 0
    assert proc.stdout == ""


def test_dev_proc_sys(dockyard):
    proc = dockyard(
        "run", "--rm", "busybox", "sh", "-c",
        "ls /dev; echo ---; cat /proc/mounts; echo ---; echo x > /sys/kernel/dky 2>/dev/null && echo sys-writable",
    )  # fmt: skip
    devs_text, mounts, rest = proc.stdout.split("---\n")
    devs = set(devs_text.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"} <= devs
    minimal = {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
               "console", "ptmx", "fd", "stdin", "stdout", "stderr", "core"}  # fmt: skip
    assert devs <= minimal, f"host devices visible: {sorted(devs - minimal)}"
    by_point = {line.split()[1]: line.split() for line in mounts.splitlines() if line.strip()}
    assert by_point["/proc"][2] == "proc"
    assert "ro" in by_point["/sys"][3].split(","), by_point["/sys"]
    assert "sys-writable" not in rest


def test_env_workdir_user_hostname(dockyard):
    proc = dockyard(
        "run", "--rm", "-e", "FOO=bar baz", "-w", "/tmp", "-u", "nobody", "-h", "box1",
        "busybox", "sh", "-c", 'echo "$FOO"; pwd; id -u; id -g; hostname',
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["bar baz", "/tmp", "65534", "65534", "box1"]


def test_env_without_a_value_unsets_it(dockyard):
    """dockerd's ReplaceOrAppendEnvValues: `-e NAME` (NAME not set for the CLI) unsets
    it, the image's PATH included; `-e HOSTNAME=x` replaces the daemon's value."""
    proc = dockyard(
        "run", "--rm", "-e", "DKY_NEVER_SET", "-e", "HOSTNAME=mine", "busybox",
        "sh", "-c", "echo ${DKY_NEVER_SET-unset} $HOSTNAME; env | grep -c ^HOSTNAME=",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["unset mine", "1"]


def test_user_by_name_and_number(dockyard):
    proc = dockyard("run", "--rm", "-u", "daemon", "busybox", "id")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("uid=1(daemon) gid=1(daemon)")
    proc = dockyard("run", "--rm", "-u", "1234:5678", "busybox", "sh", "-c", "id -u; id -g")
    assert proc.stdout.split() == ["1234", "5678"]


def test_image_env_and_default_cmd(dockyard):
    # busybox:latest has CMD ["sh"]: with stdin closed, sh reads EOF and exits 0.
    proc = dockyard("run", "--rm", "busybox")
    assert proc.returncode == 0, proc.stderr
    proc = dockyard("run", "--rm", "busybox", "sh", "-c", "echo $PATH; echo $HOME")
    assert proc.stdout.splitlines()[0].endswith("/bin")
    assert proc.stdout.splitlines()[1] == "/root"


def test_entrypoint(dockyard):
    proc = dockyard("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a b\n"


def test_hostname_defaults_to_short_id(dockyard, unique):
    name = unique("host")
    proc = dockyard("run", "--name", name, "busybox", "hostname")
    assert proc.returncode == 0, proc.stderr
    full = dockyard("inspect", "-f", "{{.Id}}", name).stdout.strip()
    assert re.match(r"^[0-9a-f]{64}$", full)
    assert proc.stdout.strip() == full[:12]


def test_network_none_has_only_loopback(dockyard):
    proc = dockyard("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["lo"]


def test_default_network_has_loopback_up(dockyard):
    proc = dockyard("run", "--rm", "busybox", "sh", "-c", "ip -o link show lo")
    assert proc.returncode == 0, proc.stderr
    assert "UP" in proc.stdout or "LOWER_UP" in proc.stdout


def test_network_host_sees_host_interfaces(dockyard, unique):
    # A link made for this test: other daemons' veths come and go meanwhile, so the
    # whole listing is compared only for what stays.
    link = "dkyh" + unique("")[-8:]
    subprocess.run(
        ["ip", "link", "add", link, "type", "veth", "peer", "name", link + "p"], check=True
    )
    try:
        before = set(os.listdir("/sys/class/net"))
        proc = dockyard("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
        after = set(os.listdir("/sys/class/net"))
    finally:
        subprocess.run(["ip", "link", "del", link], check=True)
    assert proc.returncode == 0, proc.stderr
    seen = set(proc.stdout.split())
    assert link in seen and "lo" in seen
    assert before & after <= seen <= before | after


def test_detached_prints_full_id(dockyard, unique):
    name = unique("bg")
    proc = dockyard("run", "-d", "--name", name, "busybox", "sleep", "30")
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"^[0-9a-f]{64}\n$", proc.stdout)
    assert name in dockyard("ps").stdout
    assert dockyard("rm", "-f", name).returncode == 0


def test_labels_and_attach_flags(dockyard, unique, inspect):
    name = unique("lbl")
    proc = dockyard("run", "--name", name, "--label", "team=dock", "-a", "stderr", "busybox",
                    "sh", "-c", "echo out; echo err >&2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == "err\n"
    assert inspect(name)["Config"]["Labels"] == {"team": "dock"}


def test_trace_shows_where_the_start_went(dockyard, unique):
    name = unique("trace")
    assert dockyard("run", "--name", name, "busybox", "true").returncode == 0
    proc = dockyard("trace", name)
    assert proc.returncode == 0, proc.stderr
    # The calls a start must make, in the order the runtime made them.
    calls = [
        line.split()[0]
        for line in proc.stdout.splitlines()
        if line.startswith(("unshare ", "pivot_root ", "sethostname "))
    ]
    assert calls.index("unshare") < calls.index("pivot_root")
    total = re.search(r"request to started \(total\)\s+([\d.]+)", proc.stdout)
    assert total and 0 < float(total.group(1)) < 5000
    assert re.search(r"^\d+ calls, [\d.]+ ms inside the kernel interface$", proc.stdout, re.M)
    top = dockyard("trace", "--top", "3", name).stdout
    assert (
        len(
            [
                ln
                for ln in top.splitlines()
                if re.match(r"^\w+\s+(init|monitor|daemon)\s+[\d.]+\s", ln)
            ]
        )
        == 3
    )


def test_trace_of_a_never_started_container_says_so(dockyard, unique):
    name = unique("notrace")
    assert dockyard("create", "--name", name, "busybox", "true").returncode == 0
    proc = dockyard("trace", name)
    assert proc.returncode == 1
    assert "has not been started" in proc.stderr


def test_restart_policy_on_the_default_bridge(dockyard, inspect, unique):
    # A restart on the bridge awaits the network: the restart task must stay
    # referenced while it does (it was garbage-collected mid-start, and the
    # container stayed down after its first exit).
    name = unique("rp")
    assert dockyard("run", "-d", "--name", name, "--restart", "on-failure:5",
                    "busybox", "sh", "-c", "exit 3").returncode == 0  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        info = inspect(name)
        while time.monotonic() < deadline:
            info = inspect(name)
            if info["RestartCount"] == 5 and not info["State"]["Running"]:
                break
            time.sleep(0.2)
        assert info["RestartCount"] == 5, info["State"]
        assert info["State"]["ExitCode"] == 3
        assert info["NetworkSettings"]["Networks"].get("bridge") is not None
    finally:
        dockyard("rm", "-f", name)
