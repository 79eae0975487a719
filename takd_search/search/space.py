"""The Optuna define-by-run space: an Optuna trial -> one flat trial config. No compute.

Path encoding: one yes/no categorical per candidate TA (`ta_plain6`), so TPE models each
TA's effect on its own, and every categorical keeps the same two choices in every trial
(Optuna rejects a categorical whose choices change). When more TAs are switched on than
`max_tas` allows, a deterministic repair keeps the `max_tas` of them that space the path
most evenly in log-parameter count; the same flags always give the same path.

Each hop of a config is {T, alpha, kd_fraction, parent_fraction} (the early stops as
fractions of the hop's epochs; a trial makes them whole epochs with
fractions.HopFractions). Per-hop values (per_hop: true) are keyed by the hop's child
model (`T_plain4`), so "the hop into plain4" keeps one meaning whatever path it appears in.

A space may give TAKD's lambda (`distill.lambda_takd`) instead of alpha: the searcher
then suggests `lambda_takd` and the hop gets alpha = lambda / (C (1 - lambda) + lambda)
(`alpha_from_lambda`), the same loss up to an overall scale (docs/results.md).

A *schedule* (a list of paths) makes a top-up space: trial number i trains
schedule[i], with its parameters named per path (`p0_T`), so the sampler models each
path's values on that path's trials only. It gives compared methods the same number of
tuning trials as the searched paths (methods.py).

The space is an instance of a class in an importable module, not a closure: Ray pickles
it into the searcher's snapshot and `Tuner.restore` must be able to import it again.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

from takd_search.config import ParamSpace, Space
from takd_search.config.schema import HYPER
from takd_search.engine.path import path_models
from takd_search.search.fractions import OLD_NAMES, parent_epoch


class PathSpace:
    """Callable define-by-run space for OptunaSearch (and for optuna.trial.FixedTrial).

    teacher, student: model names. candidates: TA model names, any order. sizes: model
    name -> parameter count (for ordering and the repair). direct_only: the BLKD space
    (teacher -> student, only hyper-parameters searched).
    """

    def __init__(
        self,
        space: Space,
        sizes: dict[str, int],
        *,
        direct_only: bool = False,
        classes: int | None = None,
        schedule: list[str] | None = None,
    ):
        teacher, student, candidates = space.model_names()
        self.teacher, self.student = teacher, student
        self.candidates = [] if direct_only else sorted(candidates, key=lambda c: -sizes[c])
        self.sizes = dict(sizes)
        self.max_tas = space.max_tas
        self.guidance = space.search.guidance
        self.per_hop = space.distill.per_hop
        self.params = {h: getattr(space.distill, h) for h in HYPER}
        self.lam = space.distill.lambda_takd
        if self.lam is not None:
            if classes is None:
                raise ValueError("distill.lambda_takd needs the data set's number of classes")
            self.params["alpha"] = self.lam  # its grid and ranges are lambda's
        self.classes = classes
        self.schedule = list(schedule or [])
        self._slot = {p: i for i, p in enumerate(dict.fromkeys(self.schedule))}
        lr = space.train.lr
        self.lr = lr if lr is not None and ParamSpace(lr).kind != "fixed" else None

    def __setstate__(self, state: dict) -> None:
        """Unpickled (Tune's snapshot of an interrupted phase): a space pickled before the
        fractions were renamed keeps them under the old names."""
        state["params"] = {OLD_NAMES.get(k, k): v for k, v in state.get("params", {}).items()}
        self.__dict__.update(state)

    def path_of(self, flags: dict[str, bool]) -> list[str]:
        """Flags -> the path, largest model first (with the max_tas repair)."""
        chosen = [c for c in self.candidates if flags.get(c)]
        if len(chosen) > self.max_tas:
            chosen = min(
                itertools.combinations(chosen, self.max_tas),
                key=lambda sub: (self._unevenness(sub), sub),
            )
        return [self.teacher, *chosen, self.student]

    def _unevenness(self, tas) -> float:
        """Largest size ratio between neighbours (log scale): smaller is more even."""
        logs = [math.log(self.sizes[m]) for m in (self.teacher, *tas, self.student)]
        return max(a - b for a, b in zip(logs, logs[1:]))

    def __call__(self, trial) -> dict:
        pre = ""
        if self.schedule:  # a top-up space: the trial's number names its path
            one = self.schedule[trial.number % len(self.schedule)]
            path = path_models(one)
            # one path (the heuristic's): the same names as a direct search, so a grid fits
            pre = f"p{self._slot[one]}_" if len(self._slot) > 1 else ""
        else:
            flags = {
                c: bool(trial.suggest_categorical(f"ta_{c}", [False, True]))
                for c in self.candidates
            }
            path = self.path_of(flags)
        guidance = self.guidance
        if guidance == "search":
            guidance = trial.suggest_categorical(f"{pre}guidance", ["chain", "dense"])
        lr = float(ParamSpace(self.lr).suggest(trial, f"{pre}lr")) if self.lr is not None else None
        hops = []
        for child in path[1:]:
            suffix = f"_{child}" if self.per_hop else ""
            hop = {}
            for h in HYPER:
                name = "lambda_takd" if h == "alpha" and self.lam is not None else h
                hop[h] = float(ParamSpace(self.params[h]).suggest(trial, f"{pre}{name}{suffix}"))
            if self.lam is not None:  # the searched value, and the alpha it means here
                hop["lambda_takd"] = hop["alpha"]
                hop["alpha"] = alpha_from_lambda(hop["alpha"], self.classes)
            hops.append(hop)
        out = {"path": ">".join(path), "guidance": guidance, "hops": hops}
        if lr is not None:  # one learning rate for every hop of the trial
            out["lr"] = lr
        return out

    def grid(self) -> dict[str, list]:
        """The search space as an optuna GridSampler wants it (per_hop: false only)."""
        grid = {f"ta_{c}": [False, True] for c in self.candidates if not self.schedule}
        if self.guidance == "search":
            grid["guidance"] = ["chain", "dense"]
        if self.lr is not None and len(ParamSpace(self.lr).values()) > 1:
            grid["lr"] = ParamSpace(self.lr).values()
        for h in HYPER:  # only what `suggest` asks the trial for: choices of 2 or more
            p = ParamSpace(self.params[h])
            if p.kind == "choices" and len(p.values()) > 1:
                grid["lambda_takd" if h == "alpha" and self.lam is not None else h] = p.values()
        return grid

    def n_paths(self) -> int:
        """Distinct paths the space can produce."""
        return len(
            {
                tuple(self.path_of(dict(zip(self.candidates, bits))))
                for bits in itertools.product([False, True], repeat=len(self.candidates))
            }
        )

    def grid_size(self, per_range: int = 5) -> int:
        """Trials an exhaustive grid of this space would need (a continuous range counts
        as `per_range` points; per-hop parameters multiply per hop of each path)."""
        total = 0
        paths = {
            tuple(self.path_of(dict(zip(self.candidates, bits))))
            for bits in itertools.product([False, True], repeat=len(self.candidates))
        }
        per_hop = math.prod(ParamSpace(self.params[h]).grid_size(per_range) for h in HYPER)
        for path in paths:
            hops = len(path) - 1
            total += per_hop ** (hops if self.per_hop else 1)
        return total * (2 if self.guidance == "search" else 1)

    def grid_hops(self, per_range: int = 5) -> dict[str, int]:
        """Distinct hops an exhaustive grid of this space would train, by child model:
        the teacher once, and per distinct path prefix (teacher ... model) one hop per
        distinct setting of the hops up to it (the hop store shares a prefix between
        every path and trial that has it). A continuous range counts as `per_range`
        points; with per_hop false every hop of a trial has the same values."""
        g = math.prod(ParamSpace(self.params[h]).grid_size(per_range) for h in HYPER)
        g *= ParamSpace(self.lr).grid_size(per_range) if self.lr is not None else 1
        g *= 2 if self.guidance == "search" else 1
        paths = {
            tuple(self.path_of(dict(zip(self.candidates, bits))))
            for bits in itertools.product([False, True], repeat=len(self.candidates))
        }
        prefixes = {p[:k] for p in paths for k in range(2, len(p) + 1)}
        out = Counter({self.teacher: 1})
        for p in prefixes:
            out[p[-1]] += g ** (len(p) - 1) if self.per_hop else g
        return dict(out)


def alpha_from_lambda(lam: float, classes: int) -> float:
    """TAKD's lambda -> this tool's alpha for `classes` classes.

    TAKD's loss (1 - l) CE + l T^2 KL_mean uses nn.KLDivLoss() (a mean over the C class
    entries too), i.e. (1 - l) CE + (l / C) T^2 KL_batchmean. Ours is (1 - a) CE +
    a T^2 KL_batchmean; equal up to an overall scale when a / (1 - a) = l / (C (1 - l)):
    a = l / (C (1 - l) + l). (C = 100: l = 0.5 -> 0.0099, 0.9 -> 0.083; l = 1 -> 1.)
    """
    lam = float(lam)
    if lam >= 1.0:
        return 1.0
    return lam / (classes * (1.0 - lam) + lam)


def lambda_from_alpha(alpha: float, classes: int) -> float:
    """The inverse of `alpha_from_lambda`: l = C a / (1 - a + C a)."""
    a = float(alpha)
    return classes * a / (1.0 - a + classes * a)


def reference_lr(space: Space) -> float | None:
    """The learning rate of trials that do not search it (NoKD, the student alone): the
    file's number, its first choice, or the middle of its range (geometric if log)."""
    lr = space.train.lr
    if lr is None:
        return None
    p = ParamSpace(lr)
    if p.kind == "range":
        lo, hi = p.values()
        return math.sqrt(lo * hi) if p.value.log else (lo + hi) / 2
    return p.values()[0]


def snapshot_epochs(space: Space, epochs: int) -> tuple[int, ...]:
    """Epochs whose weights every hop keeps, so any parent_fraction choice is available."""
    fracs = ParamSpace(space.distill.parent_fraction).values()
    return tuple(sorted({e for f in fracs if (e := parent_epoch(f, epochs)) is not None}))
