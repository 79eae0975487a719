"""What every benchmark prints about where it ran: the machine and its load.

The machines these run on are shared, so each result file line carries the load average
at its start and end; a ratio measured under a high load is still a ratio, but its
absolute rates are not comparable across runs.
"""

from __future__ import annotations

import os
import platform

import torch


def machine() -> str:
    """One line: cores, CPU model, GPU (when CUDA is up), torch, threads, python."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"nproc {os.cpu_count()}, CPU {cpu}{gpu}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, python {platform.python_version()}"
    )


def load() -> str:
    """The 1, 5 and 15 minute load averages, or '?' where /proc is not there."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"
