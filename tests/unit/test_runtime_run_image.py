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


def _lines_of(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-IS", "-c", code], check=True, capture_output=True, text=True
    )
    return out.stdout.splitlines()


def _probe(src: Path, image: Path) -> list[str]:
    return _lines_of(PROBE.format(src=str(src)).replace("load()", f"load({str(image)!r})"))


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


# What a lazy module of the image (one the run path imports only when a config or a
# command needs it) and the run path's C extensions look like once imported.
LAZY_PROBE = """
import sys
sys.path.insert(0, {src!r})
from dockyard.runtime.run_image import load
print(load({image!r}))
from dockyard.runtime import oci_lifecycle
print("dockyard.runtime.seccomp" in sys.modules, "__future__" in sys.modules)
from dockyard.runtime import seccomp
print(type(seccomp.__loader__).__name__, seccomp.__file__ == seccomp.__spec__.origin)
print(getattr(seccomp, "EDITED", "original"), callable(seccomp.compile_oci))
import _json
print(_json.__spec__.origin == _json.__file__, _json.__file__.startswith(sys.base_prefix))
"""


def _lazy_probe(src: Path, image: Path) -> list[str]:
    return _lines_of(LAZY_PROBE.format(src=str(src), image=str(image)))


def test_a_lazy_module_comes_from_the_image_only_when_imported(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    image = tmp_path / "oci-run.image"
    _build(src, image)
    loaded, before, loader, origin, ext = _lazy_probe(src, image)
    assert loaded == "True"
    # Not executed with the run path (a plain bundle has no seccomp profile), and the
    # image's modules never import __future__ (their annotations are a compiler flag).
    assert before == "False False"
    assert loader == "_ImageLoader True"  # made as the import system makes a module
    assert origin == "original True"
    assert ext == "True True"


def test_an_edited_lazy_module_is_imported_from_its_source(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    image = tmp_path / "oci-run.image"
    _build(src, image)
    seccomp = src / "dockyard" / "runtime" / "seccomp.py"
    seccomp.write_text(seccomp.read_text() + "\nEDITED = 'edited'\n")
    loaded, _before, loader, origin, _ext = _lazy_probe(src, image)
    assert loaded == "True"  # the eager modules are unchanged
    assert loader == "SourceFileLoader True" and origin == "edited True"


def test_a_changed_extension_module_is_left_to_the_import_system(tmp_path: Path) -> None:
    import marshal

    src = _tree(tmp_path)
    image = tmp_path / "oci-run.image"
    _build(src, image)
    fmt, tag, extensions, entries, lazy = marshal.loads(image.read_bytes())
    assert any(name == "_json" for name, *_ in extensions)
    # As if the interpreter's _json had been rebuilt since: another size.
    extensions = [(n, o, m, s + 1 if n == "_json" else s) for n, o, m, s in extensions]
    image.write_bytes(marshal.dumps((fmt, tag, extensions, entries, lazy)))
    loaded, _before, _loader, _origin, ext = _lazy_probe(src, image)
    assert loaded == "True" and ext == "True True"  # imported, found along sys.path


# The installed launcher's lines (run_image.preload), then what they left behind.
LAUNCHER_PROBE = """
import sys
sys.path.insert(0, {src!r})
{preload}
from dockyard.runtime import oci_cli, oci_lifecycle, run_image
print(oci_lifecycle.__spec__.origin == oci_lifecycle.__file__, run_image.__file__)
print(getattr(run_image, "EDITED", "original"), {src!r} in sys.path_importer_cache)
print(oci_cli.main(["--version"]))
"""


def _launch(src: Path, image: Path) -> list[str]:
    from dockyard.runtime.run_image import preload

    code = LAUNCHER_PROBE.format(src=str(src), preload=preload(str(src), str(image)))
    out = subprocess.run(
        [sys.executable, "-IS", "-c", code], check=True, capture_output=True, text=True
    )
    return out.stdout.splitlines()


def test_the_launcher_boots_the_loader_without_searching_the_sources(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    image = tmp_path / "oci-run.image"
    _build(src, image)
    assert (tmp_path / "oci-run.boot").exists()
    modules, edited, *rest = _launch(src, image)
    assert modules == f"True {src / 'dockyard' / 'runtime' / 'run_image.py'}"
    # No finder was made for the sources: nothing of the run path came through it.
    assert edited == "original False"
    assert rest[-1] == "0"


def test_an_edited_loader_or_no_boot_file_falls_back_to_importing_it(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    image = tmp_path / "oci-run.image"
    _build(src, image)
    run_image = src / "dockyard" / "runtime" / "run_image.py"
    run_image.write_text(run_image.read_text() + "\nEDITED = 'edited'\n")
    _modules, edited, *rest = _launch(src, image)
    assert edited == "edited True"  # the boot file's copy was not used
    assert rest[-1] == "0"
    _build(src, image)
    (tmp_path / "oci-run.boot").unlink()
    _modules, edited, *rest = _launch(src, image)
    assert edited == "edited True" and rest[-1] == "0"
