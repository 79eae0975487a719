"""The job's driver on the head node: `python -m takd_search.cluster job [--sync URI]
[--sync-store URI] -- run ...` (cluster/__main__.py), started by the entrypoint that
`submit` writes.

It runs the `takd-search run` command line it is given with the CLI's `main`, which
cluster/__main__.py passes in (the CLI sits above cluster/: this module does not import
it). With --sync, between copying the run folders in from the storage URI and back out,
also when stopped; with --sync-store, the hop-store entries those run folders name go to
that URI too (and come back in for a resume on a fresh head).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from takd_search.cluster.client import say
from takd_search.cluster.storage import download, needed_hops, upload


def job_main(argv: list[str] | None, main: Callable[[list[str]], int]) -> int:
    """`python -m takd_search.cluster job [--sync URI] -- run ...` on the head node;
    `main` is the CLI's, which parses the run's command line and turns user errors into
    one line and exit 2.

    Ray starts the driver with SIGINT ignored; `stop` sends SIGINT, so it is turned back
    on here (Tune installs its own handler while a phase runs). With --sync, the run
    folders are copied from the URI before and back after the run, also when stopped.
    """
    p = argparse.ArgumentParser(prog="takd_search.cluster job")
    p.add_argument("--sync", help="results URI to copy from/to")
    p.add_argument("--sync-store", help="URI for the hop-store entries the results name")
    p.add_argument("--scratch", help="local folder for the copy (default ~/.cache/takd-search)")
    argv = list(sys.argv[2:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    run_args = argv[cut + 1 :]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not a.sync:
        return main(run_args)
    scratch = Path(
        a.scratch
        or Path.home() / ".cache" / "takd-search" / hashlib.sha1(a.sync.encode()).hexdigest()[:12]
    ).expanduser()
    local = scratch / "results"
    local.mkdir(parents=True, exist_ok=True)
    say(f"copied {download(a.sync, local)} files from {a.sync} to {local}")
    extra = ["--results", str(local)]
    store = None
    if "--store" not in run_args and "--no-store" not in run_args:
        store = scratch / "store"
        extra += ["--store", str(store)]
        if a.sync_store:  # a fresh head gets the hops of earlier jobs back
            n = download(f"{a.sync_store.rstrip('/')}/hops", store / "hops", skip_same=True)
            say(f"copied {n} hop-store files from {a.sync_store} to {store}")
    resume = run_args.index("--resume") if "--resume" in run_args else None
    if resume is not None and not os.path.isabs(run_args[resume + 1]):
        run_args[resume + 1] = str(local / run_args[resume + 1])
    try:
        return main(run_args + extra)
    finally:
        say(f"copied {upload(local, a.sync)} files from {local} to {a.sync}")
        if store is not None and a.sync_store:
            keys = needed_hops(local, store)
            n = upload(store / "hops", f"{a.sync_store.rstrip('/')}/hops", keys, skip_same=True)
            say(f"copied {n} files of {len(keys)} hops the run folders name to {a.sync_store}")
