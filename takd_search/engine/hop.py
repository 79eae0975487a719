"""The value types of one hop: how it trains (`TrainConfig`) and distils (`HopParams`),
what it yields (`HopResult`) and its full lineage (`HopSpec`: its digest is the store's key).

Plain dataclasses, no torch computation: the store, the chain, the trainable and the
report all speak in these, so they live apart from the training loop.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    """How one hop trains. Every field is part of the hop's lineage (its store key).

    epochs: passes over the training split. batch_size: images per step. lr: peak
    learning rate of SGD. schedule: 'cosine' (to 0 over the steps after warm-up), 'step'
    (x0.1 at 50% and 75% of epochs) or 'constant' (TAKD's code for plain CNNs).
    warmup_epochs: linear ramp of the lr from lr/steps to lr over this many epochs (one by
    default: peak lr from step 0 leaves some seeds of plain4 at chance on 28x28 digits,
    docs/engine.md). weight_decay_all: decay BatchNorm and bias parameters too (TAKD's
    code); by default only weights of rank >= 2 decay. augment: view schedule name, or
    None for the data set's default.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    schedule: str = "cosine"
    warmup_epochs: int = 1
    weight_decay_all: bool = False
    augment: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HopParams:
    """Distillation settings of one hop (ignored for the first model of a path).

    T: softmax temperature (> 0). alpha: weight of the soft term in [0, 1].
    kd_epochs: student early stop, in epochs (None: distil during all epochs).
    parent_epoch: teacher early stop: distil from the parent's weights at the end of this
    epoch (None: the parent's selected, best-validation weights).
    """

    T: float = 4.0
    alpha: float = 0.5
    kd_epochs: int | None = None
    parent_epoch: int | None = None


@dataclass
class HopResult:
    """What a trained hop yields. Accuracies are fractions in [0, 1]; seconds are wall time.

    `state` holds the weights of the selected epoch (best validation accuracy, earliest on
    ties); `snapshots` maps a 1-based epoch to the weights at the end of that epoch.
    `test_acc` is evaluated once, on the selected weights, for reporting only, and only
    for hops whose test number is reported (None otherwise: `chain.train_one` measures it
    from the stored weights when a later run reports it).
    """

    val_acc: float
    val_acc_last: float
    best_epoch: int
    test_acc: float | None
    epochs: int
    params: int
    seconds: float
    curve: list[dict] = field(default_factory=list)
    state: dict = field(default_factory=dict, repr=False)
    snapshots: dict[int, dict] = field(default_factory=dict, repr=False)
    device: str = "cpu"

    def metrics(self) -> dict:
        """The JSON-serialisable part (everything except weights)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("state", "snapshots")}


SCHEMA = 1  # bump when the entry layout changes; it is part of every key


# The training computation's version, part of every key: bump it whenever a change to the
# engine (distill, augment, the models' init, normalisation) changes what a hop computes,
# so no entry trained by older code is ever served as this code's result. The golden
# fingerprint test (tests/test_store.py) fails when that happens without a bump.
# 1: up to the fused SGD step. 2: fused SGD, one epoch of linear warm-up by default,
# normalisation statistics from the training part of the split, weight_decay_all.
RECIPE_VERSION = 2


@dataclass(frozen=True)
class HopSpec:
    """A hop's full lineage. Equal specs train bit-identical networks (on one device).

    data: the data set's content fingerprint (not its name). val_fraction / split_seed:
    the validation split. model: canonical model name ('plain10'). parents: the parent
    hops' keys (several for dense guidance). T, alpha, kd_epochs, parent_epoch: the
    distillation settings (None for a hop trained from scratch; parent_epoch None = the
    parents' selected weights). teacher: content hash of a user's teacher file, if the
    hop *is* that teacher. precision: the arithmetic the hop trains in ('fp32' on a CPU,
    'bf16' autocast on CUDA; `distill.precision`): the same lineage in two precisions is
    two networks. fork: snapshot epochs this entry was trained again to keep, because the
    entry under the same lineage without `fork` lacked them (entries are never replaced:
    re-training is bit-identical only on one device and torch build, so the fork is
    another network and gets its own key; see `Store.get_or_train`).
    """

    data: str
    val_fraction: float
    split_seed: int
    model: str
    train: TrainConfig
    seed: int
    parents: tuple[str, ...] = ()
    T: float | None = None
    alpha: float | None = None
    kd_epochs: int | None = None
    parent_epoch: int | None = None
    teacher: str | None = None
    precision: str = "fp32"
    fork: tuple[int, ...] = ()

    def canonical(self) -> HopSpec:
        """The same hop written one way: settings that cannot matter are dropped, so
        KD with alpha 0 (or 0 KD epochs) is the from-scratch hop, and T is only kept
        when soft targets are used."""
        kd_epochs = self.kd_epochs
        if kd_epochs is not None and kd_epochs >= self.train.epochs:
            kd_epochs = None
        no_kd = not self.parents or self.alpha in (None, 0) or kd_epochs == 0
        if no_kd:
            return HopSpec(
                self.data,
                self.val_fraction,
                self.split_seed,
                self.model,
                self.train,
                self.seed,
                teacher=self.teacher,
                precision=self.precision,
                fork=tuple(sorted(self.fork)),
            )
        return HopSpec(
            self.data,
            self.val_fraction,
            self.split_seed,
            self.model,
            self.train,
            self.seed,
            tuple(self.parents),
            float(self.T),
            float(self.alpha),
            kd_epochs,
            self.parent_epoch,
            self.teacher,
            self.precision,
            tuple(sorted(self.fork)),
        )

    @property
    def from_scratch(self) -> bool:
        return not self.canonical().parents

    def lineage(self) -> dict:
        d = asdict(self.canonical())
        d["parents"] = list(d["parents"])
        d["schema"] = SCHEMA
        d["recipe_version"] = RECIPE_VERSION
        if not d["fork"]:  # the common case keeps the shorter lineage
            del d["fork"]
        else:
            d["fork"] = list(d["fork"])
        return d

    @property
    def key(self) -> str:
        blob = json.dumps(self.lineage(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:32]
