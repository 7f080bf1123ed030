"""A build's clean-up detaches what a step left mounted below its directory, and
only that, whatever characters the directory's path holds (mountinfo escapes
spaces, tabs and backslashes)."""

from __future__ import annotations

import os
import subprocess

from dockyard.engine.build.copy_step import unmount_under


def test_mounts_below_the_build_dir_are_detached_and_a_neighbour_kept(tmp_path):
    work = tmp_path / "build dir\tx\\y"
    inside = work / "step 1" / "to"
    neighbour = tmp_path / "build dir\tx\\y2" / "to"  # same prefix, another directory
    for d in (inside, neighbour):
        d.mkdir(parents=True)
    mounted: list[str] = []
    try:
        for d in (inside, neighbour):
            subprocess.run(["mount", "-t", "tmpfs", "none", str(d)], check=True)
            mounted.append(str(d))
        assert os.path.ismount(inside) and os.path.ismount(neighbour)
        unmount_under(str(work))
        assert not os.path.ismount(inside)
        assert os.path.ismount(neighbour)
    finally:
        for d in reversed(mounted):
            subprocess.run(["umount", "-l", d], capture_output=True)
