"""The sub-commands' bodies: each takes the parsed flags, calls the one function that does the
work (run_search, run_path, report, export, the store, the cluster) and prints its result.
Imports are function-local so that `takd-search --help` and a mistyped flag answer at
once, without torch, pydantic or Ray.
"""

from __future__ import annotations

import sys
import time

from takd_search.config.flags import FlagConflict, set_overrides
from takd_search.errors import UserError


def overrides_of(a) -> dict:
    """The space-file overrides of a `run`/`submit` command line: budget flags and --set."""
    try:
        return set_overrides(a)
    except FlagConflict as e:
        raise UserError(str(e)) from None


def ray_address(a) -> str | None:
    """--address, else the cluster in $RAY_ADDRESS (what `ray job submit` and a KubeRay
    RayJob set for the job's driver), else None: a private local Ray. An http(s) URL in
    $RAY_ADDRESS names a job server (for `ray job` and `takd-search submit`), not a
    cluster to join, and is left to them."""
    import os

    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env.startswith(("http://", "https://")):
        env = ""
    return a.address or env or None


def _families(a, run_dir=None) -> None:
    """Load the families --families names and, for a run folder, those its space named."""
    from takd_search import models
    from takd_search.plugins import specs_of

    if run_dir is not None:
        import json
        from pathlib import Path

        try:
            space = json.loads((Path(run_dir) / "space.json").read_text())
            named = space.get("models", {}).get("families") or []
        except (OSError, ValueError, AttributeError):
            named = []
        models.load_families(named, where=f"{run_dir}/space.json models.families")
    models.load_families(specs_of(getattr(a, "families", None)), where="--families")


def cmd_run_path(a) -> int:
    from takd_search.run_path import recipe, run_path
    from takd_search.search.fractions import HopFractions

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

    _families(a)
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
    # fractions, as a space file's hops: run_path makes them whole epochs as a trial does
    hop = HopFractions(
        T=a.T,
        alpha=a.alpha,
        kd_fraction=a.kd_fraction or 1.0,
        parent_fraction=a.parent_fraction or 1.0,
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

    overrides = overrides_of(a)
    try:
        with console_log():  # copied into RUN/console.log once the run folder is known
            run_search(
                a.space,
                overrides=overrides,
                results_dir=a.results,
                store_root=a.store,
                no_store=a.no_store,
                address=ray_address(a),
                resume=a.resume,
                new=a.new,
                device=a.device,
                dry_run=a.dry_run,
                write_report=not a.no_report,
                runner=a.runner,
                trackers=a.tracker or (),
            )
    except Interrupted:
        return 130
    except RunFailed as e:
        print(f"takd-search: run failed: {e}", file=sys.stderr)
        return 1
    if a.dry_run and a.set_items:
        from takd_search.config.files import override_text

        given = [override_text(i.key, i.value) for i in a.set_items]
        print(f"set      {', '.join(given)}")
    return 0


def cmd_models(a) -> int:
    from takd_search import models
    from takd_search.progress import table

    _families(a)
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

    _families(a, a.run_dir)
    model, sidecar = export(a.run_dir, a.out, path=a.path, fmt=a.format, store=a.store)
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
