"""The `takd-search` command line: parses arguments and calls one function per command.

Errors a user can cause end as one line on stderr naming the problem and the fix, with
exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import sys
import time

from takd_search.config.flags import add_flags, duration, flag_overrides
from takd_search.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus the pointer to --help), exit 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _user_errors() -> tuple[type[BaseException], ...]:
    from takd_search.data import DataError
    from takd_search.engine.path import PathError
    from takd_search.models import ModelError

    return (DataError, ModelError, PathError, UserError)


def _fail(msg: str) -> int:
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
    """A type for --kd-epochs/--parent-epoch: a fraction in (0, 1] of the hop's epochs,
    the unit the space files use. Until 0.1 run-path took whole epochs here: an integer
    (no decimal point) is refused with the conversion, not silently reinterpreted."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a fraction like 0.5") from None
        if text.strip().lstrip("+").isdigit():
            n = int(text)
            raise argparse.ArgumentTypeError(
                f"{flag} {n}: is a fraction of --epochs in (0, 1] now, as kd_epochs/"
                f"parent_epoch in space files, not whole epochs: for {n} of 20 epochs pass "
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


def build_parser() -> argparse.ArgumentParser:
    from takd_search import __version__

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
    r.add_argument("--address", help="join this Ray cluster (default: start Ray locally)")
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
    rp.add_argument(
        "--path", required=True, help="10-4-2 (with --family) or plain10>plain4>plain2"
    )
    rp.add_argument("--T", type=float, default=4.0, help="temperature (> 0)")
    rp.add_argument("--alpha", type=float, default=0.5, help="soft-loss weight in [0, 1]")
    rp.add_argument(
        "--kd-epochs",
        type=_fraction("--kd-epochs"),
        metavar="F",
        help="distil during this fraction of --epochs, then train on labels alone (0 < F <= "
        "1, the unit of a space file's kd_epochs; default 1.0)",
    )
    rp.add_argument(
        "--parent-epoch",
        type=_fraction("--parent-epoch"),
        metavar="F",
        help="distil from the parent's weights after this fraction of its epochs (0 < F <= "
        "1, as a space file's parent_epoch; default 1.0: its best-validation weights)",
    )
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
    return p


def cmd_run_path(a) -> int:
    from takd_search.engine.hop import HopParams
    from takd_search.run_path import recipe, run_path

    if a.T <= 0:
        raise UserError(f"--T {a.T} must be > 0 (a softmax temperature)")
    if not 0 <= a.alpha <= 1:
        raise UserError(f"--alpha {a.alpha} must be within [0, 1]")
    for flag in ("epochs", "batch_size"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            raise UserError(f"--{flag.replace('_', '-')} {v} must be at least 1")
    if a.lr is not None and a.lr <= 0:
        raise UserError(f"--lr {a.lr} must be > 0")
    from takd_search.search.space import resolve_hops

    if a.warmup_epochs is not None and a.warmup_epochs < 0:
        raise UserError(f"--warmup-epochs {a.warmup_epochs} must be >= 0")
    train = recipe(
        a.dataset,
        a.recipe,
        family=a.family,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        warmup_epochs=a.warmup_epochs,
    )
    # fractions -> the whole epochs the chain takes, exactly as for a space file's hops
    (whole,) = resolve_hops(
        [{"T": a.T, "alpha": a.alpha, "kd_epochs": a.kd_epochs or 1.0,
          "parent_epoch": a.parent_epoch or 1.0}],
        train.epochs,
    )  # fmt: skip
    hop = HopParams(
        T=a.T,
        alpha=a.alpha,
        kd_epochs=whole["kd_epochs"] if a.kd_epochs is not None else None,
        parent_epoch=whole["parent_epoch"],
    )
    teacher = _teacher_flags(a)
    out = run_path(
        a.dataset,
        a.path,
        family=a.family,
        data_dir=a.data_dir,
        train=train,
        hop=hop,
        seed=a.seed,
        dense=a.dense,
        baseline=not a.no_baseline,
        store_root=a.store,
        no_store=a.no_store,
        device=a.device,
        results_dir=a.results,
        name=a.name,
        teacher=teacher,
        image_size=a.image_size,
    )
    for line in out["failed"]:  # a hop that diverged or did not learn: the run failed
        print(f"takd-search: failed: {line}", file=sys.stderr)
    return 1 if out["failed"] else 0


def _teacher_flags(a):
    """--teacher and its companions -> a teacher.TeacherSource (None without --teacher)."""
    from takd_search.teacher.source import FineTune, read_teacher

    extra = [
        f"--{k.replace('_', '-')}"
        for k in ("teacher_arch", "teacher_mean", "teacher_std", "teacher_size")
        + ("finetune_epochs", "finetune_lr")
        if getattr(a, k) is not None
    ]
    if a.teacher is None:
        if extra:
            raise UserError(f"{extra[0]} describes a teacher file: add --teacher PATH")
        return None
    if a.finetune_lr is not None and a.finetune_epochs is None:
        raise UserError("--finetune-lr needs --finetune-epochs N")
    tin = {"mean": a.teacher_mean, "std": a.teacher_std, "size": a.teacher_size}
    ft = FineTune(a.finetune_epochs, a.finetune_lr) if a.finetune_epochs is not None else None
    return read_teacher(a.teacher, a.teacher_arch, tin, ft)


def cmd_run(a) -> int:
    from takd_search.progress import console_log
    from takd_search.search import Interrupted, RunFailed, run_search

    overrides = flag_overrides(a)
    try:
        with console_log():  # copied into RUN/console.log once the run folder is known
            run_search(
                a.space,
                overrides=overrides,
                results_dir=a.results,
                store_root=a.store,
                no_store=a.no_store,
                address=a.address,
                resume=a.resume,
                new=a.new,
                device=a.device,
                dry_run=a.dry_run,
                write_report=not a.no_report,
            )
    except Interrupted:
        return 130
    except RunFailed as e:
        print(f"takd-search: run failed: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_models(a) -> int:
    from takd_search import models
    from takd_search.progress import table

    columns = [("model", "model"), ("c10", "params CIFAR-10"), ("c100", "params CIFAR-100")]
    ds = None
    if getattr(a, "dataset", None):
        from takd_search.data import load_dataset

        ds = load_dataset(a.dataset, a.data_dir)
        shape = "x".join(map(str, ds.input_shape))
        columns.append(("dataset_params", f"params {ds.name} ({shape}, {ds.num_classes} classes)"))
    rows = []
    for name in models.list_models():
        row = {
            "model": name,
            "c10": models.model_size(name, 10, (3, 32, 32)),
            "c100": models.model_size(name, 100, (3, 32, 32)),
        }
        if ds is not None:
            row["dataset_params"] = models.model_size(name, ds.num_classes, ds.input_shape)
        rows.append(row)
    if a.json:
        return _print_json(rows)
    print(table(rows, columns))
    print(
        "\nplain (alias vgg): TAKD's VGG-like CNN, depth = conv layers; resnet: CIFAR "
        "ResNet 6n+2; mlp: mlpLxW = L hidden layers of W units (any L, W). On 1-D signals "
        "plain and resnet use Conv1d/MaxPool1d with the same books."
    )
    return 0


def cmd_datasets(a) -> int:
    from takd_search.data import dataset_status
    from takd_search.progress import table

    rows = dataset_status(a.data_dir)
    if a.json:
        return _print_json(rows)
    for r in rows:
        r["available"] = {True: "yes", False: "no"}.get(r.get("available"), "-")
    print(
        table(
            rows,
            [
                ("name", "data set"),
                ("available", "available"),
                ("where", "where"),
                ("description", "description"),
            ],
        )
    )
    from takd_search.run_path import RECIPES, TAKD_RECIPE, describe_recipe

    print("\ntraining recipe per data set (--recipe default; flags and train.* override):")
    for name, cfg in RECIPES.items():
        label = name + (":PATH" if name in ("npz", "folder") else "")
        print(f"  {label:12s} {describe_recipe(cfg)}")
    print(f"  {'--recipe takd':12s} {describe_recipe(TAKD_RECIPE)} (resnet: lr 0.1)")
    return 0


def cmd_store(a) -> int:
    from takd_search.engine.store import Store, default_root

    root = a.store or default_root()
    store = Store(root, create=a.action == "gc")  # ls/du only read: a read-only mount works
    if a.action == "ls":
        from takd_search.progress import table

        if a.json:  # whole keys and the full lineage and metrics, for scripts
            return _print_json(
                [
                    {
                        "key": e["key"],
                        "lineage": e["lineage"],
                        "metrics": e["metrics"],
                        "bytes": e["bytes"],
                        "mtime": e["mtime"],
                    }
                    for e in store.entries()
                ]  # fmt: skip
            )
        rows = []
        for e in store.entries():
            lin, m = e["lineage"], e["metrics"]
            rows.append(
                {
                    "key": e["key"][:12],
                    "model": lin["model"],
                    "from": ",".join(k[:8] for k in lin["parents"]) or "scratch",
                    "T": lin["T"],
                    "alpha": lin["alpha"],
                    "val_acc": m["val_acc"],
                    "seconds": round(m["seconds"], 1),
                    "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(e["mtime"])),
                }
            )
        print(
            table(
                rows,
                [
                    ("key", "key"),
                    ("model", "model"),
                    ("from", "from"),
                    ("T", "T"),
                    ("alpha", "alpha"),
                    ("val_acc", "val %"),
                    ("seconds", "seconds"),
                    ("created", "created"),
                ],
            )
        )
        print(f"\n{len(rows)} hops in {store.root}")
    elif a.action == "du":
        if a.json:
            return _print_json(store.usage())
        for kind, u in store.usage().items():
            print(f"{kind:8s} {u['files']:6d} files {u['bytes'] / 1e6:10.1f} MB")
    else:
        removed = store.gc(a.older_than)
        print(
            f"removed {removed['hops']} hops and {removed['banks']} logit banks "
            f"({removed['bytes'] / 1e6:.1f} MB) from {store.root}"
        )
    return 0


def cmd_report(a) -> int:
    from takd_search.report import report

    out = report(a.run_dir, a.out)
    print(out["table"])
    print(f"\nwrote {out['report']} and {len(out['plots'])} plots")
    return 0


def cmd_analyze(a) -> int:
    from takd_search.report.analyze import analyze

    out = analyze(a.runs, a.out)
    print(out["text"])
    print(f"\nwrote {out['csv']} and {out['md']}")
    return 0


def cmd_export(a) -> int:
    from takd_search.export import export

    model, sidecar = export(a.run_dir, a.out, path=a.path, fmt=a.format)
    print(f"wrote {model} and {sidecar}")
    return 0


def cmd_submit(a) -> int:
    from takd_search.cluster import submit

    return submit(a)


def cmd_status(a) -> int:
    import os

    if a.job_id is not None and (os.path.isdir(a.job_id) or os.sep in a.job_id):
        from takd_search.progress import format_status, run_status

        if a.address or a.follow:
            raise UserError(
                f"{a.job_id} is a run folder: --address/--follow are for cluster jobs; "
                f"run takd-search status {a.job_id}"
            )
        s = run_status(a.job_id)
        if a.json:
            return _print_json(s)
        print(format_status(s))
        return 0
    from takd_search.cluster import status

    return status(a)


def cmd_spaces(a) -> int:
    from takd_search.config.files import SPACES_DIR, describe_spaces
    from takd_search.progress import table

    rows = describe_spaces()
    if a.json:
        return _print_json(rows)
    print(table(rows, [("name", "space"), ("dataset", "data set"), ("description", "what")]))
    print(f"\n{len(rows)} spaces in {SPACES_DIR}; run one with takd-search run --space NAME")
    return 0


def _print_json(obj) -> int:
    import json

    print(json.dumps(obj, indent=2, default=str))
    return 0


def cmd_stop(a) -> int:
    from takd_search.cluster import stop

    return stop(a)


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("takd-search: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user errors become one line; anything else is a bug
        if isinstance(e, _user_errors()):
            return _fail(str(e))
        raise
    finally:
        if "takd_search.search.ray_session" in sys.modules:
            sys.modules["takd_search.search.ray_session"].stop_ray()


if __name__ == "__main__":
    raise SystemExit(main())
