"""Experiment trackers: every trial's hops, curves and hyper-parameters, and the answer.

`--tracker tensorboard|mlflow|wandb` (or `search.trackers: [...]` in the space) adds a
watcher to every phase (console.PhaseProgress tells it of each finished trial, whichever
runner runs it). Each trial becomes one tracker run named `<phase>/<number> <path>` with:

- one curve per hop: `hop<i>_<model>/val_acc` per epoch (the student's is the last hop),
  so a TA that learnt badly is visible beside the student it taught;
- its path and hyper-parameters (T, alpha, kd_fraction, parent_fraction per hop, lr, seed);
- its final validation accuracy (and test accuracy where the trial reports one).

At the end, the run's answer (the closing block) is logged as text. Tune's own logger
callbacks see only what a trial reports per student epoch, never the TA hops' curves,
and only under Ray: hence a watcher. Nothing here changes process-wide settings; each
tracker writes under the run folder unless its own environment variable says otherwise
(MLFLOW_TRACKING_URI, WANDB_DIR / WANDB_MODE).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from takd_search.errors import UserError

KINDS = ("tensorboard", "mlflow", "wandb")
_PACKAGE = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def make_trackers(kinds, run_dir) -> list:
    """Tracker objects for `kinds`; a kind unknown or not installed is one line (exit 2)."""
    out = []
    for kind in dict.fromkeys(kinds or []):
        if kind not in KINDS:
            raise UserError(f"unknown tracker {kind!r}: use one of {', '.join(KINDS)}")
        try:
            __import__(_PACKAGE[kind])
        except Exception:  # a broken install raises more than ImportError
            raise UserError(
                f"--tracker {kind} needs the {_PACKAGE[kind]} package: "
                f"pip install {_PACKAGE[kind]} (or the [trackers] extra)"
            ) from None
        out.append({"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}[kind](run_dir))
    return out


def _name(phase: str, row: dict) -> str:
    cfg = row.get("config") or {}
    tag = f" {cfg['method']}" if cfg.get("method") else ""
    seed = f" seed {cfg['seed']}" if "seed" in cfg else ""
    return f"{phase}/{int(row.get('trial_number') or 0):04d}{tag} {cfg.get('path', '?')}{seed}"


def _params(row: dict) -> dict:
    """The trial's path and hyper-parameters, flat: path, lr, seed, hop<i>_T, ..."""
    cfg = row.get("config") or {}
    out = {"path": cfg.get("path"), "status": row.get("status")}
    for k in ("method", "seed", "lr", "guidance", "seed_set"):
        if cfg.get(k) is not None:
            out[k] = cfg[k]
    for i, hop in enumerate(cfg.get("hops") or [], 1):
        for k, v in hop.items():
            out[f"hop{i}_{k}"] = v
    return out


def _curves(row: dict):
    """(tag, epoch, value) of every hop's validation curve, teacher first."""
    for i, h in enumerate((row.get("metrics") or {}).get("hop_rows") or [], 1):
        for point in h.get("curve") or []:
            if point.get("val_acc") is not None:
                yield f"hop{i}_{h.get('model')}/val_acc", int(point["epoch"]), point["val_acc"]


def _finals(row: dict) -> dict:
    m = row.get("metrics") or {}
    return {k: float(m[k]) for k in ("val_acc", "test_acc") if m.get(k) is not None}


class TensorBoard:
    """Event files under RUN/tensorboard/<phase>/<trial>, one run per trial."""

    def __init__(self, run_dir):
        self.root = str(Path(run_dir) / "tensorboard")

    def _writer(self, sub: str):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard: only when tracked

        return SummaryWriter(log_dir=str(Path(self.root) / sub.replace(" ", "_")))

    def trial(self, phase: str, row: dict) -> None:
        w = self._writer(_name(phase, row))
        try:
            for tag, epoch, value in _curves(row):
                w.add_scalar(tag, value, epoch)
            for k, v in _finals(row).items():
                w.add_scalar(f"final/{k}", v, 0)
            w.add_text("config", json.dumps(_params(row), default=str))
        finally:
            w.close()

    def answer(self, summary: dict, text: str) -> None:
        w = self._writer("answer")
        try:
            w.add_text("answer", f"```\n{text}\n```")
        finally:
            w.close()


class MLflow:
    """One MLflow run per trial in the experiment `takd-search/<run folder name>`, at
    MLFLOW_TRACKING_URI or else a SQLite store RUN/mlflow.db (MLflow 3 refuses new file
    stores) with its artifacts in RUN/mlruns (MLflow's default, ./mlruns, would write into
    whatever folder the run was started from); `mlflow ui --backend-store-uri
    sqlite:///RUN/mlflow.db` shows it. A client of its own: no global MLflow state is
    touched."""

    def __init__(self, run_dir):
        run_dir = Path(run_dir).resolve()
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir / 'mlflow.db'}"
        # a user's tracking server chooses its own artifact store
        own = "MLFLOW_TRACKING_URI" not in os.environ
        self.artifacts = (run_dir / "mlruns").as_uri() if own else None
        self.experiment = f"takd-search/{run_dir.name}"
        self._made = None

    def __getstate__(self) -> dict:  # pickled without its open client
        return {**self.__dict__, "_made": None}

    def _client(self):
        """The client and experiment id, made once (a SQLite store's client costs 0.4 s)."""
        if self._made is None:
            from mlflow.tracking import MlflowClient  # mlflow: only when tracked

            client = MlflowClient(tracking_uri=self.uri)
            exp = client.get_experiment_by_name(self.experiment)
            exp_id = (
                exp.experiment_id
                if exp is not None
                else client.create_experiment(self.experiment, artifact_location=self.artifacts)
            )
            self._made = client, exp_id
        return self._made

    def trial(self, phase: str, row: dict) -> None:
        client, exp_id = self._client()
        run = client.create_run(exp_id, run_name=_name(phase, row), tags={"phase": phase})
        rid = run.info.run_id
        for k, v in _params(row).items():
            client.log_param(rid, k, v)
        for tag, epoch, value in _curves(row):
            client.log_metric(rid, tag.replace("/", "_"), value, step=epoch)
        for k, v in _finals(row).items():
            client.log_metric(rid, k, v)
        client.set_terminated(rid, "FINISHED" if row.get("status") != "failed" else "FAILED")

    def answer(self, summary: dict, text: str) -> None:
        client, exp_id = self._client()
        run = client.create_run(exp_id, run_name="answer", tags={"phase": "answer"})
        client.log_text(run.info.run_id, text, "answer.txt")
        best = summary.get("best") or {}
        if best.get("test_mean") is not None:
            client.log_metric(run.info.run_id, "best_test_acc", float(best["test_mean"]))
        client.set_terminated(run.info.run_id)


class WandB:
    """One W&B run per trial in the project `takd-search`, offline unless WANDB_MODE says
    otherwise (files under RUN/wandb unless WANDB_DIR names a folder)."""

    def __init__(self, run_dir):
        self.dir = os.environ.get("WANDB_DIR") or str(Path(run_dir))
        self.mode = os.environ.get("WANDB_MODE") or "offline"
        self.group = Path(run_dir).name

    def _run(self, name: str, config: dict):
        import wandb  # wandb: only when tracked

        return wandb.init(project="takd-search", group=self.group, name=name, config=config,
                          dir=self.dir, mode=self.mode, reinit="create_new")  # fmt: skip

    def trial(self, phase: str, row: dict) -> None:
        run = self._run(_name(phase, row), _params(row))
        try:
            for tag, epoch, value in _curves(row):
                run.log({tag: value, "epoch": epoch})
            run.summary.update(_finals(row))
        finally:
            run.finish()

    def answer(self, summary: dict, text: str) -> None:
        run = self._run("answer", {})
        try:
            run.summary["answer"] = text
        finally:
            run.finish()
