"""A run's settings as one typed value, from the plan to every trial. No Ray, no torch.

`RunSettings` is what each trial needs beyond its own config (the data set and split, the
device, the store, the fixed recipe of every hop, the threads a trial trains with). It is
built once by the driver (session.py), shipped whole to workers (Ray pickles it) and
saved in versions.json (`as_dict`). Whether a trial may look at the test set is not a run
setting but the trial config's explicit `sees_test` (trial.sees_test_set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from takd_search.engine.hop import TrainConfig


@dataclass(frozen=True)
class RunSettings:
    dataset: str
    data_dir: str | None
    device: str | None
    val_fraction: float
    split_seed: int
    augment: str | None
    image_size: int | None
    store: str | None  # the hop store's folder; None: --no-store
    train: TrainConfig  # the recipe of every hop (a searched lr overrides its lr per trial)
    snapshots: tuple[int, ...]  # epochs whose weights every hop keeps (parent_fraction < 1)
    seed: int  # the search's seed: every trial's unless its config names one
    # torch threads per trial: from the space (resources.cpu), never from the machine, since
    # the thread count changes the floats and so the answer
    cpus: float
    teacher: dict | None = None  # a brought teacher's description (its bytes travel apart)
    attempts_dir: str | None = None  # where trial starts are counted (retries)
    driver: str | None = None  # this driver's id: a trial it restarts is a retry

    @classmethod
    def of(cls, x) -> RunSettings:
        """`x` itself, or a RunSettings from its dict form (as_dict, versions.json)."""
        if isinstance(x, cls):
            return x
        d = {f.name: x.get(f.name) for f in fields(cls)}  # a key not given: None
        train = d["train"]
        d["train"] = train if isinstance(train, TrainConfig) else TrainConfig(**train)
        d["snapshots"] = tuple(d.get("snapshots") or ())
        d["cpus"] = d["cpus"] or 1
        return cls(**d)

    def as_dict(self) -> dict:
        return asdict(self)
