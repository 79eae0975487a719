"""Ray Tune execution: the only module that imports Ray (with `cluster`).

Every phase of a run (NoKD baselines, the path search, the BLKD search, the seeded
confirmation) is one Tune experiment of the same trainable, `run_trial`, which runs one
chain through the hop store. Search phases get their trials from Optuna (`OptunaSearch`
with our define-by-run `PathSpace`); fixed phases from a list of configs. Each experiment
lives in `<run>/tune/<phase>` and is restored from there after an interruption, so no
completed trial is lost or run twice.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no Ray console tables: we print our own
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no tensorboard/csv noise
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Snapshot the experiment every 2 s (default: >= 10 s): a SIGKILLed driver then loses at
# most the trials that finished in the last 2 s, which the hop store makes cheap to redo.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")

import warnings  # noqa: E402

import optuna  # noqa: E402
import ray  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.search import BasicVariantGenerator  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from takd_search.errors import UserError  # noqa: E402
from takd_search.progress import (  # noqa: E402
    LiveBlock,
    eta_seconds,
    fmt_seconds,
    trial_line,
    write_status,
)

log = logging.getLogger("takd_search.tuner")
# a resumed trial re-reports its epochs; Optuna warns for each and ignores them
warnings.filterwarnings("ignore", message=".*is already reported.*")
METRIC = "score"  # the running best validation accuracy of the path's student


class Interrupted(Exception):
    """The driver was asked to stop (Ctrl-C / SIGTERM); the phase's state is saved."""


# ---- Ray lifecycle ----------------------------------------------------------------------
TOKEN_FILE = "ray_token"  # the local cluster's auth token, in the run folder, mode 600
_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
_saved_auth: dict | None = None  # the process's own auth settings while a local Ray runs


def start_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    token_dir: str | os.PathLike | None = None,
) -> dict:
    """Start local Ray (default) or join the cluster at `address`; returns its resources.

    `ray.init(address="local")`, not a bare `ray.init()`, which would attach to whatever
    cluster a stale address file names and can hang. A local Ray advertises 127.0.0.1,
    so all of its own traffic stays on loopback; Ray 2.60 has no setting that binds
    gcs_server, raylet and the workers to loopback (they listen on every interface), so
    the local cluster requires a token: a fresh one per start, written to
    `token_dir/ray_token` (mode 600; a private temporary folder when no run folder is
    given). A client without it is refused (UNAUTHENTICATED) by every exposed port.
    """
    if not ray.is_initialized():
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env = {
            "env_vars": {
                "PYTHONPATH": os.pathsep.join(
                    p for p in (pkg_root, os.environ.get("PYTHONPATH")) if p
                ),
                "RAY_AIR_NEW_OUTPUT": "0",
                # the store's and the fault tests' settings reach the workers
                **{k: v for k, v in os.environ.items() if k.startswith("TAKD_")},
            }
        }
        kw = dict(
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env=env,
        )
        if address in (None, "", "local"):
            _local_token(token_dir)
            # Ray turns a node address of 127.0.0.1 into the machine's network address
            # (services.resolve_ip_for_localhost) unless clusters are switched off, its own
            # switch for a one-machine Ray (as on macOS): off while this one starts, so
            # the node, its agents and workers advertise and bind 127.0.0.1
            from ray._private import ray_constants

            multi = ray_constants.ENABLE_RAY_CLUSTER
            ray_constants.ENABLE_RAY_CLUSTER = False
            try:
                ray.init(
                    address="local",
                    num_cpus=num_cpus,
                    num_gpus=num_gpus,
                    _node_ip_address="127.0.0.1",
                    **kw,
                )
            except BaseException:
                _restore_auth()
                raise
            finally:
                ray_constants.ENABLE_RAY_CLUSTER = multi
            _watch_session()
        else:
            if address.startswith(("http://", "https://")):
                raise UserError(_HTTP_ADDRESS.format(address=address))
            _token_mode_if_token()
            try:
                ray.init(address=address, **kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(_unreachable(address, e)) from None
    return dict(ray.cluster_resources())


_HTTP_ADDRESS = (
    "--address {address} is a job server URL, but `run --address` joins a cluster's GCS: "
    "pass HEAD:6379 (what `ray start --head` printed), or send the search as a job with "
    "`takd-search submit --address {address}`"
)


def _unreachable(address: str, e: BaseException | str) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if len(text) > 160:  # Ray's messages run on for lines; keep whole words
        text = text[:160].rsplit(" ", 1)[0] + " ..."
    return (
        f"cannot reach the Ray cluster at {address} ({text}): start it with "
        "`ray start --head` or pass the right --address"
    )


def probe_address(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT that accepts no TCP connection within `timeout_s` is one line now;
    ray.init would retry for minutes, printing C++ warnings every few seconds."""
    import socket

    if address in (None, "", "local", "auto") or address.startswith("ray://"):
        return
    if address.startswith(("http://", "https://")):
        raise UserError(_HTTP_ADDRESS.format(address=address))
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(
            f"--address {address} is not HOST:PORT: pass the head's GCS address, "
            "e.g. 10.0.0.5:6379"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        why = f"no answer in {timeout_s:g} s" if isinstance(e, TimeoutError) else e.strerror
        raise UserError(_unreachable(address, why or type(e).__name__)) from None


def _local_token(token_dir) -> None:
    """Token auth for the local cluster about to start: a fresh token in token_dir."""
    global _saved_auth
    import secrets
    import tempfile

    from ray._raylet import AuthenticationTokenLoader, Config

    folder = Path(token_dir) if token_dir else Path(tempfile.mkdtemp(prefix="takd-ray-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TOKEN_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))  # 256 bits, as Ray's own generator
    if _saved_auth is None:
        _saved_auth = {k: os.environ.get(k) for k in _AUTH_VARS}
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    Config.initialize("")  # Ray caches the mode and the token: refresh both
    AuthenticationTokenLoader.instance().reset_cache()


def _restore_auth() -> None:
    """Give the process back its own auth settings (a later --address join needs them)."""
    global _saved_auth
    if _saved_auth is None:
        return
    from ray._raylet import AuthenticationTokenLoader, Config

    for k, v in _saved_auth.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _saved_auth = None
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _token_mode_if_token() -> None:
    """ray.init(address=HOST:PORT) sends the cluster's token only when RAY_AUTH_MODE=token
    (Ray turns it on by itself only for address="auto"); turn it on when a token exists."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    from takd_search.ray_token import read_token

    if read_token()[0]:
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config

        Config.initialize("")  # Ray caches the mode at import; refresh it as Ray itself does


_reaper = None  # the watcher that ends this local session's processes if the driver dies


def _watch_session() -> None:
    """A SIGKILLed driver cannot stop the Ray it started; a watcher does (reaper.py)."""
    global _reaper
    from takd_search import reaper

    try:
        _reaper = reaper.start(ray._private.worker._global_node.session_name)  # noqa: SLF001
    except Exception:  # no watcher is no reason to fail a run
        _reaper = None


def stop_ray() -> None:
    global _reaper
    if ray.is_initialized():
        ray.shutdown()
    if _reaper is not None:  # EOF: it checks in a few seconds that nothing is left
        _reaper.stdin.close()
        _reaper = None
    _restore_auth()


def check_device(device: str | None) -> None:
    """--device names a device this machine has: one line now, not a failure per trial."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(
            f"--device {device!r} is not a device: use cuda, cuda:N, mps or cpu "
            "(or leave it out for the best available)"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"--device {device}: this machine has no CUDA GPU (torch {torch.__version__}): "
            "pass --device cpu, or install the CUDA build of torch"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPUs: "
            "pass an index below that"
        )
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise UserError(f"--device {device}: MPS is not available here: pass --device cpu")
    if dev.type not in ("cuda", "mps", "cpu"):
        raise UserError(f"--device {device}: use cuda, mps or cpu")


def local_resources() -> dict:
    """The CPUs and GPUs a local Ray will see (what ray.init detects), without starting it."""
    from ray._private.utils import get_num_cpus

    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        gpus = 0
    return {"CPU": float(get_num_cpus()), "GPU": float(gpus)}


def check_resources(
    cpu: float, gpu: float, concurrency: int | None, res: dict | None = None
) -> int:
    """Fail with one line if one trial can never be placed; returns how many trials can
    run at once (the file's concurrency, capped by what the cluster holds). `res`: the
    resources to check against (default: the running cluster's)."""
    res = ray.cluster_resources() if res is None else res
    have_cpu, have_gpu = res.get("CPU", 0.0), res.get("GPU", 0.0)
    if cpu > have_cpu:
        raise UserError(
            f"resources.cpu {cpu:g} per trial, but the cluster has {have_cpu:g} "
            "CPUs: lower resources.cpu"
        )
    if gpu > have_gpu:
        where = "this machine has no GPU" if have_gpu == 0 else f"the cluster has {have_gpu:g}"
        raise UserError(
            f"resources.gpu {gpu:g} per trial, but {where}: set resources.gpu: 0 "
            "(or --gpus-per-trial 0) or join a GPU cluster with --address"
        )
    fit = int(have_cpu // cpu) if cpu else 1
    if gpu:
        fit = min(fit, int(have_gpu // gpu))
    return max(1, min(fit, concurrency or fit))


def session_logs() -> str | None:
    """Folder of this Ray session's log files (for a link from the run folder)."""
    try:
        node = ray._private.worker._global_node  # noqa: SLF001 (no public accessor)
        return node.get_logs_dir_path() if node else None
    except Exception:
        return None


# ---- the trainable ----------------------------------------------------------------------
_CONTEXTS: dict = {}


def _context(run: dict, dataset, teacher=None):
    """The worker's Context for a run: data moved to the device once per process (actors
    are reused between trials), store opened once. The data set itself comes from the
    driver through Ray's object store, so workers (and cluster nodes) need no data files
    and the driver's checks (md5, formats) are the only ones."""
    from takd_search.augment import DeviceData
    from takd_search.chain import Context
    from takd_search.distill import TrainConfig, pick_device
    from takd_search.experiment import open_store

    key = (
        dataset.fingerprint,
        run["device"],
        run["val_fraction"],
        run["split_seed"],
        run["augment"],
        run["store"],
        teacher.digest if teacher is not None else None,
    )
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        device = pick_device(run["device"])
        data = DeviceData(dataset, device, run["val_fraction"], run["split_seed"], run["augment"])
        store = open_store(run["store"], no_store=run["store"] is None)
        ctx = Context(
            data, TrainConfig(**run["train"]), store, snapshot_epochs=tuple(run["snapshots"])
        )
        if teacher is not None:  # a brought teacher: measured (or fine-tuned) once per process
            from takd_search.teacher import attach_teacher

            attach_teacher(ctx, teacher, seed=run["seed"])
        _CONTEXTS[key] = ctx
    ctx = _CONTEXTS[key]
    ctx.train = TrainConfig(**run["train"])
    return ctx


def run_trial(config: dict, run: dict, dataset=None, teacher=None) -> None:
    """One trial: train config['path'] as a chain and report the student's validation
    accuracy once per epoch (so ASHA can stop it), then a final row with the details.

    Hops already in the store are loaded, and a reused student's stored curve is
    replayed, so a restarted or retried trial resumes at its first unfinished hop.
    """
    import torch

    from takd_search.chain import HopParams, hop_rows, run_chain
    from takd_search.space import resolve_hops

    torch.set_num_threads(max(1, int(run["cpus"])))
    config = {**config, **config.get("case", {})}  # fixed phases nest their config
    t0 = time.perf_counter()
    ctx = _context(run, dataset, teacher)
    # only hops whose test number is reported look at the test set (not search trials)
    ctx.evaluate_test = "method" in config
    if config.get("lr") is not None:  # a searched learning rate: part of every hop's key
        ctx.train = replace(ctx.train, lr=float(config["lr"]))
    names = config["path"].split(">")
    epochs = ctx.train.epochs
    hops = [HopParams(**h) for h in resolve_hops(config.get("hops", []), epochs)]
    seed = int(config.get("seed", run["seed"]))
    teacher_seed = config.get("teacher_seed")
    before = ctx.store.stats.as_dict()
    best = [-1.0]
    reported = [0]
    attempt = _attempt(run.get("attempts_dir"), run.get("driver"))
    # what this trial has spent so far, so that a trial stopped early (or failing) is
    # charged its compute: hops started training here (TA hops included) and their seconds
    spent = {"trained": 0, "reused": 0, "seconds": 0.0, "current": 0.0}

    def report_epoch(epoch: int, val: float) -> None:
        best[0] = max(best[0], val)
        reported[0] = epoch
        if epoch >= epochs:
            # the last epoch goes out with the final report below: a scheduler stops a
            # trial at max_t, and a stop here would swallow the trial's details (and make
            # a finished trial look pruned)
            return
        tune.report(
            {
                METRIC: best[0],
                "val_acc": val,
                "epoch": epoch,
                "epochs": epochs,
                "attempt": attempt,
                "hops_trained": spent["trained"],
                "hops_reused": spent["reused"],
                "train_seconds": round(spent["seconds"] + spent["current"], 3),
            }
        )

    def on_event(kind: str, info: dict) -> None:
        if kind == "hop_start":
            spent["trained"] += 1
            spent["current"] = 0.0
        elif kind == "hop_end":
            if info.get("status") == "reused":
                spent["reused"] += 1
            else:
                spent["seconds"] += float(info.get("seconds") or 0.0)
            spent["current"] = 0.0
        elif kind == "epoch":
            spent["current"] = float(info.get("seconds") or 0.0)
            if info.get("hop") == len(names):
                _inject_worker_death(info["epoch"])
                report_epoch(info["epoch"], info["val_acc"])

    ctx.on_event = on_event
    chain = run_chain(
        ctx,
        names,
        hops,
        guidance=config.get("guidance", "chain"),
        seed=seed,
        teacher_seed=None if teacher_seed is None else int(teacher_seed),
    )
    student = chain[-1]
    for row in student.result.curve[reported[0] :]:  # replay a stored student's curve
        report_epoch(row["epoch"], row["val_acc"])
    after = ctx.store.stats.as_dict()
    rows = hop_rows(chain)
    tune.report(
        {
            METRIC: student.result.val_acc,
            "val_acc": student.result.val_acc,
            # searched trials never see the test set; baselines and confirmation report it
            "test_acc": student.result.test_acc if "method" in config else None,
            "epoch": epochs,
            "epochs": epochs,
            "best_epoch": student.result.best_epoch,
            "hops_trained": after["trained"] - before["trained"],
            "hops_reused": after["reused"] - before["reused"],
            "bank_hits": after["bank_hits"] - before["bank_hits"],
            "bank_misses": after["bank_misses"] - before["bank_misses"],
            "train_seconds": sum(r["seconds"] for r in rows if r["status"] == "trained"),
            "wall_seconds": time.perf_counter() - t0,
            "hop_rows": rows,
            "attempt": attempt,
            # corrupt store entries this trial met (discarded, retrained): the driver
            # reports each once, on the console and in the run folder
            "corrupt": after["corrupt"][len(before["corrupt"]) :],
            "finished": True,
        }
    )


def _attempt(folder: str | None, driver: str | None = None) -> int:
    """1 + how many times Tune retried this trial after a failure (a dead worker), counted
    per trial id in the run folder (Tune gives a restarted trial a fresh local folder).
    Each start appends its driver's id: a start under a driver that already started the
    trial is a retry; the first start under a new driver (a resumed run) is not."""
    if not folder:
        return 1
    try:
        path = Path(folder) / tune.get_context().get_trial_id()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:  # one short line per start: appends never lose a count
            f.write(f"{driver or '-'}\n")
        starts = path.read_text().split()
        return len(starts) - len(set(starts)) + 1
    except OSError:
        return 1


def _inject_worker_death(epoch: int) -> None:
    """Fault injection for the reliability tests: with TAKD_FAULT_WORKER_EXIT=FILE set,
    the first trial to reach its student's epoch 2 kills its own worker process (once:
    FILE records that it happened). Never set in normal use."""
    marker = os.environ.get("TAKD_FAULT_WORKER_EXIT")
    if marker and epoch == 2:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)


# ---- the searcher -----------------------------------------------------------------------
class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED for trials a scheduler stopped early.

    Tune reports a scheduler stop like a normal end (`done` is True for both), and the
    stock searcher would record the truncated score as COMPLETE, teaching TPE that a
    stopped trial was a finished one. A trial is early-stopped when its last result has
    no `finished` flag (set only by `run_trial`'s final report).
    """

    def on_trial_complete(self, trial_id, result=None, error=False):
        if (
            not error
            and result
            and trial_id not in self._completed_trials
            and trial_id in self._ot_trials
            and not result.get("finished")
        ):
            ot_trial = self._ot_trials[trial_id]
            try:
                if METRIC in result:
                    ot_trial.report(result[METRIC], int(result.get("epoch", 0)))
                self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)
            except Exception as exc:  # a value Optuna rejects must not stop the search
                log.warning("optuna: %s", exc)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def make_sampler(kind: str, seed: int, grid: dict | None = None, n_trials: int | None = None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    # random start-up trials before TPE models the space: a third of the budget, 4..10
    startup = 10 if not n_trials else max(4, min(10, n_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


# ---- progress ---------------------------------------------------------------------------
class Progress(tune.Callback):
    """One console line per event: trials done/running/total and the best so far."""

    def __init__(
        self,
        phase: str,
        total: int | None,
        label: Callable | None = None,
        run_dir: str | None = None,
        max_failures: int | None = None,
    ):
        self.phase, self.total, self.max_failures = phase, total, max_failures
        self.label = label or (lambda cfg: cfg.get("path", "?"))
        self.done = self.failed = 0
        self.running: set = set()
        self.best: tuple[float, str] | None = None
        self.run_dir = run_dir  # where progress.json goes (`takd-search status RUN_DIR`)
        self.live: dict = {}  # trial id -> its line's state (progress.trial_line)
        self.started: float | None = None
        self.view = LiveBlock()

    def __setstate__(self, state):
        # a Progress pickled by an older version (a restored experiment) lacks the view
        defaults = {"run_dir": None, "live": {}, "started": None, "view": LiveBlock()}
        self.__dict__.update({**defaults, **state})

    def _block(self) -> list[str]:
        now = time.time()
        lines = [trial_line(self.phase, v["label"], v, now) for v in self.live.values()]
        eta = self._eta()
        if lines and eta is not None:
            lines.append(f"  [{self.phase}] about {fmt_seconds(eta)} left")
        return lines

    def _eta(self) -> float | None:
        elapsed = time.time() - self.started if self.started else 0.0
        return eta_seconds(elapsed, self.done + self.failed, self.total)

    def _status(self) -> None:
        if not self.run_dir:
            return
        best = {"val_acc": self.best[0], "path": self.best[1]} if self.best else None
        write_status(
            self.run_dir,
            {
                "phase": self.phase,
                "done": self.done,
                "failed": self.failed,
                "running": len(self.running),
                "total": self.total,
                "best": best,
                "eta_s": self._eta(),
                "running_trials": [
                    {k: v.get(k) for k in ("label", "epoch", "epochs", "best")}
                    for v in self.live.values()
                ],
            },
        )

    def _line(self, what: str) -> None:
        total = f"/{self.total}" if self.total else ""
        best = f" | best {100 * self.best[0]:.2f}% {self.best[1]}" if self.best else ""
        self.view.event(
            f"[{self.phase}] {self.done + self.failed}{total} done, {len(self.running)} "
            f"running{f', {self.failed} failed' if self.failed else ''}{best} | {what}",
            self._block(),
        )
        self._status()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started = self.started or time.time()
        self.running.add(trial.trial_id)
        path = str((trial.config.get("case") or trial.config).get("path", "?"))
        self.live[trial.trial_id] = {
            "label": self.label(trial.config),
            "hops": path.count(">") + 1,
            "epoch": None,
            "epochs": None,
            "best": None,
            "started": time.time(),
        }
        self.view.draw(self._block())
        self._status()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        live = self.live.get(trial.trial_id)
        if live is None or result.get("finished"):
            return
        live.update(epoch=result.get("epoch"), epochs=result.get("epochs"))
        live["best"] = result.get(METRIC, live["best"])
        self.view.draw(self._block())
        self._status()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.live.pop(trial.trial_id, None)
        self.done += 1
        res = trial.last_result or {}
        score = res.get(METRIC)
        label = self.label(trial.config)
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = (score, label)
        status = "finished" if res.get("finished") else "stopped early"
        val = f"{100 * score:.2f}%" if score is not None else "-"
        self._line(f"{label}: {status}, val {val}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        """A failed trial Tune will retry (FailureConfig): our own line, not Ray's raw one."""
        try:
            why = _error_line(Path(trial.error_file).read_text()) if trial.error_file else ""
        except OSError:
            why = ""
        died = not why or any(w in why for w in ("died", "ActorDied", "SYSTEM_ERROR", "exit"))
        epoch = (trial.last_result or {}).get("epoch")
        after = f" after epoch {epoch}" if epoch else ""
        limit = getattr(self, "max_failures", None)  # a Progress restored from an old run
        n = f"{getattr(trial, 'num_failures', 1)}/{limit}" if limit else "once more"
        what = "worker died" if died else f"failed ({why})"
        self._line(
            f"trial {trial.trial_id} {self.label(trial.config)}: {what}{after}, retrying "
            f"{n} from its last checkpoint"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.live.pop(trial.trial_id, None)
        self.failed += 1
        try:
            why = _error_line(Path(trial.error_file).read_text()) if trial.error_file else ""
        except OSError:
            why = ""
        self._line(f"{self.label(trial.config)}: failed{': ' + why if why else ''}")


# ---- experiments ------------------------------------------------------------------------
@dataclass
class Phase:
    """One Tune experiment of a run. Either `space` (an Optuna define-by-run callable,
    searched for `n_trials` / `time_budget_s`) or `configs` (a fixed list)."""

    name: str
    run: dict
    dataset: object = None  # takd_search.data.Dataset, shipped to workers by Ray
    teacher: object = None  # takd_search.teacher.TeacherSource of a brought teacher, or None
    configs: list[dict] | None = None
    space: object | None = None
    sampler: str = "tpe"
    n_trials: int | None = None
    time_budget_s: float | None = None
    seed: int = 0
    grid: dict | None = None
    asha: bool = False
    grace_epochs: int | None = None
    cpu: float = 1.0
    gpu: float = 0.0
    concurrency: int = 1
    max_failures: int = 1


def _trainable(phase: Phase):
    trainable = tune.with_parameters(
        run_trial, run=phase.run, dataset=phase.dataset, teacher=phase.teacher
    )
    return tune.with_resources(trainable, {"cpu": phase.cpu, "gpu": phase.gpu})


def _tuner(phase: Phase, root: Path, progress: Progress):
    run_config = tune.RunConfig(
        name=phase.name,
        storage_path=str(root.resolve()),
        verbose=0,
        callbacks=[progress],
        failure_config=tune.FailureConfig(max_failures=phase.max_failures),
    )
    if phase.space is not None:
        search = PruningOptunaSearch(
            space=phase.space,
            metric=METRIC,
            mode="max",
            sampler=make_sampler(phase.sampler, phase.seed, phase.grid, phase.n_trials),
        )
        num_samples = phase.n_trials if phase.n_trials is not None else -1
    else:
        search = BasicVariantGenerator(
            points_to_evaluate=None, constant_grid_search=True, random_state=phase.seed
        )
        num_samples = 1
    scheduler = None
    if phase.asha:
        from takd_search.pruning import FairASHA

        epochs = phase.run["train"]["epochs"]
        # metric/mode come from TuneConfig: Tune refuses them in both places
        scheduler = FairASHA(
            time_attr="epoch",
            max_t=epochs,
            grace_period=min(epochs, phase.grace_epochs or max(1, epochs // 4)),
            reduction_factor=3,
        )
    param_space = {"case": tune.grid_search(phase.configs)} if phase.configs else None
    tune_config = tune.TuneConfig(
        search_alg=search,
        metric=METRIC,
        mode="max",
        num_samples=num_samples,
        max_concurrent_trials=phase.concurrency,
        scheduler=scheduler,
        time_budget_s=phase.time_budget_s,
        reuse_actors=True,
    )
    return tune.Tuner(
        _trainable(phase), tune_config=tune_config, run_config=run_config, param_space=param_space
    )


def run_phase(phase: Phase, root: Path) -> list[dict]:
    """Run (or resume) one phase; returns one row per trial from Tune's ResultGrid.

    Raises Interrupted when the driver was stopped by SIGINT/SIGTERM: the experiment's
    state is snapshotted and the same command resumes it. Raises DiskFull (one line) when
    a disk the run writes to filled up. A saved experiment Tune cannot read back (cut
    short by a full disk or a kill mid-write) is moved aside and the phase starts again:
    its finished hops come back from the store, so little is retrained.
    """
    exp = root / phase.name
    total = phase.n_trials if phase.space is not None else len(phase.configs or [])
    progress = Progress(
        phase.name,
        total,
        label=_label,
        run_dir=str(root.parent),
        max_failures=phase.max_failures,
    )
    stop = _StopFlag()
    quiet = [logging.getLogger(n) for n in ("ray.tune", "ray.train", "ray")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # trial failures are reported by Progress, one line each
        lg.setLevel(logging.CRITICAL)
    try:
        with stop:
            try:
                rows = _fit(phase, root, exp, progress)
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as e:
                if is_disk_full(e) or _low_disk(phase, root):
                    raise _disk_is_full(phase, root, exp) from None
                if not stop.caught and exp.exists() and _restored[0]:
                    _set_aside(exp, e)
                    if _main_thread():  # the first fit left Tune's handler: ours again
                        signal.signal(signal.SIGINT, stop._on_int)
                    rows = _fit(phase, root, exp, progress)
                else:
                    raise
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    if stop.caught:
        raise Interrupted(f"the {phase.name} phase was interrupted ({stop.caught})")
    errors = [r["error"] for r in rows if r["error"]]
    if any(is_disk_full(e) for e in errors) or (errors and _low_disk(phase, root)):
        raise _disk_is_full(phase, root, exp)
    return rows


_restored = [False]  # did the last _fit restore a saved experiment?


def _fit(phase: Phase, root: Path, exp: Path, progress: Progress) -> list[dict]:
    _restored[0] = tune.Tuner.can_restore(str(exp))
    if _restored[0]:
        tuner = tune.Tuner.restore(
            str(exp), trainable=_trainable(phase), resume_errored=True, restart_errored=False
        )
        # the restored experiment brings back its own (pickled) Progress callback
    else:
        tuner = _tuner(phase, root, progress)
    grid = tuner.fit()
    return [_row(r) for r in grid]


def _set_aside(exp: Path, e: BaseException) -> None:
    import sys

    dest = exp.with_name(f"{exp.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    print(
        f"[{exp.name}] its saved state cannot be read back ({type(e).__name__}: "
        f"{str(e)[:120]}); moved to {dest.name}, the phase starts again (finished hops "
        "are reused from the store)",
        file=sys.stderr,
        flush=True,
    )
    os.replace(exp, dest)


class DiskFull(UserError):
    """A disk the run writes to is full: one line; after freeing space the same command
    resumes (what was written whole is kept, nothing half-written is read back)."""


_FULL = ("No space left on device", "Disk quota exceeded", "File too large", "[Errno 28]")


def is_disk_full(err) -> bool:
    """Is this error (an exception, its causes, or a trial's error line) a full disk?"""
    import errno

    seen = 0
    while isinstance(err, BaseException) and seen < 10:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if any(t in str(err) for t in _FULL):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return isinstance(err, str) and any(t in err for t in _FULL)


def _disk_is_full(phase: Phase, root: Path, exp: Path) -> DiskFull:
    """The error to raise, after setting the phase's Tune state aside: Tune wrote it while
    the disk was full, so parts of it may be cut short, and Tune would read them back
    (trials without a config). The phase then runs again; every hop that was saved whole
    comes back from the store. A rename needs no free blocks."""
    msg = _full_message(phase, root)
    if exp.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            os.replace(exp, exp.with_name(f"{exp.name}.disk-full-{stamp}"))
        except OSError:
            pass
    return DiskFull(msg)


def _places(phase: Phase, root: Path) -> list[Path]:
    return [Path(p) for p in (root, phase.run.get("store")) if p]


def _low_disk(phase: Phase, root: Path) -> bool:
    import shutil

    for p in _places(phase, root):
        try:
            if shutil.disk_usage(p).free < 1 << 20:  # under 1 MB: nothing fits any more
                return True
        except OSError:
            pass
    return False


def _full_message(phase: Phase, root: Path) -> str:
    return full_message(_places(phase, root), f"the {phase.name} phase")


def full_message(places: list, during: str) -> str:
    """One line for a full disk: which disk, how much is free (MB), and the fix."""
    import shutil

    places = [Path(p) for p in places if p]
    free = []
    for i, p in enumerate(places):
        try:
            free.append((shutil.disk_usage(p).free, i, p))
        except OSError:
            pass
    least, _, where = min(free) if free else (0, 0, places[0] if places else Path.cwd())
    return (
        f"the disk holding {where} is full ({least / 1e6:.1f} MB free) during "
        f"{during}: free space there (e.g. `takd-search store gc`), or move "
        "--results/--store to a bigger disk, then run the same command again (it resumes)"
    )


def _label(cfg: dict) -> str:
    case = cfg.get("case", cfg)
    tag = case.get("method")
    return (
        f"{tag} {case.get('path')}" + (f" seed {case['seed']}" if "seed" in case else "")
        if tag
        else str(case.get("path", "?"))
    )


def _row(result) -> dict:
    """A trial as a flat dict: its config, its last metrics, status and error."""
    cfg = dict(result.config or {})
    case = cfg.pop("case", None)
    if case:
        cfg.update(case)
    m = dict(result.metrics or {})
    if result.error is not None:
        status, error = "failed", _error_line(result.error)
    elif m.get("finished"):
        status, error = "completed", None
    elif m:
        status, error = "pruned", None
    else:
        status, error = "interrupted", None
    return {
        "trial_id": m.get("trial_id") or Path(result.path).name.split("_")[1]
        if result.path
        else None,
        "status": status,
        "error": error,
        "config": cfg,
        "metrics": m,
        "retries": max(0, int(m.get("attempt", 1)) - 1),
        "path_dir": result.path,
    }


def _error_line(err) -> str:
    """The last meaningful line of an error (Ray wraps the trial's traceback)."""
    text = str(err).strip().splitlines()
    for line in reversed(text):
        if line.strip() and not line.startswith(" "):
            return line.strip()[:300]
    return type(err).__name__


class _StopFlag:
    """Makes SIGTERM graceful while a phase runs, and remembers that a stop came.

    Tune handles SIGINT itself (it snapshots, then fit() returns) with a handler that, on
    the first SIGINT, puts back the handler it found. So ours goes in first: finding it
    back after fit() means a SIGINT (Ctrl-C) came; a run that simply ended leaves Tune's
    in place. That, not the trials' saved states, tells an interruption from a phase whose
    searcher had nothing more to propose. SIGTERM would hit the handler `ray.init`
    installed (a plain exit, no snapshot), so while fit() runs it is turned into SIGINT.
    Installed after ray.init, or ray.init would replace it.
    """

    def __init__(self):
        self.caught: str | None = None
        self._old = self._old_int = None

    def __enter__(self):
        if _main_thread():
            self._old = signal.signal(signal.SIGTERM, self._on_term)
            self._old_int = signal.signal(signal.SIGINT, self._on_int)
        return self

    def _on_int(self, signum, frame):  # a second Ctrl-C (Tune's handler took the first)
        self.caught = self.caught or "Ctrl-C"
        raise KeyboardInterrupt

    def _on_term(self, signum, frame):
        self.caught = "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)

    def __exit__(self, *exc):
        if self._old is not None:
            if signal.getsignal(signal.SIGINT) == self._on_int:  # Tune saw a SIGINT
                self.caught = self.caught or "Ctrl-C"
            signal.signal(signal.SIGTERM, self._old)
            signal.signal(signal.SIGINT, self._old_int)
        return False


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
