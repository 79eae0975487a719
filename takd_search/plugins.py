"""Model families from outside the package: importing the modules that register them.

A family is registered with `takd_search.models.register_model` by whatever module
defines it. This module finds and imports those modules (docs/families.md):

- named by the user: the space file's `models.families: [mypkg.models]`, the `--families`
  flag of run-path, export and models, or `$TAKD_FAMILIES` (comma-separated). Each entry
  is `module` (importing it registers its families) or `module:function` (called once,
  with no arguments, after the import);
- installed packages that declare an entry point in the group `takd_search.families`;
- the bundled families over optional packages (`takd_search.zoo`: torchvision, timm),
  which register only where their package imports.

`autoload()` runs once per process, the first time a model name is not known: so a Ray
worker or an `export` in another process finds a family from `$TAKD_FAMILIES` (the Ray
session passes it, and the folders the modules came from, to its workers: `for_workers`).

Only the standard library here: models.py imports this module, and the modules it
loads import models.py at run time.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from takd_search.errors import UserError, first_line

ENV = "TAKD_FAMILIES"
ENTRY_POINT_GROUP = "takd_search.families"
BUNDLED = ("takd_search.zoo",)  # families over optional packages (torchvision, timm)

_loaded: dict[str, str | None] = {}  # spec -> the sys.path folder its module came from
_failed: dict[str, str] = {}  # an entry point or bundled source that failed -> why
_autoloaded = False


class FamilyImportError(UserError):
    """A module named as holding model families cannot be imported (one line)."""


def specs_of(text: str | None) -> list[str]:
    """'a.b, c:d' -> ['a.b', 'c:d'] (the form of $TAKD_FAMILIES and --families)."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def load(specs, where: str = "families") -> list[str]:
    """Import each `module` or `module:function` (once per process); returns the specs.

    Raises FamilyImportError, naming `where` (the key or flag that gave it), when a module
    cannot be imported or a function is missing or fails."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    for spec in specs:
        if spec in _loaded:
            continue
        module_name, _, attr = str(spec).strip().partition(":")
        try:
            module = importlib.import_module(module_name)
            if attr:
                getattr(module, attr)()
        except Exception as e:  # any failure of the user's module: one line
            raise FamilyImportError(
                f"{where}: cannot load model families from {spec!r} ({type(e).__name__}: "
                f"{first_line(e)}): install its package, or put its folder on PYTHONPATH "
                "(docs/families.md)"
            ) from None
        _loaded[spec] = _root(module, module_name)
    return specs


def _root(module, module_name: str) -> str | None:
    """The sys.path folder `module_name` was imported from (a worker needs it on its path)."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve().parent
    if Path(file).name == "__init__.py":  # a package: its own folder is one level deeper
        path = path.parent
    for _ in range(module_name.count(".")):
        path = path.parent
    return str(path)


def autoload() -> None:
    """Once per process: $TAKD_FAMILIES, the entry points, the bundled optional families.

    A module named in $TAKD_FAMILIES that cannot be imported is an error (the user named
    it); an entry point of another installed package or a bundled family whose package
    does not import is only noted (`unavailable()`), never fatal."""
    global _autoloaded
    if _autoloaded:
        return
    _autoloaded = True
    load(specs_of(os.environ.get(ENV)), where=f"${ENV}")
    from importlib.metadata import entry_points  # only on a miss: not for --help

    try:
        eps = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # broken metadata of some installed package
        eps = []
    for spec in [ep.value for ep in eps] + list(BUNDLED):
        try:
            load(spec, where=f"entry point {spec}")
        except FamilyImportError as e:
            _failed[spec] = str(e)


def loaded() -> list[str]:
    """The specs imported in this process by the user's naming or $TAKD_FAMILIES (what a
    worker must import too); bundled and entry-point ones load there by themselves."""
    return [s for s in _loaded if s not in BUNDLED]


def note_unavailable(source: str, reason: str) -> None:
    """Record that `source` (an optional package such as torchvision) gave no families
    here, and why: takd_search.zoo calls this when its package does not import."""
    _failed[source] = reason


def unavailable() -> dict[str, str]:
    """Family sources that failed to load here, and why (for 'unknown family' messages)."""
    return dict(_failed)


def module_paths() -> list[str]:
    """The files or folders of the modules loaded by name that are not installed packages
    (`/home/me/code/my_families.py`, `/home/me/code/mypkg`): what `submit` ships to the
    cluster with the job (Ray's py_modules), as it ships takd_search itself."""
    out = []
    for spec in loaded():
        root = _loaded[spec]
        if not root or any(
            part in ("site-packages", "dist-packages") for part in Path(root).parts
        ):
            continue
        top = Path(root) / spec.split(":")[0].split(".")[0]
        path = top if top.is_dir() else top.with_suffix(".py")
        if path.exists():
            out.append(str(path))
    return list(dict.fromkeys(out))


def for_workers() -> dict[str, str]:
    """Env vars that make a worker process load the same families: $TAKD_FAMILIES and the
    PYTHONPATH folders the modules came from ({} when no family was loaded by name)."""
    specs = loaded()
    if not specs:
        return {}
    roots = [r for s in specs if (r := _loaded[s])]
    out = {ENV: ",".join(dict.fromkeys(specs_of(os.environ.get(ENV)) + specs))}
    if roots:
        out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(roots))
    return out
