"""Run folders in the real schema, written without training or Ray: the fixtures of the
report tests (tests/test_report_*.py) and of the newcomer tests. Not a test module."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from takd_search import results
from takd_search.atomic import write_json

SIZES = {"plain10": 2388970, "plain8": 303098, "plain6": 72890, "plain4": 17850, "plain2": 3194}


NOKD = {"plain10": 0.98, "plain8": 0.975, "plain6": 0.96, "plain4": 0.955, "plain2": 0.94}


# method -> (path, val per seed, test per seed); seeds 1, 2, 3
CONFIRM = {
    "top1": ("plain10>plain8>plain4>plain2", [0.97, 0.98, 0.99], [0.95, 0.96, 0.97]),
    "heuristic": ("plain10>plain6>plain2", [0.96, 0.96, 0.96], [0.94, 0.95, 0.96]),
    "blkd": ("plain10>plain2", [0.95, 0.95, 0.95], [0.93, 0.95, 0.94]),
    "nokd": ("plain2", [0.94, 0.94, 0.94], [0.92, 0.92, 0.95]),
}


def _hops(path: str, T: float, alpha: float) -> list[dict]:
    n = len(path.split(">")) - 1
    return [{"T": T, "alpha": alpha, "kd_fraction": 1.0, "parent_fraction": 1.0}] * n


def make_run(
    root: Path,
    name: str = "digits_vgg-1",
    *,
    n_search: int = 12,
    confirm: dict = CONFIRM,
    winner: str = "top1",
    heuristic_ta: str = "plain6",
    seed: int = 0,
) -> Path:
    """A finished run folder in the real schema. Search trials' validation accuracy is
    0.9 + 0.08 * alpha: alpha matters, T and the path do not."""
    d = root / name
    rng = np.random.default_rng(seed)
    paths = ["plain10>plain8>plain4>plain2", "plain10>plain6>plain2", "plain10>plain4>plain2"]
    trials = []
    for i in range(n_search):
        path = paths[i % 3]
        T, alpha = float(np.exp(rng.uniform(0, np.log(20)))), float(rng.uniform(0.1, 0.9))
        status = "pruned" if i == 3 else "failed" if i == 4 else "completed"
        trials.append(
            {
                "trial_id": f"s{i:02d}",
                "phase": "search",
                "status": status,
                "error": "RuntimeError: x" if status == "failed" else None,
                "path": path,
                "n_tas": len(path.split(">")) - 2,
                "guidance": "chain",
                "val_acc": None if status == "failed" else 0.9 + 0.08 * alpha,
                # every trial is charged what it trained, pruned and failed ones up to the
                # epoch they stopped at (cumulative per-epoch reports)
                "epochs_trained": 5 if status == "pruned" else 2 if status == "failed" else 20,
                "hops_trained": 2,
                "hops_reused": 1,
                "train_seconds": 10.0 + i,
                **results.hop_columns(_hops(path, T, alpha)),
            }
        )
    for i, alpha in enumerate((0.3, 0.6)):
        trials.append(
            {
                "trial_id": f"b{i}",
                "phase": "blkd",
                "status": "completed",
                "path": "plain10>plain2",
                "n_tas": 0,
                "guidance": "chain",
                "val_acc": 0.93 + 0.01 * i,
                "hops_trained": 1,
                "hops_reused": 1,
                "train_seconds": 3.0,
                **results.hop_columns(_hops("plain10>plain2", 4.0, alpha)),
            }
        )
    results.write_csv(d, "trials", trials)
    role = {"plain10": "teacher", "plain2": "student"}
    results.write_csv(
        d,
        "baselines",
        [
            {
                "kind": "nokd",
                "model": m,
                "path": m,
                "role": role.get(m, "ta"),
                "params": SIZES[m],
                "val_acc": v,
                "test_acc": v - 0.005,
                "seconds": 1.0,
            }
            for m, v in NOKD.items()
        ],  # fmt: skip
    )
    conf = [
        {"method": m, "path": p, "guidance": "chain", "seed": s, "seed_set": "report",
         "status": "completed", "val_acc": val[k], "test_acc": test[k],
         "hops": json.dumps(_hops(p, 2.0, 0.5))}
        for m, (p, val, test) in confirm.items()
        for k, s in enumerate((1, 2, 3))
    ]  # fmt: skip
    # the selection seeds (4, 5) of the candidates: they chose the winner, never reported
    select = {m: 0.99 if m == winner else 0.90 for m in confirm if m in ("top1", "heuristic")}
    conf += [
        {"method": m, "path": confirm[m][0], "guidance": "chain", "seed": s,
         "seed_set": "select", "status": "completed", "val_acc": v, "test_acc": 0.5,
         "hops": json.dumps(_hops(confirm[m][0], 2.0, 0.5))}
        for m, v in select.items()
        for s in (4, 5)
    ]  # fmt: skip
    results.write_csv(d, "confirmation", conf)
    space = {
        "name": name.split("-")[0],
        "models": {"family": "plain", "teacher": 10, "student": 2, "candidates": [8, 6, 4]},
        "distill": {
            "T": {"low": 1.0, "high": 20.0, "log": True},
            "alpha": {"low": 0.1, "high": 0.9, "log": False},
            "kd_fraction": 1.0,
            "parent_fraction": 1.0,
            "per_hop": False,
        },
        "search": {"guidance": "chain"},
        "resources": {"cpu": 1.0, "gpu": 0.0},
    }
    write_json(d / "space.json", space)
    write_json(d / "versions.json", {"run": {"dataset": "digits", "store": None}})
    hpath = f"plain10>{heuristic_ta}>plain2"
    tuned = {"top1": (4, 40.0), "heuristic": (4, 44.0), "blkd": (6, 6.0), "nokd": (0, 0.0)}

    def method(m, path):
        n, secs = tuned[m]
        return {"path": path, "guidance": "chain", "hops": _hops(path, 2.0, 0.5),
                "tuning_trials": n, "tuning_seconds": secs}  # fmt: skip

    summary = {
        "space": space["name"],
        "dataset": "digits",
        "run_dir": str(d),
        "teacher": "plain10",
        "student": "plain2",
        "winner": winner,
        "best": method(winner, confirm[winner][0]),
        "heuristic_ta": heuristic_ta,
        "heuristic": method("heuristic", hpath),
        "blkd": method("blkd", "plain10>plain2"),
        "nokd": method("nokd", "plain2"),
        "top": {"top1": method("top1", confirm["top1"][0])},
        "selection": {"on": "mean validation accuracy over selection seeds [4, 5]",
                      "select_seeds": [4, 5], "report_seeds": [1, 2, 3], "scores": select,
                      "n_val": 144, "resolution": 1 / 144, "tied": []},
        "heuristic_found_best": confirm[winner][0] == hpath,
        "nokd_val": NOKD,
        "compute": {"search_trials": n_search, "search_completed": n_search - 2,
                    "search_pruned": 1, "search_failed": 1, "blkd_trials": 2,
                    "hops_trained": 2 * n_search + 2, "hops_reused": n_search + 2,
                    "train_seconds": 1.0, "grid_trials": 200, "paths": 8,
                    "grid_hops": {"plain10": 1, "plain8": 25, "plain4": 75, "plain2": 200},
                    "hop_seconds": {"plain10": 30.0, "plain8": 8.0, "plain2": 1.0},
                    "wall_seconds": 99.0},
    }  # fmt: skip
    write_json(d / "summary.json", summary)
    return d


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


# student val_acc per epoch (1..5) per seed (1, 2): NoKD's mean peaks at 91 % in epoch 5,
# top1's mean [71, 89, 91, 94, 95] reaches 91 % in epoch 3 (exactly: a tolerance test)
CURVES = {
    "top1": [[0.70, 0.88, 0.92, 0.93, 0.94], [0.72, 0.90, 0.90, 0.95, 0.96]],
    "heuristic": [[0.60, 0.80, 0.85, 0.90, 0.92], [0.62, 0.80, 0.87, 0.90, 0.92]],
    "blkd": [[0.55, 0.75, 0.85, 0.90, 0.93], [0.57, 0.77, 0.85, 0.90, 0.93]],
    "nokd": [[0.50, 0.70, 0.80, 0.88, 0.90], [0.52, 0.72, 0.82, 0.90, 0.92]],
}


def _curve(vals: list[float]) -> list[dict]:
    return [
        {"epoch": e, "train_loss": 1.0 / e, "train_acc": v, "val_acc": v, "lr": 0.1,
         "kd": True, "seconds": float(e)}
        for e, v in enumerate(vals, 1)
    ]  # fmt: skip


def _phase_row(tid: str, config: dict, path: str, vals: list[float], alpha=0.5) -> dict:
    names = path.split(">")
    hops = [{"hop": i + 1, "model": m, "T": 2.0, "alpha": alpha, "curve": []}
            for i, m in enumerate(names)]  # fmt: skip
    hops[-1]["curve"] = _curve(vals)
    return {"trial_id": tid, "status": "completed", "error": None,
            "config": {**config, "path": path}, "metrics": {"hop_rows": hops}}  # fmt: skip


def write_curves(d: Path, curves: dict = CURVES) -> None:
    conf = [
        _phase_row(f"c{m}{s}", {"method": m, "seed": s}, CONFIRM[m][0], vals)
        for m, per_seed in curves.items()
        for s, vals in zip((1, 2), per_seed)
    ]
    conf.append({"trial_id": "cx", "status": "failed", "config": {"method": "top1"}})
    write_json(d / "phases" / "confirm.json", conf)
    search = [
        _phase_row(f"s{i}", {"T": 2.0, "alpha": a}, "plain10>plain4>plain2",
                   [0.5 + 0.4 * a, 0.7 + 0.2 * a, 0.9, 0.92, 0.93], alpha=a)
        for i, a in enumerate((0.1, 0.5, 0.9))
    ]  # fmt: skip
    write_json(d / "phases" / "search.json", search)
    nokd = [_phase_row("n0", {"method": "nokd", "seed": 0}, "plain2", CURVES["nokd"][0])]
    write_json(d / "phases" / "nokd.json", nokd)
