"""`takd-search export RUN_DIR`: a trained student as a self-contained TorchScript file.

The exported module takes images as a float tensor [N, C, H, W] with values in [0, 1]
(or uint8 in [0, 255]) and returns logits [N, classes]: the data set's normalisation is
inside it, so `torch.jit.load(path)(images)` is all a user needs (no takd_search, no
torchvision). A JSON sidecar (`student.json` next to `student.pt`) records the model,
classes, input shape, normalisation, accuracy and lineage, and its input contract as a
teacher (`teacher_input`: [0, 1] pixels, so `--teacher student.pt` needs no declaration);
the same JSON is embedded in the TorchScript file as the extra file `student.json`.

Which network: by default the confirmed winner (summary.json `winner`), at the
confirmation seed with the best validation accuracy. `--path` picks another: a
confirmation label (top2, heuristic, blkd, nokd), or a path (`plain10>plain6>plain2` or
`10-6-2`) that was confirmed, searched, or (a single model) trained alone. Its weights are
the hop store entry whose key the run recorded (phases/*.json, `hop_rows`), so the run's
store (`versions.json` run.store) must still hold it.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch
from torch import nn

from takd_search import models, results
from takd_search.atomic import replacing, write_json
from takd_search.data import load_dataset
from takd_search.engine.path import PathError, parse_path, path_text
from takd_search.engine.store import Store
from takd_search.errors import UserError
from takd_search.models import create_model_from_name, parse_model_name

INPUT_NOTE = (
    "float32 [N, C, H, W] in [0, 1] (or uint8 in [0, 255]); the normalisation "
    "(x - mean) / std is applied inside the module; output: logits [N, classes]"
)
SIGNAL_NOTE = (
    "float32 1-D signals [N, C, L] in the data set's own units; the normalisation "
    "(x - mean) / std is applied inside the module; output: logits [N, classes]"
)


class NormalizedStudent(nn.Module):
    """A network plus its input normalisation, scriptable.

    Float input is taken as [0, 1] and uint8 as [0, 255]; both become exactly the
    training pipeline's input (`DeviceData.normalize`: x255 * 1/(255 std) - mean/std,
    with the same float32 constants), so accuracies reproduce bit for bit on the device
    the run used (CPU; a CUDA run trained and evaluated in bf16 autocast).
    """

    def __init__(self, net: nn.Module, mean, std, signal: bool = False):
        super().__init__()
        self.net = net
        c = len(mean)
        # 1-D signals [N, C, L] are normalised in their own units, as DeviceData does
        shape = (1, c, 1) if signal else (1, c, 1, 1)
        self.unit = 1.0 if signal else 255.0
        std255 = torch.tensor(std, dtype=torch.float32).view(shape) * self.unit
        mean255 = torch.tensor(mean, dtype=torch.float32).view(shape) * self.unit
        self.register_buffer("scale", 1.0 / std255)
        self.register_buffer("shift", -mean255 / std255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float()
        else:
            x = x.float() * self.unit
        return self.net(x * self.scale + self.shift)


# ---- finding the network ------------------------------------------------------------------
def _norm_path(text: str, family: str | None) -> str:
    """What the user typed for --path -> the stored form: a path ('10-6-2' with the
    space's family, 'Plain10>vgg6>plain2') through the one path parser, a single model
    name canonicalised, anything else (a method: 'nokd', 'top1') lower-cased."""
    t = text.strip()
    try:
        return path_text(parse_path(t, family))
    except PathError:
        pass
    try:
        return models.model_name(*models.parse_model_name(t))
    except models.ModelError:
        return t.lower()


def _phase_rows(run_dir: Path, phase: str) -> list[dict]:
    return results.read_json(run_dir, f"phases/{phase}.json", []) or []


def _completed(rows: list[dict]) -> list[dict]:
    return [
        r
        for r in rows
        if r.get("status") == "completed" and (r.get("metrics") or {}).get("hop_rows")
    ]


def pick(run_dir: str | os.PathLike, path: str | None = None) -> dict:
    """The network to export: {'method', 'phase', 'path', 'seed', 'row' (the phase row),
    'confirmed' (test mean/std over seeds, when confirmed)}. UserError if not found."""
    run_dir = results.require_run(run_dir, finished=True)
    summary = results.summary(run_dir)
    space = results.read_json(run_dir, "space.json", {}) or {}
    family = (space.get("models") or {}).get("family")
    confirm = _completed(_phase_rows(run_dir, "confirm"))

    def best(rows):
        return max(
            rows,
            key=lambda r: (
                float(r["metrics"].get("val_acc") or -1),
                -int(r["config"].get("seed") or 0),
            ),
        )

    def confirmed(method):
        rows = [  # the report seeds: selection seeds chose the winner and are not reported
            r
            for r in confirm
            if r["config"].get("method") == method and r["config"].get("seed_set") != "select"
        ]
        if not rows:
            return None
        tests = [float(r["metrics"]["test_acc"]) for r in rows]
        mean = sum(tests) / len(tests)
        std = (
            (sum((t - mean) ** 2 for t in tests) / (len(tests) - 1)) ** 0.5
            if len(tests) > 1
            else 0.0
        )
        r = best(rows)
        return {
            "method": method,
            "phase": "confirm",
            "path": r["config"]["path"],
            "seed": int(r["config"]["seed"]),
            "row": r,
            "confirmed": {"test_mean": mean, "test_std": std, "seeds": len(rows)},
        }

    methods = sorted({r["config"].get("method") for r in confirm})
    if path is None:
        win = summary.get("winner")
        got = confirmed(win) if win else None
        if got is None:
            raise UserError(
                f"{run_dir}: the run has no confirmed winner to export: pass --path with "
                f"one of {', '.join(methods) or 'its searched paths'}"
            )
        return got
    if path in methods:
        return confirmed(path)
    want = _norm_path(path, family)
    # a confirmed path (the best-validated method when several confirmed it)
    same = [m for m in methods if any(
        r["config"]["path"] == want for r in confirm if r["config"].get("method") == m
    )]  # fmt: skip
    if same:
        cands = [confirmed(m) for m in same]
        return max(
            cands,
            key=lambda c: (
                sum(
                    float(r["metrics"]["val_acc"])
                    for r in confirm
                    if r["config"].get("method") == c["method"]
                )
                / c["confirmed"]["seeds"]
            ),
        )
    for phase in ("search", "blkd", "nokd"):
        rows = [r for r in _completed(_phase_rows(run_dir, phase)) if r["config"]["path"] == want]
        if rows:
            r = best(rows)
            seed = r["config"].get("seed")
            if seed is None:
                seed = (
                    (results.read_json(run_dir, "versions.json", {}) or {})
                    .get("run", {})
                    .get("seed", 0)
                )
            return {
                "method": phase,
                "phase": phase,
                "path": want,
                "seed": int(seed),
                "row": r,
                "confirmed": None,
            }
    searched = sorted(
        {r["config"]["path"] for p in ("search", "blkd") for r in _phase_rows(run_dir, p)}
    )
    raise UserError(
        f"--path {path}: not a path of this run: pass one of {', '.join(methods)} or a "
        f"confirmed/searched path such as {', '.join(searched[:4]) or 'teacher>...>student'}"
    )


def _chain_pick(run_dir: Path, path: str | None) -> tuple[dict, dict]:
    """(choice as `pick` gives it, the run's data/store settings) for a run-path folder:
    its path's student by default, `--path nokd` the student trained alone."""
    c = results.read_json(run_dir, results.CHAIN)
    data = c.get("data") or {"dataset": c.get("dataset")}
    npz = str(data.get("dataset", "")).split(":", 1)
    if npz[0] in ("npz", "folder") and len(npz) == 2:  # a relative path: as run-path saw it
        data["dataset"] = f"{npz[0]}:{Path(npz[1]).expanduser().resolve()}"
    run = {**data, "store": (c.get("store") or {}).get("root")}
    want = None if path is None else _norm_path(path, None)
    if want in (None, c["path"], "run-path"):
        hops, method, where = c["hops"], "run-path", c["path"]
    elif want == "nokd" or (c.get("student_alone") and want == c["student_alone"]["model"]):
        if not c.get("student_alone"):
            raise UserError(
                f"{run_dir}: run-path ran with --no-baseline: there is no student trained "
                "alone to export; export its path's student (no --path)"
            )
        hops, method, where = [c["student_alone"]], "nokd", c["student_alone"]["model"]
    else:
        raise UserError(
            f"--path {path}: a run-path folder holds {c['path']} and (unless --no-baseline) "
            "its student alone: pass no --path, or --path nokd"
        )
    row = {"metrics": {"hop_rows": hops}, "config": {"guidance": c.get("guidance", "chain")}}
    choice = {
        "method": method,
        "phase": "run-path",
        "path": where,
        "seed": int(c.get("seed", 0)),
        "row": row,
        "confirmed": None,
    }
    return choice, run


# ---- building and saving ------------------------------------------------------------------
def build(
    run_dir: str | os.PathLike, path: str | None = None, store: str | os.PathLike | None = None
) -> tuple[nn.Module, dict]:
    """(NormalizedStudent in eval mode, sidecar dict) for the chosen network. store: the
    hop store to read it from, when it is not where the run left it (results pulled from
    a cluster with their store: docs/cluster.md)."""

    if results.is_chain(run_dir):  # a run-path folder: its student (or --path nokd)
        run_dir = results.run_dir_of(run_dir)
        choice, run = _chain_pick(run_dir, path)
    else:
        run_dir = results.require_run(run_dir, finished=True)
        choice = pick(run_dir, path)
        versions = results.read_json(run_dir, "versions.json", {}) or {}
        run = versions.get("run") or {}
    hops = choice["row"]["metrics"]["hop_rows"]
    last = hops[-1]
    key = last["key"]
    root = str(store) if store is not None else run.get("store")
    if not root:
        raise UserError(
            f"{run_dir}: the run kept no weights (it ran with --no-store): run it again "
            "with a hop store to export its students"
        )
    entry = Path(root) / "hops" / key
    if not (entry / "meta.json").exists():
        raise UserError(
            f"hop {key[:12]} ({last['model']}) is not in the store {root} (removed by "
            "`takd-search store gc`, or the store moved): retrain it with takd-search run "
            f"--resume {run_dir} --store NEW_STORE, or pass export --store WHERE_IT_IS"
        )
    result = Store(root, create=False).load(key)  # a read-only mount is fine
    if result is None:
        raise UserError(f"hop {key[:12]} in {root} is corrupt: retrain it with takd-search run")
    meta = json.loads((entry / "meta.json").read_text())
    ds = load_dataset(
        run.get("dataset", "digits"),
        run.get("data_dir"),
        download=False,
        image_size=run.get("image_size"),
    )
    name = last["model"]
    net = create_model_from_name(name, ds.num_classes, ds.input_shape)
    net.load_state_dict(result.state)
    # the statistics the student was trained with: those of its split's training part
    lineage = meta.get("lineage", {})
    mean, std = ds.train_stats(lineage.get("val_fraction", 0.1), lineage.get("split_seed", 0))
    module = NormalizedStudent(net, mean, std, signal=ds.is_signal).eval()
    family, depth = parse_model_name(name)
    c = ds.input_shape[0]
    # a square image's side; none for a signal (bringing a 1-D teacher is not supported)
    side = (
        ds.input_shape[1] if not ds.is_signal and ds.input_shape[1] == ds.input_shape[2] else None
    )
    sidecar = {
        "format": "torchscript",
        "model": name,
        "family": family,
        "depth": int(depth) if str(depth).isdigit() else depth,
        "params": last.get("params"),
        "classes": ds.num_classes,
        "class_names": list(ds.class_names),
        "input_shape": list(ds.input_shape),
        "input": SIGNAL_NOTE if ds.is_signal else INPUT_NOTE,
        "normalisation": {"mean": list(mean), "std": list(std), "inside_module": True},
        # its input contract as a brought teacher (`--teacher student.pt`, space files'
        # teacher_input): [0, 1] pixels, mean 0 / std 1, since the module normalises itself.
        # read_teacher takes it from here when nothing is declared, so it round-trips
        "teacher_input": {"mean": [0.0] * c, "std": [1.0] * c, "size": side},
        "dataset": {"name": ds.name, "fingerprint": ds.fingerprint},
        "accuracy": {
            "test_acc": last.get("test_acc"),
            "val_acc": last.get("val_acc"),
            "split": "test (val: the run's validation split)",
            "seed": choice["seed"],
            **(
                {"confirmed_" + k: v for k, v in choice["confirmed"].items()}
                if choice["confirmed"]
                else {}
            ),  # fmt: skip
        },
        "method": choice["method"],
        "phase": choice["phase"],
        "path": choice["path"],
        "guidance": choice["row"]["config"].get("guidance", "chain"),
        "lineage": {
            "hops": [
                {
                    k: hp.get(k)
                    for k in (
                        "hop",
                        "model",
                        "parent",
                        "T",
                        "alpha",
                        "kd_epochs",
                        "parent_epoch",
                        "val_acc",
                        "test_acc",
                        "best_epoch",
                        "key",
                    )
                }  # fmt: skip
                for hp in hops
            ],
            "student_hop": meta.get("lineage"),
        },
        "trained_on": (meta.get("provenance") or {}).get("device"),
        "run_dir": str(run_dir.resolve()),
        "store": str(root),
        "torch": torch.__version__,
    }
    return module, sidecar


def export(
    run_dir: str | os.PathLike,
    out: str | os.PathLike = "student.pt",
    *,
    path: str | None = None,
    fmt: str = "torchscript",
    store: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write the student (TorchScript or ONNX) and its JSON sidecar; returns both paths."""
    if fmt not in ("torchscript", "onnx"):
        raise UserError(f"--format {fmt}: use torchscript or onnx")
    if fmt == "onnx":
        for pkg in ("onnx", "onnxscript"):
            if importlib.util.find_spec(pkg) is None:
                raise UserError(f"onnx export needs the {pkg} package: pip install {pkg}")
    module, sidecar = build(run_dir, path, store)
    out = Path(out)
    if out.suffix == "":
        out = out.with_suffix(".onnx" if fmt == "onnx" else ".pt")
    side = out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        scripted = torch.jit.script(module)
        with replacing(out) as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files={"student.json": json.dumps(sidecar)})
    else:
        sidecar["format"] = "onnx"
        example = torch.rand(2, *sidecar["input_shape"])
        with replacing(out) as tmp:
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
    write_json(side, sidecar)
    return out, side


def load_student(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """An exported student, ready to call: float [N, C, H, W] in [0, 1] -> logits."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file: export one with takd-search export RUN_DIR")
    return torch.jit.load(str(path), map_location="cpu").eval()
