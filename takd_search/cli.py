"""The `takd-search` command line: parses arguments and calls one function per command.

Errors a user can cause end as one line on stderr naming the problem and the fix, with
exit code 2 and no traceback."""

from __future__ import annotations

import argparse
import sys

from takd_search.commands import (
    cmd_analyze,
    cmd_datasets,
    cmd_export,
    cmd_models,
    cmd_report,
    cmd_run,
    cmd_run_path,
    cmd_spaces,
    cmd_status,
    cmd_stop,
    cmd_store,
    cmd_submit,
)
from takd_search.config.flags import add_flags, add_set_flag, duration, unknown_args_hint
from takd_search.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus the pointer to --help), exit 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _user_errors() -> tuple[type[BaseException], ...]:
    # torch (data, models): a usage error or --help answers without it
    from takd_search.data import DataError
    from takd_search.engine.path import PathError
    from takd_search.models import ModelError

    return (DataError, ModelError, PathError, UserError)


def fail(msg: str) -> int:
    """Print a user error: its first line after the prefix, later lines indented."""
    first, *rest = str(msg).splitlines() or [""]
    print(f"takd-search: error: {first}", file=sys.stderr)
    for line in rest:
        print(f"  {line}", file=sys.stderr)
    return 2


def _floats(text: str) -> tuple[float, ...]:
    """'0.485,0.456,0.406' -> (0.485, 0.456, 0.406)."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        msg = f"{text!r} is not a list of numbers like 0.485,0.456,0.406"
        raise argparse.ArgumentTypeError(msg) from None


def _fraction(flag: str):
    """A type for --kd-fraction/--parent-fraction: a fraction in (0, 1] of the hop's
    epochs, the unit the space files use. Until 0.1 run-path took whole epochs under the
    old names (--kd-epochs, still accepted): an integer (no decimal point) is refused with
    the conversion, not silently reinterpreted."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a fraction like 0.5") from None
        if text.strip().lstrip("+").isdigit():
            n = int(text)
            raise argparse.ArgumentTypeError(
                f"{flag} {n}: is a fraction of --epochs in (0, 1] now, as kd_fraction/"
                f"parent_fraction in space files, not whole epochs: for {n} of 20 epochs pass "
                f"{flag} {n / 20:g}; write 1.0 for all of them"
            )
        if not 0 < v <= 1:
            raise argparse.ArgumentTypeError(
                f"{flag} {text}: must be a fraction of --epochs in (0, 1], e.g. 0.5"
            )
        return v

    parse.__name__ = "fraction"  # argparse names the type in its own messages
    return parse


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training budget per hop (defaults depend on the data set)")
    g.add_argument("--epochs", type=int, help="epochs per hop")
    g.add_argument("--batch-size", type=int, help="images per step")
    g.add_argument("--lr", type=float, help="peak learning rate (SGD)")
    g.add_argument(
        "--warmup-epochs", type=int, help="epochs of linear lr warm-up (default 1; 0: none)"
    )
    g.add_argument(
        "--recipe",
        choices=["default", "takd"],
        help="default: the data set's (`takd-search datasets` lists them); takd: TAKD's "
        "published settings, constant lr, selection on validation (docs/engine.md)",
    )
    g.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    g.add_argument(
        "--data-dir", help="folder holding data set archives (default: $TAKD_DATA or ./data)"
    )
    g.add_argument(
        "--store",
        help="hop store folder shared across runs (default: $TAKD_STORE or results/.store)",
    )
    g.add_argument(
        "--no-store",
        action="store_true",
        help="train every hop, reuse and keep nothing (for benchmarks)",
    )
    g.add_argument("--results", default="results", help="folder for run folders")


def _add_families_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--families",
        metavar="MODULE[,MODULE]",
        help="modules that register model families of your own (mypkg.models or "
        "mypkg.models:setup; also $TAKD_FAMILIES; docs/families.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    from takd_search import __version__  # only for --version

    p = Parser(prog="takd-search", description="Search teacher-assistant distillation paths.")
    p.add_argument("--version", action="version", version=f"takd-search {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    r = sub.add_parser("run", help="search TA paths for one search-space file")
    r.add_argument(
        "--space",
        help="a shipped space name (takd-search spaces lists them) or a path to a .yaml file "
        "(default: digits_vgg; with --resume: the run's own)",
    )
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and print the plan (phases, trials, hops, a compute "
        "estimate, where results go); train and write nothing",
    )
    r.add_argument(
        "--no-report", action="store_true", help="do not write report.md and plots at the end"
    )
    add_flags(r, "run", exclude=["--device"])  # the budget flags (config/flags.py)
    add_set_flag(r)  # any other key of the space file
    r.add_argument("--address", help="join this Ray cluster (default: start Ray locally)")
    r.add_argument(
        "--runner",
        choices=["ray", "inprocess"],
        help="ray: Ray Tune, trials in parallel (default); inprocess: every trial in this "
        "process, one at a time, no Ray (debugging, notebooks); the answer is the same",
    )
    r.add_argument(
        "--tracker",
        action="append",
        choices=["tensorboard", "mlflow", "wandb"],
        help="log every trial's hop curves and the answer to this tracker (repeatable; "
        "also search.trackers in the space)",
    )
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run folder with its saved settings (space, flags, store)",
    )
    r.add_argument(
        "--new",
        action="store_true",
        help="start a fresh run even if an unfinished one of this space exists",
    )
    add_flags(r, "run", only=["--device"])  # listed here in --help, as it always was
    r.add_argument("--store", help="hop store folder shared across runs")
    r.add_argument("--no-store", action="store_true", help="reuse nothing (benchmarks)")
    r.add_argument("--results", help="folder for run folders (default: results)")

    rp = sub.add_parser("run-path", help="train one path teacher -> TAs -> student")
    rp.add_argument(
        "--dataset",
        default="digits",
        help="digits, mnist1d[:N], cifar10, cifar100, npz:PATH or folder:PATH",
    )
    rp.add_argument("--family", help="model family for numeric paths: plain, resnet, mlp")
    _add_families_flag(rp)
    rp.add_argument(
        "--path", required=True, help="10-4-2 (with --family) or plain10>plain4>plain2"
    )
    rp.add_argument("--T", type=float, default=4.0, help="temperature (> 0)")
    rp.add_argument("--alpha", type=float, default=0.5, help="soft-loss weight in [0, 1]")
    rp.add_argument(
        "--kd-fraction",
        type=_fraction("--kd-fraction"),
        metavar="F",
        help="distil during this fraction of --epochs, then train on labels alone (0 < F <= "
        "1, as a space file's kd_fraction; default 1.0)",
    )
    rp.add_argument(
        "--parent-fraction",
        type=_fraction("--parent-fraction"),
        metavar="F",
        help="distil from the parent's weights after this fraction of its epochs (0 < F <= "
        "1, as a space file's parent_fraction; default 1.0: its best-validation weights)",
    )
    # the flags' names until 2026-12-03 (the same fractions), kept for scripts, not listed
    for old, new in (("--kd-epochs", "kd_fraction"), ("--parent-epoch", "parent_fraction")):
        rp.add_argument(old, dest=new, type=_fraction(old), help=argparse.SUPPRESS)
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument(
        "--dense", action="store_true", help="each hop learns from all earlier models (DGKD)"
    )
    rp.add_argument(
        "--no-baseline", action="store_true", help="skip training the student alone for comparison"
    )
    rp.add_argument("--name", help="run folder name under --results")
    rp.add_argument(
        "--image-size", type=int, help="side in pixels that folder:PATH images are resized to"
    )
    t = rp.add_argument_group("your own teacher (path token 'teacher'; docs/own_teacher.md)")
    t.add_argument(
        "--teacher", metavar="PATH", help="a TorchScript file, or a state_dict with --teacher-arch"
    )
    t.add_argument(
        "--teacher-arch",
        metavar="ARCH",
        help="architecture of a state_dict: torchvision:resnet50, timm:NAME, or ours (plain10)",
    )
    t.add_argument(
        "--teacher-mean",
        type=_floats,
        metavar="M,M,M",
        help="the teacher's input mean per channel in [0, 1] units, e.g. 0.485,0.456,0.406",
    )
    t.add_argument(
        "--teacher-std", type=_floats, metavar="S,S,S", help="its std, e.g. 0.229,0.224,0.225"
    )
    t.add_argument("--teacher-size", type=int, help="its input side in pixels, e.g. 224")
    t.add_argument(
        "--finetune-epochs", type=int, help="fine-tune the teacher on this data first (epochs)"
    )
    t.add_argument("--finetune-lr", type=float, help="its peak lr (default: a tenth of --lr's)")
    _add_train_flags(rp)

    mo = sub.add_parser("models", help="list model families, depths and parameter counts")
    mo.add_argument("--json", action="store_true", help="one JSON list on stdout")
    mo.add_argument(
        "--dataset", help="also count parameters at this data set's input shape and classes"
    )
    mo.add_argument("--data-dir")
    _add_families_flag(mo)
    ds = sub.add_parser("datasets", help="list data sets and whether each is available")
    ds.add_argument("--data-dir")
    ds.add_argument("--json", action="store_true", help="one JSON list on stdout")
    spc = sub.add_parser("spaces", help="list the shipped search spaces (for --space NAME)")
    spc.add_argument("--json", action="store_true", help="one JSON list on stdout")

    sb = sub.add_parser("submit", help="run a search as a job on a Ray cluster (docs/cluster.md)")
    sb.add_argument(
        "--address", help="the head's job server, http://HEAD:8265 ($RAY_API_SERVER_ADDRESS)"
    )
    sb.add_argument("--space", default="digits_vgg", help="shipped space name or .yaml path")
    sb.add_argument(
        "--storage",
        required=True,
        help="where results and the hop store go: an absolute path every node sees, "
        "or an s3://, gs:// or file:// URI",
    )
    sb.add_argument("--follow", action="store_true", help="stream the job's log until it ends")
    add_flags(sb, "submit")  # the budget flags the job's `run` gets (config/flags.py)
    add_set_flag(sb)  # any other key: travels to the job's `run` as given
    sb.add_argument("--resume", metavar="RUN", help="continue this run folder (name or path)")
    sb.add_argument("--new", action="store_true", help="start a fresh run, resume nothing")
    sb.add_argument("--store", help="hop store on the cluster (default: STORAGE/store)")
    sb.add_argument("--no-store", action="store_true", help="reuse nothing (benchmarks)")
    sb.add_argument(
        "--python", help="interpreter on the cluster (default: this one's path, sys.executable)"
    )
    sb.add_argument(
        "--stop-grace",
        type=float,
        default=120,
        help="seconds `stop` gives the search to save its state before SIGKILL (default 120)",
    )
    ss = sub.add_parser(
        "status",
        help="a local run folder's progress (status RUN_DIR), or takd-search jobs on a Ray "
        "cluster (status [JOB_ID] --address ...)",
    )
    ss.add_argument("job_id", nargs="?", metavar="RUN_DIR|JOB_ID")
    ss.add_argument("--json", action="store_true", help="one JSON object/list on stdout")
    ss.add_argument("--address", help="the head's job server, http://HEAD:8265")
    ss.add_argument("--follow", action="store_true", help="stream the job's log until it ends")
    sp = sub.add_parser("stop", help="stop a submitted search gracefully (it can be resumed)")
    sp.add_argument("job_id", metavar="JOB_ID")
    sp.add_argument("--address", help="the head's job server, http://HEAD:8265")
    sp.add_argument("--no-wait", action="store_true", help="return once the stop is asked")

    st = sub.add_parser("store", help="see and prune the hop store")
    st.add_argument("action", choices=["ls", "du", "gc"])
    st.add_argument("--json", action="store_true", help="ls/du: JSON on stdout")
    st.add_argument("--store", help="store folder (default: $TAKD_STORE or results/.store)")
    st.add_argument(
        "--older-than",
        type=duration,
        help="gc: remove entries unused for this long (e.g. 30d); default all",
    )

    rep = sub.add_parser("report", help="report.md and plots for a finished run folder")
    rep.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run folder made by takd-search run or run-path"
    )
    rep.add_argument("--out", metavar="DIR", help="write there instead of into the run folder")

    an = sub.add_parser("analyze", help="compare runs: best path, heuristic, BLKD, NoKD per run")
    an.add_argument(
        "runs",
        nargs="+",
        metavar="CSV_OR_RUN_DIR",
        help="run folders, their CSVs, a folder of runs (results/), or an earlier analysis.csv",
    )
    an.add_argument(
        "--out", metavar="DIR", default=".", help="folder for analysis.csv/.md (default: .)"
    )

    ex = sub.add_parser("export", help="the confirmed best student as TorchScript + JSON")
    ex.add_argument(
        "run_dir", metavar="RUN_DIR", help="a finished run folder (takd-search run or run-path)"
    )
    ex.add_argument(
        "--path",
        help="another network: top2, heuristic, blkd, nokd, or a confirmed/searched path "
        "(plain10>plain4>plain2 or 10-4-2)",
    )
    ex.add_argument(
        "--out", default="student.pt", help="output file; the sidecar is its .json twin"
    )
    ex.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript")
    ex.add_argument(
        "--store",
        help="the hop store holding its weights, when not where the run left it (e.g. "
        "pulled from a cluster with the results)",
    )
    _add_families_flag(ex)
    return p


COMMANDS = {
    "submit": cmd_submit,
    "status": cmd_status,
    "spaces": cmd_spaces,
    "stop": cmd_stop,
    "report": cmd_report,
    "analyze": cmd_analyze,
    "export": cmd_export,
    "run": cmd_run,
    "run-path": cmd_run_path,
    "models": cmd_models,
    "datasets": cmd_datasets,
    "store": cmd_store,
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """parse_args, but an argument `run`/`submit` do not know that names a key of the space
    file (`--lr 0.01`, `train.lr=0.01`) gets the `--set` that does it in its one line."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        hint = unknown_args_hint(extra) if args.command in ("run", "submit") else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    return args


def main(argv: list[str] | None = None) -> int:
    from takd_search.progress import print_to_stderr  # light: no torch, no Ray

    print_to_stderr()  # progress lines (the `takd_search` logger) on stderr
    args = _parse(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("takd-search: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user errors become one line; anything else is a bug
        if isinstance(e, _user_errors()):
            return fail(str(e))
        raise
    finally:
        if "takd_search.search.ray_session" in sys.modules:
            sys.modules["takd_search.search.ray_session"].stop_ray()


if __name__ == "__main__":
    raise SystemExit(main())
