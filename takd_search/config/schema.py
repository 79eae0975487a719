"""The space file's schema: one pydantic model per section, all strict and frozen.

Unknown keys are errors (a typo must not silently fall back to a default). YAML's own
traps are caught with a hint: `1e-4` (no dot) is read by PyYAML as a *string*, and
`no`/`off` as False. Hyper-parameters take one of three forms (`ParamSpace`):

    T: 4                              fixed
    T: [2, 4, 8]                      choices (categorical; kept fixed across trials)
    T: {low: 1, high: 20, log: true}  a range (float)

Types only: the rules across fields are config.checks, reading a file config.files.
Every key is documented in docs/spaces.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from takd_search.search.fractions import OLD_NAMES, upgrade_distill

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _no_numeric_string(v: Any) -> Any:
    if isinstance(v, str) and _NUMBER.match(v.strip()):
        raise ValueError(
            f"{v!r} is text, not a number (YAML reads exponents without a dot as text): "
            f"write it with a dot, e.g. {v.strip().replace('e', '.0e', 1)}"
        )
    return v


def _no_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError(
            f"{v!r} is a yes/no value, not a number (YAML reads no/off/yes/on "
            "as booleans): write a number"
        )
    return v


Num = Annotated[float, BeforeValidator(_no_numeric_string), BeforeValidator(_no_bool)]
Int = Annotated[int, BeforeValidator(_no_numeric_string), BeforeValidator(_no_bool)]
Name = Annotated[str | int, BeforeValidator(_no_bool)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Strict):
    low: Num
    high: Num
    log: bool = False


Param = Num | list[Num] | Range


class ParamSpace:
    """One hyper-parameter's search space in one of the three forms."""

    def __init__(self, value: Param):
        self.value = value

    @property
    def kind(self) -> str:
        if isinstance(self.value, Range):
            return "range"
        return "choices" if isinstance(self.value, list) else "fixed"

    def values(self) -> list[float]:
        """Every value it can take (fixed, choices) or its bounds (range)."""
        v = self.value
        return [v.low, v.high] if isinstance(v, Range) else list(v) if isinstance(v, list) else [v]

    def suggest(self, trial, name: str) -> float:
        v = self.value
        if isinstance(v, Range):
            return trial.suggest_float(name, v.low, v.high, log=v.log)
        if isinstance(v, list):
            return trial.suggest_categorical(name, list(v)) if len(v) > 1 else v[0]
        return v

    def grid_size(self, per_range: int = 5) -> int:
        """Values an exhaustive grid would try (a range counts as `per_range` points)."""
        return per_range if self.kind == "range" else len(self.values())


class Data(Strict):
    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: Num = 0.1
    split_seed: Int = 0
    augment: Literal["none", "flip", "crop_flip", "resized_crop_flip"] | None = None
    image_size: Int | None = None


class TeacherInput(Strict):
    """What a brought teacher expects (docs/own_teacher.md): mean/std per channel in
    [0, 1] pixel units, size in pixels; unset: the run's own normalised input."""

    mean: list[Num] | None = None
    std: list[Num] | None = None
    size: Int | None = None


class TeacherFinetune(Strict):
    epochs: Int
    lr: Num | None = None


class Models(Strict):
    # modules registering families of your own (`mypkg.models` or `mypkg.models:setup`),
    # imported when the space is read, so that their names below are known
    families: list[str] = Field(default_factory=list)
    family: str | None = None
    teacher: Name
    student: Name
    candidates: list[Name] = Field(default_factory=list)
    max_tas: Int | None = None
    teacher_file: str | None = None  # `teacher: teacher`: a TorchScript file or state_dict
    teacher_arch: str | None = None  # for a state_dict: torchvision:NAME, timm:NAME, plain10
    teacher_input: TeacherInput | None = None
    teacher_finetune: TeacherFinetune | None = None

    @field_validator("families")
    @classmethod
    def _load_families(cls, specs: list[str]) -> list[str]:
        if specs:
            from takd_search import models  # torch: only for a space that names families
            from takd_search.plugins import FamilyImportError

            try:
                models.load_families(specs, where="models.families")
            except FamilyImportError as e:
                raise ValueError(str(e).removeprefix("models.families: ")) from None
        return specs


class Train(Strict):
    """Every hop's recipe. Unset keys take the recipe's value: `recipe: default` (None)
    is the data set's (`takd-search datasets` prints it), `recipe: takd` is TAKD's
    published code's settings (constant lr, decay on every parameter; docs/engine.md).
    warmup_epochs: epochs of linear lr warm-up (default 1; 0 turns it off)."""

    recipe: Literal["default", "takd"] | None = None
    epochs: Int | None = None
    batch_size: Int | None = None
    optimizer: Literal["sgd"] = "sgd"
    lr: Param | None = None  # a number, or choices/range to search it per trial
    momentum: Num | None = None
    nesterov: bool | None = None
    weight_decay: Num | None = None
    weight_decay_all: bool | None = None  # decay BatchNorm/bias too (TAKD's code)
    schedule: Literal["cosine", "step", "constant"] | None = None
    warmup_epochs: Int | None = None


# the per-hop hyper-parameters a space searches (Distill's keys): the one list the
# searcher, the checks, the CSV columns and the importances use. The two fractions are
# shares of a hop's epochs (search/fractions.py turns them into the engine's epochs).
HYPER = ("T", "alpha", "kd_fraction", "parent_fraction")


class Distill(Strict):
    T: Param = Range(low=1.0, high=20.0, log=True)
    alpha: Param = Range(low=0.05, high=0.95)
    # TAKD's lambda (its code's weight with a mean-reduced KL), searched instead of alpha
    # and converted per data set: alpha = lambda / (C (1 - lambda) + lambda), C classes
    lambda_takd: Param | None = None
    kd_fraction: Param = 1.0  # student early stop: share of the hop's epochs with KD
    parent_fraction: Param = 1.0  # teacher early stop: the parent at this share of its epochs
    per_hop: bool = False

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """kd_epochs / parent_epoch, the fractions' names until 2026-12-03, still read
        (space files and the space.json of older run folders), with the same meaning."""
        if not isinstance(data, dict):
            return data
        for old, new in OLD_NAMES.items():
            if old in data and new in data:
                raise ValueError(f"{old} is the old name of {new}: give {new} only")
        return upgrade_distill(data)


class Search(Strict):
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    n_trials: Int | None = 16
    time_budget_s: Num | None = None
    # proposals asked together (TPE sees every earlier batch, none of its own): fixed by
    # the space, never by the machine, so concurrency and load never change the answer;
    # trials at once are at most this many
    batch: Int = 4
    # experiment trackers every trial is logged to (trackers.py); `--tracker` adds more
    trackers: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(default_factory=list)
    seed: Int = 0
    scheduler: Literal["none", "asha"] = "none"
    grace_epochs: Int | None = None
    guidance: Literal["chain", "dense", "search"] = "chain"
    max_failures: Int = 1


class Resources(Strict):
    cpu: Num = 1.0
    gpu: Num = 0.0
    concurrency: Int | None = None


class Baselines(Strict):
    confirm_top_k: Int = 3
    # report seeds: 5, so a paired interval can separate a 1-point difference on
    # MNIST-sized test sets (bench/calibrate.py)
    confirm_seeds: list[Int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    # seeds that choose the winner (mean validation accuracy); disjoint from confirm_seeds,
    # whose test accuracy is reported. None: two fresh seeds (baselines.default_select_seeds);
    # []: the winner is the best confirmed candidate on the search's own validation ranking
    select_seeds: list[Int] | None = None
    # False: confirmation distils every seed from the search's teacher (trained once; the
    # spread is the distillation's). True: the teacher is retrained per seed as well.
    reseed_teacher: bool = False
    blkd_trials: Int | None = None


class Space(Strict):
    name: str | None = None
    description: str | None = None
    data: Data = Data()
    models: Models
    train: Train = Train()
    distill: Distill = Distill()
    search: Search = Search()
    resources: Resources = Resources()
    baselines: Baselines = Baselines()

    # ---- derived views ---------------------------------------------------------------
    def param(self, name: str) -> ParamSpace:
        return ParamSpace(getattr(self.distill, name))

    def model_names(self) -> tuple[str, str, list[str]]:
        """(teacher, student, candidates) as canonical model names."""
        fam = self.models.family
        names = [self.models.teacher, self.models.student, *self.models.candidates]
        canon = [canonical_name(n, fam) for n in names]
        return canon[0], canon[1], canon[2:]

    @property
    def max_tas(self) -> int:
        return self.models.max_tas or len(self.models.candidates)


def canonical_name(name, family) -> str:
    """A models: entry (`10` with a family, `plain10`, `vgg10`, `teacher`) as its
    canonical model name; a models.ModelError if it names no model."""
    from takd_search import models  # torch: loaded when a space is checked, not on import

    text = str(name).strip()
    if text == "teacher":
        return text
    if family and text[:1].isdigit():
        text = f"{family}{text}"
    fam, depth = models.parse_model_name(text)
    return models.model_name(fam, depth)
