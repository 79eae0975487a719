"""The budget flags of `takd-search run` and `submit`, declared once.

Each flag overrides one key of the space file (`--trials` -> search.n_trials), or, for
--device, says where the trials train. From this one table the CLI adds the flags to the
`run` and `submit` parsers (`add_flags`), a parsed command line becomes dotted overrides of
the space file (`flag_overrides`), and `submit` passes the flags it was given on to the
job's `takd-search run` (`job_flags`). A flag is a `submit` flag when it has a submit help;
only those travel to the job.

No pydantic, no YAML, no torch here: the CLI imports this module for its --help.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass


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


def flag_overrides(args) -> dict:
    """The budget flags of `run` and `submit` as dotted overrides of the space file."""
    return {f.key: getattr(args, f.dest, None) for f in FLAGS if f.key}


def job_flags(args) -> list[tuple[str, object]]:
    """(flag, value) of each `submit` flag given, for the job's `takd-search run`."""
    out = []
    for f in _flags("submit"):
        v = getattr(args, f.dest, None)
        if v is not None:
            out.append((f.name, v))
    return out
