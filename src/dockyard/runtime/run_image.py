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
"""

from __future__ import annotations

import gc
import marshal
import os
import sys

# What the image holds: these and everything they import from dockyard.
ROOTS = ("dockyard.runtime.oci_cli", "dockyard.runtime.oci_lifecycle")
FORMAT = 1
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
            fmt, tag, entries = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return False
    if fmt != FORMAT or tag != sys.implementation.cache_tag:
        return False
    todo = []
    for name, is_package, mtime_ns, size, code in entries:
        if name in sys.modules:
            continue
        source = _source(name, is_package)
        try:
            st = os.stat(source)
        except OSError:
            return False
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return False  # an edited source: the import system compiles it
        todo.append((name, is_package, source, code))
    import _frozen_importlib as bootstrap
    import _frozen_importlib_external as external

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
    return True


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
    try:
        for root in ROOTS:
            __import__(root)
    finally:
        bootstrap._load_unlocked = original
    entries = []
    for name in ("dockyard", "dockyard.runtime", *order):
        if not name.startswith("dockyard") or any(e[0] == name for e in entries):
            continue
        is_package = hasattr(sys.modules[name], "__path__")
        source = _source(name, is_package)
        with open(source, "rb") as f:
            text = f.read()
        st = os.stat(source)
        code = compile(text, source, "exec", dont_inherit=True)
        entries.append((name, is_package, st.st_mtime_ns, st.st_size, code))
    target = path or image_path()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(marshal.dumps((FORMAT, sys.implementation.cache_tag, entries)))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return len(entries)


if __name__ == "__main__":
    count = build(sys.argv[1] if len(sys.argv) > 1 else "")
    print(f"{image_path()}: {count} modules")
