"""`takd-search submit / status / stop`: a search as a Ray job on a cluster.

`submit` packs this package (`py_modules`) and the space file (`working_dir`) into the
job's runtime_env, so the cluster runs exactly the client's code and space, and starts

    exec <python> -m takd_search.cluster job [--sync URI] -- run --space ... --address auto
        --results <storage>/results --store <storage>/store

on the head node (cluster/driver.py). `<python>` is named explicitly (a job's shell has
the PATH of whoever ran `ray start`, not ours). Results and the hop store go to
`--storage` (cluster/storage.py). The budget flags given to `submit` travel to the job's
`run` as given (config/flags.py).

`stop` asks Ray to stop the job with SIGINT (set per job in its runtime_env) and to wait
`--stop-grace` seconds before SIGKILL: Tune snapshots and the driver exits 130. The same
`submit` command then resumes the run (the driver picks the unfinished run of the same
space and settings; `--resume RUN` names one): finished trials are kept, none re-run.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from takd_search import __version__, plugins
from takd_search.cluster.client import call, client, job_address, say
from takd_search.cluster.storage import storage_kind
from takd_search.config.files import find_space, load_space
from takd_search.config.flags import FlagConflict, job_flags, set_overrides
from takd_search.errors import UserError, first_line
from takd_search.progress import table

META_KEY = "takd_search"  # marks our jobs in the cluster's job list
STOP_GRACE_S = 120  # seconds between the stop signal and SIGKILL
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ACTIVE = ("PENDING", "RUNNING")


# ---- submit -----------------------------------------------------------------------------
def _run_args(a, space_rel: str) -> list[str]:
    """The `takd-search run` arguments for the job (paths on the cluster)."""
    args = ["run", "--space", space_rel, "--address", "auto"]
    for flag, v in job_flags(a):
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


def _storage_args(a, kind: str) -> tuple[list[str], list[str], str]:
    """(the driver's arguments, the run's storage arguments, the results folder/URI) for
    --storage of `kind` ('path' or 'uri')."""
    results = f"{a.storage.rstrip('/')}/results"
    job_args, run_args = [], []
    if kind == "path":
        run_args += ["--results", results]
        store = a.store or f"{a.storage.rstrip('/')}/store"
        resume = a.resume and (a.resume if os.path.isabs(a.resume) else f"{results}/{a.resume}")
    else:
        job_args += ["--sync", results]
        store = a.store  # None: a store on the head's disk, next to the copy of the results
        if not store and not a.no_store:  # whose entries the run folders name go to URI/store
            job_args += ["--sync-store", f"{a.storage.rstrip('/')}/store"]
        resume = a.resume  # made absolute by the job, under its copy of the results
    if store and not a.no_store:
        run_args += ["--store", store]
    if resume:
        run_args += ["--resume", resume]
    return job_args, run_args, results


def submit(a) -> int:
    """`takd-search submit`: validate locally, submit the job, print its id (or follow)."""
    _check_cluster_paths(a)
    kind = storage_kind(a.storage)
    try:
        overrides = set_overrides(a)
    except FlagConflict as e:
        raise UserError(str(e)) from None
    space, _, _ = load_space(a.space, overrides)  # every mistake in the space shows here
    space_file = find_space(a.space)
    name = space_file.stem
    space_rel = f"search_spaces/{name}.yaml"
    run_args = _run_args(a, space_rel)
    job_args, more, results = _storage_args(a, kind)
    run_args += more
    key = json.dumps({"storage": a.storage, "run": run_args}, sort_keys=True)
    c = client(a.address)
    address = job_address(a.address)
    if not a.new:
        for job in call(c.list_jobs, address=address):
            meta = job.metadata or {}
            if meta.get(META_KEY) and meta.get("key") == key and str(job.status) in ACTIVE:
                raise UserError(
                    f"job {job.submission_id} is still running this search: wait for it, or "
                    f"stop it first (takd-search stop {job.submission_id} --address {address})"
                )
    python = a.python or sys.executable
    package = Path(__file__).resolve().parent.parent  # takd_search/, all of it
    job_id = _job_id(name)
    with tempfile.TemporaryDirectory(prefix="takd-job-") as tmp:
        (Path(tmp) / "search_spaces").mkdir()
        shutil.copyfile(space_file, Path(tmp) / space_rel)
        runtime_env = {
            "working_dir": tmp,
            # this package, and the modules of the space's own families (docs/families.md)
            "py_modules": [str(package), *plugins.module_paths()],
            "excludes": ["__pycache__", "*.pyc"],
            "env_vars": {
                "RAY_JOB_STOP_SIGNAL": "SIGINT",
                "RAY_JOB_STOP_WAIT_TIME_S": str(int(a.stop_grace)),
            },
        }

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
            job_id = call(
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
            raise UserError(f"the cluster at {address} refused the job: {first_line(e)}") from None
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
    for flag, v in job_flags(a):
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
        say(f"log stream ended early ({first_line(e)})")
    info = _wait_terminal(c, job_id, address, timeout=30)
    return _report_end(info, job_id)


def _wait_terminal(c, job_id: str, address: str, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        info = call(c.get_job_info, job_id, address=address)
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
        say(f"job {job_id} failed: {first_line(info.message or 'no message')}")
        return 1
    say(f"job {job_id} is {status}")
    return 0


def _job_info(c, job_id: str, address: str):
    try:
        return call(c.get_job_info, job_id, address=address)
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

        jobs = [j for j in call(c.list_jobs, address=address) if (j.metadata or {}).get(META_KEY)]
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
    logs = call(c.get_job_logs, a.job_id, address=address) or ""
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
    call(c.stop_job, a.job_id, address=address)
    if a.no_wait:
        say(f"asked job {a.job_id} to stop (it has {grace:g} s to save its state)")
        return 0
    say(f"stopping job {a.job_id}: the search saves its state (up to {grace:g} s)...")
    info = _wait_terminal(c, a.job_id, address, timeout=grace + 60)
    if str(info.status) not in TERMINAL:
        say(f"job {a.job_id} is still {info.status}; check again with takd-search status")
        return 1
    say(f"job {a.job_id}: {info.status}")
    folder = _run_folder(call(c.get_job_logs, a.job_id, address=address) or "")
    again = meta.get("resubmit")
    if again:
        resume = f" --resume {Path(folder).name}" if folder else ""
        say(f"resume it with: {again}{resume}")
    return 0
