"""remove_stale_temps: what a crashed process left in a directory goes, the work
of a live one and everything else stays (a daemon restart sweeps bundles with it)."""

from __future__ import annotations

import os
import subprocess
import sys

from dockyard.image.atomic import TEMP_PREFIX, remove_stale_temps, temp_name


def test_only_temporaries_of_dead_processes_are_removed(tmp_path):
    # A process that has exited: its tag names a pid that is gone (or reused later
    # with another start time, which is_stale_temp tells apart).
    code = "from dockyard.image.atomic import temp_name; import sys; print(temp_name(sys.argv[1]))"
    dead = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    ).stdout.strip()  # fmt: skip
    os.makedirs(os.path.join(dead, "diff", "usr"))
    with open(os.path.join(dead, "diff", "usr", "f"), "w") as f:
        f.write("half a copy")
    dead_file = temp_name(str(tmp_path)).replace(f"{os.getpid()}.", "999999999.", 1)
    open(dead_file, "w").close()
    live = temp_name(str(tmp_path))
    os.mkdir(live)
    (tmp_path / "upper").mkdir()
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / f"{TEMP_PREFIX}not-a-tag").write_text("")  # foreign: not ours to keep

    remove_stale_temps(str(tmp_path))

    assert sorted(os.listdir(tmp_path)) == sorted(["upper", "config.json", os.path.basename(live)])
