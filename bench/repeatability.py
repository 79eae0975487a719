"""What moves a hop's numbers: the same hop (MNIST-1D, plain8 from scratch, 2 epochs, seed
0) trained in a fresh process, reporting its validation accuracy and a hash of its weights.

    python bench/repeatability.py --threads 1      # twice: the same bits
    python bench/repeatability.py --threads 2      # other bits: the thread count matters
    ATEN_CPU_CAPABILITY=default python bench/repeatability.py --threads 1
                                                   # other bits: so does the CPU's kernel path

Results and their reading: docs/benchmarks.md, "Same command, same answer".
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile

import torch

from takd_search.data import load_dataset
from takd_search.engine.augment import DeviceData
from takd_search.engine.chain import Context, run_chain
from takd_search.engine.hop import TrainConfig
from takd_search.engine.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = DeviceData(load_dataset("mnist1d"), "cpu", 0.2, 0)
    ctx = Context(data, TrainConfig(epochs=2, batch_size=128, lr=0.05), Store(tempfile.mkdtemp()))
    result = run_chain(ctx, ["plain8"], [], seed=0)[-1].result
    weights = b"".join(v.numpy().tobytes() for v in result.state.values())
    print(
        f"{args.threads} thread(s), {torch.backends.cpu.get_cpu_capability()}: "
        f"val {result.val_acc:.4f}, weights {hashlib.sha256(weights).hexdigest()[:16]}"
    )


if __name__ == "__main__":
    main()
