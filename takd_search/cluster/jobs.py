"""`takd-search submit / status / stop`: a search as a Ray job on a cluster.

`submit` packs this package (`py_modules`) and the space file (`working_dir`) into the
job's runtime_env, so the cluster runs exactly the client's code and space, and starts

    exec <python> -m takd_search.cluster job [--sync URI] -- run --space ... --address auto
        --results <storage>/results --store <storage>/store

on the head node. `<python>` is named explicitly (a job's shell has the PATH of whoever
ran `ray start`, not ours). Results and the hop store go to `--storage`: an absolute path
every node sees (NFS) is used directly; a pyarrow URI (`s3://`, `gs://`, `file://`) gets
the run folders copied in before and out after the run (see `docs/cluster.md`).

`stop` asks Ray to stop the job with SIGINT (set per job in its runtime_env) and to wait
`--stop-grace` seconds before SIGKILL: Tune snapshots and the driver exits 130. The same
`submit` command then resumes the run (the driver picks the unfinished run of the same
space and settings; `--resume RUN` names one): finished trials are kept, none re-run.

Token authentication (on by default in Ray 2.60): the client reads the cluster's token
where Ray's own loader does (`RAY_AUTH_TOKEN`, else the file `RAY_AUTH_TOKEN_PATH`, else
`~/.ray/auth_token`) and sends it as `Authorization: Bearer`, whatever `RAY_AUTH_MODE` says
(unless it says `disabled`). Ray's job client only sends it when `RAY_AUTH_MODE=token`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from takd_search.errors import UserError

META_KEY = "takd_search"  # marks our jobs in the cluster's job list
STOP_GRACE_S = 120  # seconds between the stop signal and SIGKILL
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ACTIVE = ("PENDING", "RUNNING")
# `takd-search run` flags that travel to the job as given (flag -> attribute)
RUN_FLAGS = {
    "--trials": "trials",
    "--time-budget": "time_budget",
    "--epochs": "epochs",
    "--dataset": "dataset",
    "--data-dir": "data_dir",
    "--gpus-per-trial": "gpus_per_trial",
    "--cpus-per-trial": "cpus_per_trial",
    "--device": "device",
}


def say(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- address and token ------------------------------------------------------------------
def job_address(address: str | None) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS, else an http $RAY_ADDRESS; with a scheme."""
    env = os.environ.get("RAY_ADDRESS", "")
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or ("://" in env and env)
    if not address:
        raise UserError(
            "no cluster named: pass --address http://HEAD:8265 (the head's dashboard port) "
            "or set RAY_API_SERVER_ADDRESS"
        )
    if "://" not in address:
        address = f"http://{address}"
    if address.startswith("ray://"):
        raise UserError(
            f"--address {address} is a Ray Client address: jobs go to the dashboard, "
            "e.g. --address http://HEAD:8265"
        )
    return address.rstrip("/")


def read_token() -> tuple[str | None, str]:
    """(token, where it came from), looked up as Ray's own loader does; (None, why) if none."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "disabled":
        return None, "RAY_AUTH_MODE=disabled"
    env = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if env:
        return env, "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as e:
            raise UserError(
                f"RAY_AUTH_TOKEN_PATH={path} cannot be read ({e.strerror}): point it at a "
                "copy of the head's token file, or unset it"
            ) from None
        if not token:
            raise UserError(f"RAY_AUTH_TOKEN_PATH={path} is empty: copy the head's token there")
        return token, f"RAY_AUTH_TOKEN_PATH={path}"
    default = Path.home() / ".ray" / "auth_token"
    try:
        token = default.read_text().strip()
    except OSError:
        return None, "no token found"
    return (token, str(default)) if token else (None, "no token found")


def client(address: str | None):
    """A JobSubmissionClient for the cluster, or one line saying what is wrong."""
    try:
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise UserError(
            "submitting to a cluster needs Ray's job client: pip install 'takd-search[cluster]'"
            " (it installs ray[default])"
        ) from None
    address = job_address(address)
    import logging

    for name in (  # no INFO lines about uploads and websockets (these set INFO themselves)
        "ray",
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        "ray._private.runtime_env.packaging",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    token, source = read_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as e:
        raise _auth_error(address, token, source, e) from None
    except ConnectionError:
        raise UserError(
            f"cannot reach the Ray job server at {address}: start the cluster "
            "(`ray start --head --dashboard-host 0.0.0.0`, see docs/cluster.md) or pass "
            "--address http://HEAD:8265"
        ) from None
    except Exception as e:  # a 404 from something that is not Ray's dashboard, bad URL...
        raise UserError(
            f"{address} does not answer as a Ray job server ({_first_line(e)}): pass the "
            "head's dashboard address, e.g. --address http://HEAD:8265"
        ) from None


def _auth_error(address: str, token, source: str, err) -> UserError:
    if token is None:
        why = (
            "RAY_AUTH_MODE=disabled here"
            if source.startswith("RAY_AUTH_MODE")
            else "none was found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)"
        )
        return UserError(
            f"the Ray cluster at {address} requires a token and {why}: copy the head's "
            "token to ~/.ray/auth_token or set RAY_AUTH_TOKEN_PATH / RAY_AUTH_TOKEN "
            "(`ray get-auth-token` on the head prints it)"
        )
    if "Missing" in str(err):
        return UserError(
            f"the Ray cluster at {address} did not receive the token from {source}: is a "
            "proxy dropping the Authorization header?"
        )
    return UserError(
        f"the Ray cluster at {address} rejected the token from {source}: use the head's "
        "token (`ray get-auth-token` on the head prints it)"
    )


def _call(fn, *args, address: str = "", **kw):
    """A client call with auth/connection failures as one line."""
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args, **kw)
    except AuthenticationError as e:
        token, source = read_token()
        raise _auth_error(address, token, source, e) from None
    except ConnectionError:
        raise UserError(
            f"lost the Ray job server at {address}: is the head still up? (`ray status` there)"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


# ---- storage ----------------------------------------------------------------------------
def storage_kind(storage: str) -> str:
    """'path' (absolute, shared) or 'uri' (pyarrow filesystem URI); else a UserError."""
    if "://" in storage:
        scheme = storage.split("://", 1)[0].lower()
        try:
            import pyarrow.fs as pafs

            pafs.FileSystem.from_uri(storage)
        except ImportError:
            raise UserError(
                f"--storage {storage}: URIs need pyarrow (pip install pyarrow)"
            ) from None
        except Exception as e:
            raise UserError(
                f"--storage {storage}: pyarrow cannot open {scheme}:// here ({_first_line(e)}): "
                "use an absolute path every node sees, or s3://, gs://, file://"
            ) from None
        return "uri"
    if not os.path.isabs(storage):
        raise UserError(
            f"--storage {storage} is not absolute: the job runs in a temporary copy on the "
            "cluster, so pass an absolute path every node sees (e.g. /mnt/shared/takd) or a URI"
        )
    return "path"


def _download(uri: str, local: Path) -> int:
    """Copy the tree at `uri` into `local` (nothing if it does not exist); files copied."""
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return 0
    n = 0
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        dest = local / os.path.relpath(info.path, root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        n += 1
    return n


def _upload(local: Path, uri: str) -> int:
    """Copy the files under `local` to `uri` (symlinks such as ray_logs are skipped)."""
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    n = 0
    for folder, dirs, files in os.walk(local):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for f in files:
            p = os.path.join(folder, f)
            if os.path.islink(p):
                continue
            rel = os.path.relpath(p, local).replace(os.sep, "/")
            dest = f"{root.rstrip('/')}/{rel}"
            fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
            with open(p, "rb") as src, fs.open_output_stream(dest) as out:
                shutil.copyfileobj(src, out)
            n += 1
    return n


# ---- submit -----------------------------------------------------------------------------
def _run_args(a, space_rel: str) -> list[str]:
    """The `takd-search run` arguments for the job (paths on the cluster)."""
    args = ["run", "--space", space_rel, "--address", "auto"]
    for flag, attr in RUN_FLAGS.items():
        v = getattr(a, attr, None)
        if v is not None:
            args += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    if getattr(a, "new", False):
        args.append("--new")
    if getattr(a, "no_store", False):
        args.append("--no-store")
    return args


def _check_cluster_paths(a) -> None:
    for flag, attr in (("--data-dir", "data_dir"), ("--python", "python"), ("--store", "store")):
        v = getattr(a, attr, None)
        if v and not os.path.isabs(v):
            raise UserError(
                f"{flag} {v} is not absolute: it is read on the cluster, in a temporary "
                "working folder: pass an absolute path on the cluster's nodes"
            )


def _entrypoint(python: str, job_args: list[str], run_args: list[str]) -> str:
    py = shlex.quote(python)
    missing = shlex.quote(
        f"takd-search: error: no python at {python} on the cluster's head node: pass "
        "--python PATH (an interpreter with takd-search's dependencies there)"
    )
    cmd = " ".join(shlex.quote(x) for x in [*job_args, "--", *run_args])
    return (
        f"test -x {py} || {{ echo {missing} >&2; exit 2; }}; "
        f"exec {py} -m takd_search.cluster job {cmd}"
    )


def _job_id(space: str) -> str:
    return f"takd-{space}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def submit(a) -> int:
    """`takd-search submit`: validate locally, submit the job, print its id (or follow)."""
    from takd_search.spec import find_space, flag_overrides, load_space

    _check_cluster_paths(a)
    kind = storage_kind(a.storage)
    overrides = flag_overrides(a)
    space, _, _ = load_space(a.space, overrides)  # every mistake in the space shows here
    space_file = find_space(a.space)
    name = space_file.stem
    space_rel = f"search_spaces/{name}.yaml"
    run_args = _run_args(a, space_rel)
    job_args = []
    if kind == "path":
        results = f"{a.storage.rstrip('/')}/results"
        run_args += ["--results", results]
        store = a.store or f"{a.storage.rstrip('/')}/store"
        resume = a.resume and (a.resume if os.path.isabs(a.resume) else f"{results}/{a.resume}")
    else:
        results = f"{a.storage.rstrip('/')}/results"
        job_args += ["--sync", results]
        store = a.store  # None: a store on the head's disk, next to the copy of the results
        resume = a.resume  # made absolute by the job, under its copy of the results
    if store and not a.no_store:
        run_args += ["--store", store]
    if resume:
        run_args += ["--resume", resume]
    key = json.dumps({"storage": a.storage, "run": run_args}, sort_keys=True)
    c = client(a.address)
    address = job_address(a.address)
    if not a.new:
        for job in _call(c.list_jobs, address=address):
            meta = job.metadata or {}
            if meta.get(META_KEY) and meta.get("key") == key and str(job.status) in ACTIVE:
                raise UserError(
                    f"job {job.submission_id} is still running this search: wait for it, or "
                    f"stop it first (takd-search stop {job.submission_id} --address {address})"
                )
    python = a.python or sys.executable
    package = Path(__file__).resolve().parent
    job_id = _job_id(name)
    with tempfile.TemporaryDirectory(prefix="takd-job-") as tmp:
        (Path(tmp) / "search_spaces").mkdir()
        shutil.copyfile(space_file, Path(tmp) / space_rel)
        runtime_env = {
            "working_dir": tmp,
            "py_modules": [str(package)],
            "excludes": ["__pycache__", "*.pyc"],
            "env_vars": {
                "RAY_JOB_STOP_SIGNAL": "SIGINT",
                "RAY_JOB_STOP_WAIT_TIME_S": str(int(a.stop_grace)),
            },
        }
        from takd_search import __version__

        metadata = {
            META_KEY: __version__,
            "space": name,
            "storage": a.storage,
            "results": results,
            "key": key,
            "client": socket.gethostname(),
            "resubmit": _resubmit_line(a, address),
        }
        entrypoint = _entrypoint(python, job_args, run_args)
        try:
            job_id = _call(
                c.submit_job,
                entrypoint=entrypoint,
                runtime_env=runtime_env,
                submission_id=job_id,
                metadata=metadata,
                address=address,
            )
        except UserError:
            raise
        except Exception as e:  # runtime_env upload refused, job id taken, ...
            raise UserError(
                f"the cluster at {address} refused the job: {_first_line(e)}"
            ) from None
    say(
        f"submitted job {job_id} to {address}: {name} ({space.data.dataset}), results in {results}"
    )
    if a.follow:
        return follow(c, job_id, address)
    say(f"follow it:   takd-search status {job_id} --follow --address {address}")
    say(f"   (or:      ray job logs --follow {job_id} --address {address})")
    say(f"stop it:     takd-search stop {job_id} --address {address}")
    print(job_id)
    return 0


def _resubmit_line(a, address: str) -> str:
    parts = ["takd-search", "submit", "--address", address, "--space", a.space]
    parts += ["--storage", a.storage]
    for flag, attr in RUN_FLAGS.items():
        v = getattr(a, attr, None)
        if v is not None:
            parts += [flag, str(v)]
    for flag, attr in (("--python", "python"), ("--store", "store")):
        if getattr(a, attr, None):
            parts += [flag, getattr(a, attr)]
    if a.no_store:
        parts.append("--no-store")
    return " ".join(shlex.quote(p) for p in parts)


# ---- follow, status, stop ---------------------------------------------------------------
def follow(c, job_id: str, address: str) -> int:
    """Stream the job's log until it ends; exit 0 (succeeded), 130 (stopped), 1 (failed)."""

    async def tail():
        async for lines in c.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        say(
            f"\nstopped following; job {job_id} goes on: takd-search status {job_id} "
            f"--address {address} (stop it with takd-search stop {job_id} --address {address})"
        )
        return 130
    except Exception as e:  # the log stream broke (head restarted?): the status says more
        say(f"log stream ended early ({_first_line(e)})")
    info = _wait_terminal(c, job_id, address, timeout=30)
    return _report_end(info, job_id)


def _wait_terminal(c, job_id: str, address: str, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        info = _call(c.get_job_info, job_id, address=address)
        if str(info.status) in TERMINAL or time.monotonic() > deadline:
            return info
        time.sleep(0.5)


def _report_end(info, job_id: str) -> int:
    status = str(info.status)
    if status == "SUCCEEDED":
        say(f"job {job_id} succeeded")
        return 0
    if status == "STOPPED":
        say(f"job {job_id} was stopped; submit the same command again to resume it")
        return 130
    if status == "FAILED":
        say(f"job {job_id} failed: {_first_line(info.message or 'no message')}")
        return 1
    say(f"job {job_id} is {status}")
    return 0


def _job_info(c, job_id: str, address: str):
    try:
        return _call(c.get_job_info, job_id, address=address)
    except UserError:
        raise
    except Exception:
        raise UserError(
            f"no job {job_id} on the cluster at {address}: `takd-search status "
            f"--address {address}` lists the searches there"
        ) from None


def _when(ms) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _run_folder(logs: str) -> str | None:
    for line in logs.splitlines():
        if line.startswith("run folder "):
            return line[len("run folder ") :].split(" | ")[0].strip()
    return None


def status(a) -> int:
    """`takd-search status [JOB_ID] [--follow]`: our jobs on the cluster, or one in detail."""
    c = client(a.address)
    address = job_address(a.address)
    if a.job_id is None:
        if a.follow:
            raise UserError("--follow needs a JOB_ID: takd-search status JOB_ID --follow")
        from takd_search.progress import table

        jobs = [j for j in _call(c.list_jobs, address=address) if (j.metadata or {}).get(META_KEY)]
        jobs.sort(key=lambda j: j.start_time or 0)
        rows = [
            {
                "job": j.submission_id,
                "status": str(j.status),
                "space": j.metadata.get("space"),
                "results": j.metadata.get("results"),
                "started": _when(j.start_time),
                "ended": _when(j.end_time),
            }
            for j in jobs
        ]
        if getattr(a, "json", False):
            print(json.dumps(rows, indent=2, default=str))
            return 0
        print(
            table(
                rows,
                [
                    ("job", "job"),
                    ("status", "status"),
                    ("space", "space"),
                    ("results", "results"),
                    ("started", "started"),
                    ("ended", "ended"),
                ],
            )
        )
        print(f"\n{len(rows)} takd-search job{'' if len(rows) == 1 else 's'} on {address}")
        return 0
    info = _job_info(c, a.job_id, address)
    if a.follow:
        return follow(c, a.job_id, address)
    logs = _call(c.get_job_logs, a.job_id, address=address) or ""
    meta = info.metadata or {}
    if getattr(a, "json", False):
        print(
            json.dumps(
                {
                    "job": a.job_id,
                    "status": str(info.status),
                    "message": info.message,
                    "exit_code": info.driver_exit_code,
                    "space": meta.get("space"),
                    "results": meta.get("results"),
                    "started": _when(info.start_time),
                    "ended": _when(info.end_time),
                    "run_folder": _run_folder(logs),
                },
                indent=2,
                default=str,
            )
        )
        return 0
    print(f"job        {a.job_id}")
    print(f"status     {info.status}" + (f" ({info.message})" if info.message else ""))
    if info.driver_exit_code is not None:
        print(f"exit code  {info.driver_exit_code}")
    print(f"space      {meta.get('space', '-')}")
    print(f"started    {_when(info.start_time)}   ended {_when(info.end_time)}")
    print(f"results    {meta.get('results', '-')}")
    folder = _run_folder(logs)
    if folder:
        print(f"run folder {folder}")
    tail = [x for x in logs.splitlines() if x.strip()][-8:]
    if tail:
        print("last lines of its log:")
        for line in tail:
            print(f"  {line}")
    if str(info.status) in ACTIVE:
        print(f"follow: takd-search status {a.job_id} --follow --address {address}")
    return 0


def stop(a) -> int:
    """`takd-search stop JOB_ID`: SIGINT to the driver, wait for its snapshot and exit."""
    c = client(a.address)
    address = job_address(a.address)
    info = _job_info(c, a.job_id, address)
    meta = info.metadata or {}
    if str(info.status) in TERMINAL:
        say(f"job {a.job_id} already ended ({info.status}); nothing to stop")
        return 0
    grace = float(
        ((info.runtime_env or {}).get("env_vars") or {}).get("RAY_JOB_STOP_WAIT_TIME_S", 3)
    )
    _call(c.stop_job, a.job_id, address=address)
    if a.no_wait:
        say(f"asked job {a.job_id} to stop (it has {grace:g} s to save its state)")
        return 0
    say(f"stopping job {a.job_id}: the search saves its state (up to {grace:g} s)...")
    info = _wait_terminal(c, a.job_id, address, timeout=grace + 60)
    if str(info.status) not in TERMINAL:
        say(f"job {a.job_id} is still {info.status}; check again with takd-search status")
        return 1
    say(f"job {a.job_id}: {info.status}")
    folder = _run_folder(_call(c.get_job_logs, a.job_id, address=address) or "")
    again = meta.get("resubmit")
    if again:
        resume = f" --resume {Path(folder).name}" if folder else ""
        say(f"resume it with: {again}{resume}")
    return 0


# ---- the job's driver (runs on the cluster) ---------------------------------------------
def job_main(argv: list[str] | None = None) -> int:
    """`python -m takd_search.cluster job [--sync URI] -- run ...` on the head node.

    Ray starts the driver with SIGINT ignored; `stop` sends SIGINT, so it is turned back
    on here (Tune installs its own handler while a phase runs). With --sync, the run
    folders are copied from the URI before and back after the run, also when stopped.
    """
    p = argparse.ArgumentParser(prog="takd_search.cluster job")
    p.add_argument("--sync", help="results URI to copy from/to")
    p.add_argument("--scratch", help="local folder for the copy (default ~/.cache/takd-search)")
    argv = list(sys.argv[2:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    run_args = argv[cut + 1 :]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from takd_search.cli import main

    if not a.sync:
        return main(run_args)
    scratch = Path(
        a.scratch
        or Path.home() / ".cache" / "takd-search" / hashlib.sha1(a.sync.encode()).hexdigest()[:12]
    ).expanduser()
    local = scratch / "results"
    local.mkdir(parents=True, exist_ok=True)
    say(f"copied {_download(a.sync, local)} files from {a.sync} to {local}")
    extra = ["--results", str(local)]
    if "--store" not in run_args and "--no-store" not in run_args:
        extra += ["--store", str(scratch / "store")]
    resume = run_args.index("--resume") if "--resume" in run_args else None
    if resume is not None and not os.path.isabs(run_args[resume + 1]):
        run_args[resume + 1] = str(local / run_args[resume + 1])
    try:
        return main(run_args + extra)
    finally:
        say(f"copied {_upload(local, a.sync)} files from {local} to {a.sync}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["job"]:
        raise SystemExit("usage: python -m takd_search.cluster job [--sync URI] -- run ...")
    from takd_search.cli import _fail

    try:
        raise SystemExit(job_main(sys.argv[2:]))
    except UserError as e:  # e.g. --sync URI unreachable from the head
        raise SystemExit(_fail(str(e))) from None
