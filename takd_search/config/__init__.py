"""A run's configuration: the space file's schema, its checks, reading it, the budget flags.

    schema.py   the pydantic sections, Range/ParamSpace, Space (types only)
    checks.py   the rules across fields: check(space) -> one line per problem
    files.py    find_space, shipped spaces, load_space (the only YAML reader), SpecError
    flags.py    the one table of `run`/`submit` budget flags and the overrides they make

Every key of a space file is documented in docs/spaces.md. The names below are loaded
on first use, so that `import takd_search.config.flags` (the CLI's --help) does not pay
for pydantic and YAML.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Space": "schema",
    "ParamSpace": "schema",
    "Range": "schema",
    "TeacherInput": "schema",
    "check": "checks",
    "SPACES_DIR": "files",
    "SpecError": "files",
    "describe_spaces": "files",
    "find_space": "files",
    "load_space": "files",
    "shipped_spaces": "files",
    "FLAGS": "flags",
    "add_flags": "flags",
    "flag_overrides": "flags",
    "job_flags": "flags",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
