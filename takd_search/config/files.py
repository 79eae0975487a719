"""Search-space files on disk -> a validated `Space` (the only YAML reader).

`--space NAME` finds a shipped space (search_spaces/NAME.yaml; packaged as
takd_search/spaces/ in a wheel) or a path. A file is checked whole before anything
starts: every problem is reported at once, one line each, with its dotted location
(`distill.alpha.high: ...`), as a SpecError (exit 2). Types are config.schema, the rules
across fields config.checks; every key is documented in docs/spaces.md.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from takd_search.config.checks import check
from takd_search.config.flags import FLAG_OF, space_keys
from takd_search.config.schema import Space
from takd_search.errors import UserError, first_line
from takd_search.search.fractions import upgrade_key


def _spaces_dir() -> Path:
    """Where the shipped spaces are: inside the package once installed from a wheel
    (`takd_search/spaces/`, mapped from the repository's `search_spaces/` by
    pyproject.toml), the repository's `search_spaces/` in a source checkout."""
    here = Path(__file__).resolve().parent.parent  # takd_search/
    packaged = here / "spaces"
    if any(packaged.glob("*.yaml")):
        return packaged
    return here.parent / "search_spaces"


SPACES_DIR = _spaces_dir()


class SpecError(UserError):
    """A search-space file with problems; the message has one line per problem."""


def find_space(name_or_path: str) -> Path:
    """`--space NAME` -> search_spaces/NAME.yaml (also ./search_spaces); a path as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in name_or_path:
        if not p.exists():
            raise SpecError(
                f"space file {name_or_path} does not exist: check the path, or "
                f"use a shipped name ({', '.join(shipped_spaces())})"
            )
        return p
    for root in (Path.cwd() / "search_spaces", SPACES_DIR):
        cand = root / f"{name_or_path}.yaml"
        if cand.exists():
            return cand
    raise SpecError(
        f"no search space named {name_or_path!r}: use one of "
        f"{', '.join(shipped_spaces())} or a path to a .yaml file"
    )


def shipped_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def describe_spaces() -> list[dict]:
    """The shipped spaces: [{'name', 'description', 'dataset', 'file'}], by name. The
    description is the file's `description:` key (one line); YAML is read, not validated,
    so one broken file cannot hide the others."""
    out = []
    for name in shipped_spaces():
        path = SPACES_DIR / f"{name}.yaml"
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        out.append(
            {
                "name": name,
                "description": str(raw.get("description") or "").strip(),
                "dataset": data.get("dataset"),
                "file": str(path),
            }
        )
    return out


def override_text(key: str, value) -> str:
    """How an override was given on the command line: its budget flag (`--trials 4`) or
    `--set KEY=VALUE` (the value in YAML flow style, as it could be typed again)."""
    flag = FLAG_OF.get(key)
    if flag is not None:
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        return f"{flag} {shown}"
    shown = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
    shown = shown.removesuffix("...").strip()  # a bare scalar document ends with '...'
    return f"--set {key}={shown}"


def _unknown_key(key: str) -> str | None:
    """Why `key` is not a key of a space file, naming the keys of its section; None if it
    is one (a leaf such as train.lr, or a whole section such as models.teacher_input)."""
    keys = space_keys()
    if key in keys or any(k.startswith(f"{key}.") for k in keys):
        return None
    section, _, _ = key.rpartition(".")
    while section and not any(k.startswith(f"{section}.") for k in keys):
        section, _, _ = section.rpartition(".")
    if not section:
        tops = sorted({k.split(".")[0] for k in keys if "." in k})
        return (
            f"{key} is not a key of a space file: its sections are {', '.join(tops)} "
            "(docs/spaces.md)"
        )
    inside = dict.fromkeys(
        k[len(section) + 1 :].split(".")[0] for k in keys if k.startswith(f"{section}.")
    )
    return (
        f"{section} has no key {key[len(section) + 1 :]!r}: its keys are "
        f"{', '.join(inside)} (docs/spaces.md)"
    )


def _set_dotted(d: dict, dotted: str, value) -> None:
    """d['a']['b'] = value for 'a.b', making the sections a file left out."""
    *parents, leaf = dotted.split(".")
    for k in parents:
        if not isinstance(d.get(k), dict):
            d[k] = {}  # absent (or a wrong scalar, which the override replaces)
        d = d[k]
    d[leaf] = value


def _blame(problem: str, overrides: dict) -> str | None:
    """The override a validation problem is about (its location is the key or under it)."""
    loc = problem.split(": ", 1)[0]
    for key, value in overrides.items():
        inside = loc.startswith((f"{key}.", f"{key}[")) or key.startswith(f"{loc}.")
        if value is not None and (loc == key or inside):
            return override_text(key, value)
    return None


def _loc(loc: tuple) -> str:
    parts = []
    for x in loc:
        if isinstance(x, int):
            parts[-1:] = [f"{parts[-1]}[{x}]"] if parts else [f"[{x}]"]
        elif x in (
            "float",
            "int",
            "str",
            "list[float]",
            "Range",
            "bool",
            "list[Annotated]",
            "function-before[_no_bool(), function-before[_no_numeric_string(), float]]",
        ):
            continue
        elif str(x).startswith(("function-", "list[", "constrained")):
            continue
        else:
            parts.append(str(x))
    return ".".join(parts)


def _pydantic_problems(err: ValidationError) -> list[str]:
    seen, out = set(), []
    for e in err.errors():
        loc = _loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key: remove it or check its spelling against docs/spaces.md"
        elif e["type"] == "missing":
            msg = "missing: this key is required"
        if loc in seen:  # a union reports each alternative; the first says enough
            continue
        seen.add(loc)
        out.append(f"{loc}: {msg}")
    return out


def load_space(name_or_path: str, overrides: dict | None = None) -> tuple[Space, Path, str]:
    """Read, override (dotted keys, e.g. {'search.n_trials': 4}; None values are not
    given) and validate a space.

    An override of a key no space file has is refused before anything else, naming the
    keys of its section; a problem an override causes names the override (`--set
    train.lr=-1: train.lr: ...`, `--trials 0: ...`) rather than the file.
    Returns (space, file path, the file's text). Raises SpecError with every problem.
    """
    path = find_space(name_or_path)
    text = path.read_text()
    where = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or first_line(e)
        raise SpecError(
            f"{where}: YAML syntax error{at}: {problem}: fix the file's indentation/quoting"
        ) from None
    if raw is None:
        raise SpecError(
            f"{where}: the file is empty: copy a shipped space "
            "(search_spaces/digits_vgg.yaml) and edit it"
        )
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where}: expected a mapping of sections (data, models, train, ...), "
            f"got a {type(raw).__name__}"
        )
    # a key under its name of an older version (`--set distill.kd_epochs=0.5`) sets today's
    overrides = {upgrade_key(k): v for k, v in (overrides or {}).items() if v is not None}
    unknown = [
        f"{override_text(k, v)}: {why}" for k, v in overrides.items() if (why := _unknown_key(k))
    ]
    if unknown:
        raise SpecError("\n".join(unknown))
    for key, value in overrides.items():
        _set_dotted(raw, key, value)
    try:
        space = Space.model_validate(raw)
    except ValidationError as e:
        problems = _pydantic_problems(e)
    else:
        problems = check(space)
    if problems:  # a problem an override made names the override (and the keys' page)
        lines = []
        for p in problems:
            by = _blame(p, overrides)
            docs = " (docs/spaces.md)" if by and "docs/spaces.md" not in p else ""
            lines.append(f"{by or where}: {p}{docs}")
        raise SpecError("\n".join(lines))
    if space.name is None:
        space = space.model_copy(update={"name": path.stem})
    return space, path, text
