"""The job's driver on the head node: `python -m takd_search.cluster job [--sync URI] --
run ...` (cluster/__main__.py), started by the entrypoint that `submit` writes.

It runs the `takd-search run` command line it is given; with --sync, between copying the
run folders in from the storage URI and back out, also when stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
from pathlib import Path

from takd_search.cluster.client import say
from takd_search.cluster.storage import download, upload


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
    # run_args is a `takd-search run` command line, and the CLI's main is what parses it and
    # turns user errors into one line and exit 2; cli sits above cluster (it dispatches
    # submit/status/stop here), so it is imported when the job runs, not with this module
    from takd_search.cli import main

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
    if "--store" not in run_args and "--no-store" not in run_args:
        extra += ["--store", str(scratch / "store")]
    resume = run_args.index("--resume") if "--resume" in run_args else None
    if resume is not None and not os.path.isabs(run_args[resume + 1]):
        run_args[resume + 1] = str(local / run_args[resume + 1])
    try:
        return main(run_args + extra)
    finally:
        say(f"copied {upload(local, a.sync)} files from {local} to {a.sync}")
