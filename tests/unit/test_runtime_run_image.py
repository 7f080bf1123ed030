"""dockyard-runtime's run-path image: the launcher loads the run path from one file,
and an edited source (or a broken image) is never run from a stale copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# What the installed launcher does, then what it tells us about the modules it got.
PROBE = """
import sys
sys.path.insert(0, {src!r})
from dockyard.runtime.run_image import load
print(load())
from dockyard.runtime import oci_lifecycle, oci_cli
from dockyard.kernel import linux
print(oci_lifecycle.__file__)
print(oci_lifecycle.__spec__.origin == oci_lifecycle.__file__, oci_lifecycle.__loader__ is not None)
print(getattr(linux, "EDITED", "original"))
print(oci_cli.main(["--version"]))
"""


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(
        SRC / "dockyard", src / "dockyard", ignore=shutil.ignore_patterns("__pycache__")
    )
    return src


def _build(src: Path, image: Path) -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(src)!r}); "
        f"from dockyard.runtime.run_image import build; build({str(image)!r})"
    )
    subprocess.run([sys.executable, "-IS", "-c", code], check=True)


def _probe(src: Path, image: Path) -> list[str]:
    code = PROBE.format(src=str(src)).replace("load()", f"load({str(image)!r})")
    out = subprocess.run(
        [sys.executable, "-IS", "-c", code], check=True, capture_output=True, text=True
    )
    return out.stdout.splitlines()


def test_the_launcher_runs_the_run_path_from_the_image(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    image = tmp_path / "oci-run.image"
    _build(src, image)
    loaded, path, spec_ok, edited, *rest = _probe(src, image)
    assert loaded == "True"
    assert path == str(src / "dockyard" / "runtime" / "oci_lifecycle.py")
    assert spec_ok == "True True"
    assert edited == "original"
    assert rest[-1] == "0"  # --version printed and returned 0


def test_an_edited_source_is_imported_not_taken_from_the_image(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    image = tmp_path / "oci-run.image"
    _build(src, image)
    linux = src / "dockyard" / "kernel" / "linux.py"
    linux.write_text(linux.read_text() + "\nEDITED = 'edited'\n")
    loaded, _path, _spec, edited, *_ = _probe(src, image)
    assert loaded == "False"
    assert edited == "edited"


def test_a_missing_or_broken_image_falls_back_to_the_imports(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    missing = _probe(src, tmp_path / "none.image")
    assert missing[0] == "False" and missing[3] == "original"
    broken = tmp_path / "broken.image"
    _build(src, broken)
    broken.write_bytes(broken.read_bytes()[:1000])  # truncated
    loaded, *_rest = _probe(src, broken)
    assert loaded == "False"
