"""The budget flags of `takd-search run` and `submit`, declared once.

Each flag overrides one key of the space file (`--trials` -> search.n_trials), or, for
--device, says where the trials train. From this one table the CLI adds the flags to the
`run` and `submit` parsers (`add_flags`), a parsed command line becomes dotted overrides of
the space file (`flag_overrides`), and `submit` passes the flags it was given on to the
job's `takd-search run` (`job_flags`). A flag is a `submit` flag when it has a submit help;
only those travel to the job.

Any other key of the space file is set with `--set KEY=VALUE` (repeatable; `set_item`
parses one, `set_overrides` merges them with the budget flags, which stay as aliases of
their keys). A flag that is not in the table, such as `--lr 0.01`, gets a hint naming the
`--set` that does it (`unknown_args_hint`).

No pydantic, no torch here, and YAML only once a `--set` is given: the CLI imports this
module for its --help.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# a number PyYAML (YAML 1.1) reads as text: 1e-4, 5E3 (no dot). On a command line it is a
# number; in a file the schema asks for a dot instead.
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def duration(text: str) -> float:
    """'30d', '12h', '90m', '45s' or plain seconds -> seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        msg = f"{text!r} is not a duration like 7d, 12h or 90m"
        raise argparse.ArgumentTypeError(msg) from None


def seed_list(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of seeds like 1,2,3") from None


@dataclass(frozen=True)
class SetItem:
    """One `--set KEY=VALUE`: the dotted key, the value as YAML reads it, the text given."""

    key: str
    value: object
    text: str


def set_item(text: str) -> SetItem:
    """'train.lr=0.01' -> SetItem('train.lr', 0.01, ...); the value is read as YAML, so
    `distill.T=[2,8]`, `search.sampler=random` and `distill.T={low: 1, high: 20}` work,
    and an exponent without a dot (`1e-4`) is a number here. The key's spelling only is
    checked here; whether the space has it is checked with the file (config.files)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KEY=VALUE with a dotted key of the space file, e.g. "
            "train.lr=0.01 or distill.T=[2,8] (keys: docs/spaces.md)"
        )
    import yaml  # only once a --set is given: --help stays light

    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or "not YAML"
        raise argparse.ArgumentTypeError(
            f"--set {text}: the value is not YAML ({problem}): quote it, e.g. --set '{key}=[2, 8]'"
        ) from None
    if value is None:
        raise argparse.ArgumentTypeError(
            f"--set {text}: no value: give one, e.g. --set {key}=VALUE (to use the "
            "default, leave the key out)"
        )
    if isinstance(value, str) and _EXPONENT.match(value.strip()):
        value = float(value)
    return SetItem(key, value, text)


@dataclass(frozen=True)
class Flag:
    name: str  # as typed: --trials
    key: str | None  # the space key it overrides; None: not a space setting (--device)
    type: Callable | None
    run_help: str
    submit_help: str | None  # None: not a `submit` flag (and so not passed to the job)

    @property
    def dest(self) -> str:
        """The argparse attribute: --time-budget -> time_budget."""
        return self.name.removeprefix("--").replace("-", "_")


# in the order --help lists them
FLAGS: tuple[Flag, ...] = (
    Flag(
        "--trials", "search.n_trials", int, "override search.n_trials", "override search.n_trials"
    ),
    Flag(
        "--time-budget",
        "search.time_budget_s",
        duration,
        "override search.time_budget_s (e.g. 2h, 90m)",
        "override search.time_budget_s",
    ),
    Flag(
        "--epochs",
        "train.epochs",
        int,
        "override train.epochs (every hop)",
        "override train.epochs (every hop)",
    ),
    Flag(
        "--dataset",
        "data.dataset",
        None,
        "override data.dataset (e.g. npz:/data/mnist.npz)",
        "override data.dataset",
    ),
    Flag(
        "--data-dir",
        "data.data_dir",
        None,
        "folder with data set archives ($TAKD_DATA)",
        "data set folder on the cluster (absolute)",
    ),
    Flag(
        "--gpus-per-trial",
        "resources.gpu",
        float,
        "override resources.gpu (a fraction of one GPU per trial)",
        "a fraction of one GPU per trial",
    ),
    Flag(
        "--cpus-per-trial",
        "resources.cpu",
        float,
        "override resources.cpu",
        "override resources.cpu",
    ),
    Flag(
        "--seeds",
        "baselines.confirm_seeds",
        seed_list,
        "override baselines.confirm_seeds, e.g. 1,2,3",
        None,
    ),
    Flag(
        "--device",
        None,
        None,
        "cuda, mps or cpu (default: the best available)",
        "cuda, mps or cpu (default: the best available)",
    ),
)

# the flag that overrides each space key, for messages about an override
FLAG_OF = {f.key: f.name for f in FLAGS if f.key}


def _flags(command: str) -> list[Flag]:
    if command not in ("run", "submit"):
        raise ValueError(f"no budget flags for {command!r}: run or submit")
    return [f for f in FLAGS if command == "run" or f.submit_help is not None]


def add_flags(
    parser: argparse.ArgumentParser,
    command: str,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> None:
    """Add `command`'s flags (run or submit), in table order; `only`/`exclude` pick some
    by name, where the parser lists them among its other flags."""
    only, exclude = (None if only is None else set(only)), set(exclude)
    for f in _flags(command):
        if (only is None or f.name in only) and f.name not in exclude:
            kw = {"type": f.type} if f.type is not None else {}
            help = f.run_help if command == "run" else f.submit_help
            parser.add_argument(f.name, help=help, **kw)


def add_set_flag(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE`, repeatable: any key of the space file (docs/spaces.md)."""
    parser.add_argument(
        "--set",
        dest="set_items",
        metavar="KEY=VALUE",
        type=set_item,
        action="append",
        default=[],
        help="override any key of the space file, e.g. --set train.lr=0.01 --set "
        "distill.T=[2,8] (VALUE is YAML; repeatable; keys: docs/spaces.md)",
    )


def flag_overrides(args) -> dict:
    """The budget flags of `run` and `submit` as dotted overrides of the space file."""
    return {f.key: getattr(args, f.dest, None) for f in FLAGS if f.key}


class FlagConflict(ValueError):
    """Two settings of one key on a command line (a budget flag and a --set, or two --set)."""


def set_overrides(args) -> dict:
    """The budget flags and every `--set` as one dict of dotted overrides (None: not given).

    A key set twice with different values is a FlagConflict (the CLI makes it a one-line
    user error): `--trials 4 --set search.n_trials=8` has no clear meaning."""
    out = flag_overrides(args)
    by = {f.key: f.name for f in FLAGS if f.key and out.get(f.key) is not None}
    for item in getattr(args, "set_items", None) or []:
        if out.get(item.key) is not None and out[item.key] != item.value:
            raise FlagConflict(
                f"{by[item.key]} and --set {item.text} both set {item.key}: give it once"
            )
        out[item.key] = item.value
        by[item.key] = f"--set {item.text}"
    return out


def set_sources(args) -> dict[str, str]:
    """Dotted key -> the `--set KEY=VALUE` text that gave it (for messages about it)."""
    return {item.key: f"--set {item.text}" for item in getattr(args, "set_items", None) or []}


def job_flags(args) -> list[tuple[str, object]]:
    """(flag, value) of each `submit` flag given, for the job's `takd-search run`."""
    out = []
    for f in _flags("submit"):
        v = getattr(args, f.dest, None)
        if v is not None:
            out.append((f.name, v))
    for item in getattr(args, "set_items", None) or []:
        out.append(("--set", item.text))
    return out


def _leaves(model, prefix: str = "") -> list[str]:
    """Every dotted key of a pydantic model class (sections recursed), in field order."""
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        inner = [sub, *getattr(sub, "__args__", ())]
        # a section (or an optional one); a Range is a value of a hyper-parameter, not one
        section = next(
            (t for t in inner if hasattr(t, "model_fields") and t.__name__ != "Range"), None
        )
        key = f"{prefix}{name}"
        if section is not None:
            out += _leaves(section, f"{key}.")
        else:
            out.append(key)
    return out


def space_keys() -> list[str]:
    """Every dotted key of a space file (from config.schema: pydantic is loaded here)."""
    from takd_search.config.schema import Space  # pydantic: only on the error path

    return _leaves(Space)


def unknown_args_hint(extra: list[str]) -> str:
    """For `run`/`submit` arguments argparse does not know, the `--set` that does what was
    meant: `--lr 0.01` -> `--set train.lr=0.01`, `train.lr=0.01` -> `--set
    train.lr=0.01`; '' when nothing matches."""
    keys = space_keys()
    for i, tok in enumerate(extra):
        if tok.startswith("--"):
            name, eq, val = tok[2:].partition("=")
            leaf = name.replace("-", "_")
            match = [k for k in keys if k.rsplit(".", 1)[-1].lower() == leaf.lower()]
            match.sort(key=lambda k: k.count("."))  # train.lr before teacher_finetune.lr
            if not match:
                continue
            if not eq:
                nxt = extra[i + 1] if i + 1 < len(extra) else ""
                val = nxt if nxt and not nxt.startswith("--") else "VALUE"
            return f"; to set {' or '.join(match)}, use --set {match[0]}={val}"
        key = tok.partition("=")[0]
        if "=" in tok and _KEY.match(key) and "." in key:
            return f"; to override {key}, use --set {tok}"
    return ""
