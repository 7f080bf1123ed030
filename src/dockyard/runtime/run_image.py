"""The compiled modules of `dockyard-runtime`'s run path in one file, loaded in one go.

`dockyard-runtime` is a whole process per container (containerd runs it for every
create, start, kill, delete). Importing its ~25 modules one by one costs the import
system's machinery for each (finders, a stat and an open of every .py and .pyc):
~1.2 ms of every `run`. The sources stay small modules named for what they are;
at install time (scripts/install.sh, `python -m dockyard.runtime.run_image`) their
code objects go into one file, in the order the imports finished, and the launcher
executes them from it before its first import:

    from dockyard.runtime.run_image import load
    load()

Each module is checked against its source (size and mtime, as a .pyc is) and
made as the import system makes it (spec, loader, __file__, __cached__); if the
image is missing, stale, for another Python or fails, nothing is loaded from it
and the imports happen as they always do.

Two more import-system costs the image saves (~0.5 ms of each `run`):
- the C extensions the run path imports (_ctypes, _json, select) are
  loaded from the files they were found in at build time (checked by size and
  mtime), not searched for along sys.path (listing the standard library's
  directories);
- `from __future__ import annotations` is compiled in as its flag, without the
  statement that imports the `__future__` module at run time (the line is
  blanked: line numbers stay). This module has no such line for the same reason.
"""

import gc
import marshal
import os
import sys
from _frozen_importlib_external import SourceFileLoader, spec_from_file_location

# What the image holds: these and everything they import from dockyard, executed
# by load(); then the modules that only some commands or configs import (inside a
# function), and what they import besides, kept compiled in the image and executed
# when imported (a seccomp profile, `exec`, `update`: containerd runs these too).
ROOTS = ("dockyard.runtime.oci_cli", "dockyard.runtime.oci_lifecycle")
LAZY = ("dockyard.runtime.seccomp", "dockyard.runtime.oci_exec", "dockyard.runtime.oci_update")
FORMAT = 3
_FUTURE_ANNOTATIONS = b"from __future__ import annotations\n"
_CO_FUTURE_ANNOTATIONS = 0x1000000  # __future__.annotations.compiler_flag
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../dockyard


def image_path() -> str:
    tag = sys.implementation.cache_tag
    return os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "__pycache__", f"oci-run.{tag}.image"
    )


def _source(name: str, is_package: bool) -> str:
    parts = name.split(".")[1:]
    if is_package:
        parts.append("__init__")
    return os.path.join(_PACKAGE_ROOT, *parts) + ".py"


def load(path: str = "") -> bool:
    """Execute the image's modules that are not imported yet; False (and nothing
    loaded from it) if it cannot be used.

    For the launcher's process only: it also turns the cyclic garbage collector
    off, as oci_cli.entry() does (the objects unmarshalled and created here would
    trigger a dozen collections, ~0.8 ms, in a process that lives a few ms)."""
    gc.disable()
    try:
        with open(path or image_path(), "rb") as f:
            fmt, tag, *content = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return False
    if fmt != FORMAT or tag != sys.implementation.cache_tag:
        return False
    extensions, entries, lazy = content
    todo = []
    for name, is_package, mtime_ns, size, code in entries:
        if name in sys.modules:
            continue
        source = _source(name, is_package)
        if not _unchanged(source, mtime_ns, size):
            return False  # an edited source: the import system compiles it
        todo.append((name, is_package, source, code))
    import _frozen_importlib as bootstrap
    import _frozen_importlib_external as external

    _load_extensions(extensions, bootstrap, external)
    tag = sys.implementation.cache_tag
    loaded: list[str] = []
    try:
        for name, is_package, source, code in todo:
            if name in sys.modules:  # imported meanwhile by a module before it
                continue
            # The attributes the import system gives a module from a .py file
            # (spec_from_file_location and _init_module_attrs, without their cost).
            loader = external.SourceFileLoader(name, source)
            spec = bootstrap.ModuleSpec(name, loader, origin=source, is_package=is_package)
            spec.has_location = True
            module = type(sys)(name)
            module.__spec__ = spec
            module.__loader__ = loader
            module.__file__ = source
            directory, base = os.path.split(source)
            module.__cached__ = f"{directory}/__pycache__/{base[:-3]}.{tag}.pyc"
            if is_package:
                spec.submodule_search_locations = [directory]
                module.__path__ = [directory]
                module.__package__ = name
            else:
                module.__package__ = name.rpartition(".")[0]
            sys.modules[name] = module
            loaded.append(name)
            exec(code, module.__dict__)  # noqa: S102 - our own compiled sources
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
    except Exception:  # noqa: BLE001 - the imports will say what is wrong, as usual
        for name in loaded:
            sys.modules.pop(name, None)
        return False
    sys.meta_path.insert(0, _LazyModules(lazy))
    return True


class _ImageLoader(SourceFileLoader):
    """A source file's loader whose code comes from the image (compiled from that
    file, as a .pyc's would be): the module is as the import system makes it."""

    def __init__(self, fullname: str, path: str, compiled: bytes) -> None:
        super().__init__(fullname, path)
        self._compiled = compiled

    def get_code(self, fullname: str) -> object:
        return marshal.loads(self._compiled)


class _LazyModules:
    """The import system's first finder for the image's lazy modules: each once, if
    its source is still the one the image was built from (else the next finder)."""

    def __init__(self, entries: list) -> None:
        self._entries = {entry[0]: entry[1:] for entry in entries}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        entry = self._entries.pop(fullname, None)
        if entry is None:
            return None
        is_package, mtime_ns, size, compiled = entry
        source = _source(fullname, is_package)
        if not _unchanged(source, mtime_ns, size):
            return None
        loader = _ImageLoader(fullname, source, compiled)
        return spec_from_file_location(fullname, source, loader=loader)

    def invalidate_caches(self) -> None:
        pass


def _load_extensions(extensions: list, bootstrap: object, external: object) -> None:
    """Load the run path's C extensions from where the build found them. One that
    moved or changed is left to the import system (and so is any failure here)."""
    for name, origin, mtime_ns, size in extensions:
        if name in sys.modules:
            continue
        if not _unchanged(origin, mtime_ns, size):
            continue
        spec = bootstrap.ModuleSpec(name, external.ExtensionFileLoader(name, origin), origin=origin)
        spec.has_location = True
        try:
            bootstrap._load(spec)
        except Exception:  # noqa: BLE001, S112 - the import, later, says what is wrong
            continue


def _unchanged(path: str, mtime_ns: int, size: int) -> bool:
    """The file is still the one the image was built from (as a .pyc checks)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_mtime_ns == mtime_ns and st.st_size == size


def _compile(text: bytes, source: str) -> object:
    """The module's code, `from __future__ import annotations` as a compiler flag."""
    lines = text.splitlines(keepends=True)
    future = [i for i, line in enumerate(lines) if line.startswith(b"from __future__ ")]
    flags = 0
    if len(future) == 1 and lines[future[0]] == _FUTURE_ANNOTATIONS:
        lines[future[0]] = b"\n"
        flags = _CO_FUTURE_ANNOTATIONS
    return compile(b"".join(lines), source, "exec", flags=flags, dont_inherit=True)


def build(path: str = "") -> int:
    """Import the run path in a fresh interpreter's view, then write the image of what
    it loaded from dockyard (compiled from the sources), in load order."""
    order: list[str] = []
    import importlib._bootstrap as bootstrap

    original = bootstrap._load_unlocked

    def recording(spec):  # noqa: ANN001, ANN202 - the import system's own signature
        module = original(spec)
        order.append(spec.name)
        return module

    bootstrap._load_unlocked = recording
    before = set(sys.modules)
    try:
        for root in ROOTS:
            __import__(root)
        eager = len(order)
        # The C extensions load() loads: the eager modules' (not what LAZY imports).
        imported = set(sys.modules) - before
        for name in LAZY:
            __import__(name)
    finally:
        bootstrap._load_unlocked = original
    entries = []
    lazy = []
    for i, name in enumerate(("dockyard", "dockyard.runtime", *order)):
        if not name.startswith("dockyard") or any(e[0] == name for e in entries + lazy):
            continue
        is_package = hasattr(sys.modules[name], "__path__")
        source = _source(name, is_package)
        with open(source, "rb") as f:
            text = f.read()
        st = os.stat(source)
        code = _compile(text, source)
        if i < eager + 2:
            entries.append((name, is_package, st.st_mtime_ns, st.st_size, code))
        else:
            lazy.append((name, is_package, st.st_mtime_ns, st.st_size, marshal.dumps(code)))
    extensions = []
    for name in sorted(imported):
        spec = getattr(sys.modules[name], "__spec__", None)
        loader = getattr(spec, "loader", None)
        if type(loader).__name__ == "ExtensionFileLoader" and spec.origin:
            st = os.stat(spec.origin)
            extensions.append((name, spec.origin, st.st_mtime_ns, st.st_size))
    target = path or image_path()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    _write(target, marshal.dumps((FORMAT, sys.implementation.cache_tag, extensions, entries, lazy)))
    _write(boot_path(target), marshal.dumps(_boot_code(path)))
    return len(entries) + len(lazy)


def _write(target: str, data: bytes) -> None:
    tmp = f"{target}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


# --- the launcher's way in --------------------------------------------------------
# Importing this module through the import system (a finder for the sources'
# directory, a listing of src/, dockyard/ and runtime/, three .pyc files) is ~0.4 ms
# of every `run`. The launcher instead executes the boot file next to the image: this
# module's code (checked against its source, as the image's modules are) made into
# the module the import system would make, then its load(). Without a usable boot
# file, the launcher imports this module and calls load() as before (preload()).


def boot_path(image: str = "") -> str:
    image = image or image_path()
    return (image[: -len(".image")] if image.endswith(".image") else image) + ".boot"


_BOOT = """\
import sys
from marshal import loads
from os import stat

st = stat({source!r})
if (st.st_mtime_ns, st.st_size) != ({mtime}, {size}):
    raise ImportError({source!r} + " changed since its boot file was built")
import _frozen_importlib as bootstrap
import _frozen_importlib_external as external

loader = external.SourceFileLoader({name!r}, {source!r})
spec = bootstrap.ModuleSpec({name!r}, loader, origin={source!r})
spec.has_location = True
module = type(sys)({name!r})
module.__spec__, module.__loader__, module.__file__ = spec, loader, {source!r}
module.__cached__, module.__package__ = {cached!r}, "dockyard.runtime"
sys.modules[{name!r}] = module
try:
    exec(loads({code!r}), module.__dict__)
    loaded = module.load({image!r})
except BaseException:
    del sys.modules[{name!r}]
    raise
if loaded:
    sys.modules["dockyard.runtime"].run_image = module
else:  # not from the image: this module too goes through the import system
    del sys.modules[{name!r}]
"""


def _boot_code(image: str) -> object:
    name = "dockyard.runtime.run_image"
    source = _source(name, False)
    st = os.stat(source)
    with open(source, "rb") as f:
        code = marshal.dumps(_compile(f.read(), source))
    directory, base = os.path.split(source)
    text = _BOOT.format(
        name=name,
        source=source,
        mtime=st.st_mtime_ns,
        size=st.st_size,
        cached=f"{directory}/__pycache__/{base[:-3]}.{sys.implementation.cache_tag}.pyc",
        code=code,
        image=image,
    )
    return compile(text, f"<{boot_path(image)}>", "exec", dont_inherit=True)


def preload(src: str, image: str = "") -> str:
    """The lines of dockyard-runtime's launcher (after its sys.path line) that load the
    run path: scripts/install.sh writes them (as bench/ and the tests' launchers do)."""
    if image:
        boot, call = repr(boot_path(image)), f"load({image!r})"
    else:
        directory = os.path.join(src, "dockyard", "runtime", "__pycache__")
        boot, call = f'f"{directory}/oci-run.{{sys.implementation.cache_tag}}.boot"', "load()"
    return (
        "try:  # dockyard/runtime/run_image.py: the run path's loader, from its boot file\n"
        f"    with open({boot}, 'rb') as f:\n"
        "        exec(__import__('marshal').loads(f.read()), {})\n"
        "except Exception:  # none, stale or for another Python: imported as usual\n"
        "    from dockyard.runtime.run_image import load\n"
        "\n"
        f"    {call}\n"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--preload"]:  # scripts/install.sh: the launcher's lines
        print(preload(sys.argv[2]), end="")
        raise SystemExit(0)
    count = build(sys.argv[1] if len(sys.argv) > 1 else "")
    print(f"{image_path()}: {count} modules")
