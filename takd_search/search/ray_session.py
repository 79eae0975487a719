"""The Ray session of a run: starting and stopping Ray, and the checks that need it.

`start_ray` starts a local Ray (token auth, loopback only, a watcher that ends its
processes if the driver dies: reaper.py) or joins a cluster at --address; `stop_ray`
undoes it. Before anything is written, `check_device`, `local_resources`/`check_resources`
and `probe_address` turn a run that cannot be placed into one line (plan.check_machine).
With cluster/, the only place Ray is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import tempfile
from pathlib import Path

import ray

from takd_search.errors import UserError
from takd_search.ray_token import read_token
from takd_search.search import reaper

TOKEN_FILE = "ray_token"  # the local cluster's auth token, in the run folder, mode 600
# What the tool's own Tune runs need, set by start_ray and given back by stop_ray (never on
# import: a user's own Tuner in the same process keeps its loggers). Tune reads each when
# a run starts (its callbacks, its controller, its console output), so this is in time.
RUN_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",  # no Ray console tables: we print our own
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no tensorboard/csv files nobody asked for
    "RAY_DEDUP_LOGS": "0",
    # snapshot the experiment every 2 s (default >= 10 s): a SIGKILLed driver then loses
    # at most the trials of the last 2 s, which the hop store makes cheap to redo
    "TUNE_GLOBAL_CHECKPOINT_S": "2",
}
_saved_run_env: dict | None = None  # the process's own values while the tool's run is on
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
    The process gets RUN_ENV until stop_ray (a value the user set is kept).
    """
    set_run_env()
    if not ray.is_initialized():
        env = {"env_vars": worker_env()}
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
            try:
                with _one_machine():
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
            _watch_session()
        else:
            if address.startswith(("http://", "https://")):
                raise UserError(_HTTP_ADDRESS.format(address=address))
            _token_mode_if_token()
            if _is_loopback(address):  # a head on this machine's 127.0.0.1 (as in tests)
                kw["_node_ip_address"] = "127.0.0.1"
            try:
                with _one_machine(_is_loopback(address)):
                    ray.init(address=address, **kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(_unreachable(address, e)) from None
    return dict(ray.cluster_resources())


@contextlib.contextmanager
def _one_machine(on: bool = True):
    """Ray's one-machine switch (clusters off) while a node starts or a driver joins: Ray
    then keeps 127.0.0.1 instead of swapping in the machine's network address, which a
    head bound to loopback does not listen on (the join would wait for minutes)."""
    from ray._private import ray_constants  # Ray: imported only once a command needs it

    multi = ray_constants.ENABLE_RAY_CLUSTER
    if on:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = multi


def _is_loopback(address: str) -> bool:
    """HOST:PORT on this machine's loopback (127.x, localhost, ::1)."""
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]").lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")


def worker_env() -> dict[str, str]:
    """The env vars of every Ray worker of a run: this package and the folders of the
    model-family modules the run loaded on PYTHONPATH, $TAKD_FAMILIES naming those
    modules (a worker imports them on its first model name: plugins.py), and every
    TAKD_* setting (the store's, the fault tests')."""
    from takd_search import plugins  # no torch: the loader is standard library only

    pkg_root = str(Path(__file__).resolve().parents[2])  # the folder holding takd_search
    fams = plugins.for_workers()
    path = [pkg_root, fams.pop("PYTHONPATH", None), os.environ.get("PYTHONPATH")]
    return {
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "RAY_AIR_NEW_OUTPUT": "0",
        **{k: v for k, v in os.environ.items() if k.startswith("TAKD_")},
        **fams,
    }


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

    # Ray: imported only once a command needs it
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
    # Ray: imported only once a command needs it
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

    if read_token()[0]:
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config  # Ray: imported only once a command needs it

        Config.initialize("")  # Ray caches the mode at import; refresh it as Ray itself does


_reaper = None  # the watcher that ends this local session's processes if the driver dies


def _watch_session() -> None:
    """A SIGKILLed driver cannot stop the Ray it started; a watcher does (reaper.py)."""
    global _reaper

    try:
        _reaper = reaper.start(ray._private.worker._global_node.session_name)  # noqa: SLF001
    except Exception:  # no watcher is no reason to fail a run
        _reaper = None


def set_run_env() -> None:
    """RUN_ENV for the tool's own runs; a variable the user set keeps its value."""
    global _saved_run_env
    if _saved_run_env is None:
        _saved_run_env = {k: os.environ.get(k) for k in RUN_ENV}
    for k, v in RUN_ENV.items():
        os.environ.setdefault(k, v)


def restore_run_env() -> None:
    """Give the process back the values RUN_ENV's variables had before set_run_env."""
    global _saved_run_env
    if _saved_run_env is None:
        return
    for k, v in _saved_run_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _saved_run_env = None


def stop_ray() -> None:
    global _reaper
    if ray.is_initialized():
        ray.shutdown()
    if _reaper is not None:  # EOF: it checks in a few seconds that nothing is left
        _reaper.stdin.close()
        _reaper = None
    _restore_auth()
    restore_run_env()


def check_device(device: str | None) -> None:
    """--device names a device this machine has: one line now, not a failure per trial."""
    if device is None:
        return
    import torch  # torch: not loaded by torch-free callers

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
    from ray._private.utils import get_num_cpus  # Ray: imported only once a command needs it

    try:
        import torch  # torch: not loaded by torch-free callers

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
