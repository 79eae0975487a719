"""Search-space files -> a validated, typed `Space` (the only YAML reader).

A file is checked whole before anything starts: every problem is reported at once, one
line each, with its dotted location (`distill.alpha.high: ...`). Unknown keys are errors
(a typo must not silently fall back to a default). YAML's own traps are caught with a
hint: `1e-4` (no dot) is read by PyYAML as a *string*, and `no`/`off` as False.

Hyper-parameters take one of three forms:

    T: 4                              fixed
    T: [2, 4, 8]                      choices (categorical; kept fixed across trials)
    T: {low: 1, high: 20, log: true}  a range (float)
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from takd_search.errors import UserError


def _spaces_dir() -> Path:
    """Where the shipped spaces are: inside the package once installed from a wheel
    (`takd_search/spaces/`, mapped from the repository's `search_spaces/` by
    pyproject.toml), the repository's `search_spaces/` in a source checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "spaces"
    if any(packaged.glob("*.yaml")):
        return packaged
    return here.parent / "search_spaces"


SPACES_DIR = _spaces_dir()
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class SpecError(UserError):
    """A search-space file with problems; the message has one line per problem."""


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
    family: str | None = None
    teacher: Name
    student: Name
    candidates: list[Name] = Field(default_factory=list)
    max_tas: Int | None = None
    teacher_file: str | None = None  # `teacher: teacher`: a TorchScript file or state_dict
    teacher_arch: str | None = None  # for a state_dict: torchvision:NAME, timm:NAME, plain10
    teacher_input: TeacherInput | None = None
    teacher_finetune: TeacherFinetune | None = None


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


class Distill(Strict):
    T: Param = Range(low=1.0, high=20.0, log=True)
    alpha: Param = Range(low=0.05, high=0.95)
    # TAKD's lambda (its code's weight with a mean-reduced KL), searched instead of alpha
    # and converted per data set: alpha = lambda / (C (1 - lambda) + lambda), C classes
    lambda_takd: Param | None = None
    kd_epochs: Param = 1.0
    parent_epoch: Param = 1.0
    per_hop: bool = False


class Search(Strict):
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    n_trials: Int | None = 16
    time_budget_s: Num | None = None
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
    confirm_seeds: list[Int] = Field(default_factory=lambda: [1, 2, 3])
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
        from takd_search.chain import parse_path

        fam = self.models.family
        names = [self.models.teacher, self.models.student, *self.models.candidates]
        canon = [_canonical(n, fam) for n in names]
        del parse_path
        return canon[0], canon[1], canon[2:]

    @property
    def max_tas(self) -> int:
        return self.models.max_tas or len(self.models.candidates)


def _canonical(name, family) -> str:
    from takd_search import models

    text = str(name).strip()
    if text == "teacher":
        return text
    if family and text[:1].isdigit():
        text = f"{family}{text}"
    fam, depth = models.parse_model_name(text)
    return models.model_name(fam, depth)


def find_space(name_or_path: str) -> Path:
    """`--space NAME` -> search_spaces/NAME.yaml (also ./search_spaces); a path as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in name_or_path:
        if not p.exists():
            raise SpecError(
                f"space file {name_or_path} does not exist: check the path, or "
                f"use a shipped name ({', '.join(shipped_spaces())})"
            )
        return p
    for root in (Path.cwd() / "search_spaces", SPACES_DIR):
        cand = root / f"{name_or_path}.yaml"
        if cand.exists():
            return cand
    raise SpecError(
        f"no search space named {name_or_path!r}: use one of "
        f"{', '.join(shipped_spaces())} or a path to a .yaml file"
    )


def shipped_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def describe_spaces() -> list[dict]:
    """The shipped spaces: [{'name', 'description', 'dataset', 'file'}], by name. The
    description is the file's `description:` key (one line); YAML is read, not validated,
    so one broken file cannot hide the others."""
    out = []
    for name in shipped_spaces():
        path = SPACES_DIR / f"{name}.yaml"
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        out.append(
            {
                "name": name,
                "description": str(raw.get("description") or "").strip(),
                "dataset": data.get("dataset"),
                "file": str(path),
            }
        )
    return out


def _set_dotted(d: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for k in parents:
        d = d.setdefault(k, {}) if isinstance(d.get(k, {}), dict) else d
    d[leaf] = value


def _loc(loc: tuple) -> str:
    parts = []
    for x in loc:
        if isinstance(x, int):
            parts[-1:] = [f"{parts[-1]}[{x}]"] if parts else [f"[{x}]"]
        elif x in (
            "float",
            "int",
            "str",
            "list[float]",
            "Range",
            "bool",
            "list[Annotated]",
            "function-before[_no_bool(), function-before[_no_numeric_string(), float]]",
        ):
            continue
        elif str(x).startswith(("function-", "list[", "constrained")):
            continue
        else:
            parts.append(str(x))
    return ".".join(parts)


def _pydantic_problems(err: ValidationError) -> list[str]:
    seen, out = set(), []
    for e in err.errors():
        loc = _loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key: remove it or check its spelling against docs/spaces.md"
        elif e["type"] == "missing":
            msg = "missing: this key is required"
        if loc in seen:  # a union reports each alternative; the first says enough
            continue
        seen.add(loc)
        out.append(f"{loc}: {msg}")
    return out


def flag_overrides(args) -> dict:
    """The budget flags of `run` and `submit` as dotted overrides of the space file."""
    flags = {
        "search.n_trials": "trials",
        "search.time_budget_s": "time_budget",
        "train.epochs": "epochs",
        "data.dataset": "dataset",
        "data.data_dir": "data_dir",
        "resources.gpu": "gpus_per_trial",
        "resources.cpu": "cpus_per_trial",
        "baselines.confirm_seeds": "seeds",
    }
    return {key: getattr(args, flag, None) for key, flag in flags.items()}


def load_space(name_or_path: str, overrides: dict | None = None) -> tuple[Space, Path, str]:
    """Read, override (dotted keys, e.g. {'search.n_trials': 4}) and validate a space.

    Returns (space, file path, the file's text). Raises SpecError with every problem.
    """
    path = find_space(name_or_path)
    text = path.read_text()
    where = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(
            f"{where}: YAML syntax error{at}: {problem}: fix the file's indentation/quoting"
        ) from None
    if raw is None:
        raise SpecError(
            f"{where}: the file is empty: copy a shipped space "
            "(search_spaces/digits_vgg.yaml) and edit it"
        )
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where}: expected a mapping of sections (data, models, train, ...), "
            f"got a {type(raw).__name__}"
        )
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value)
    try:
        space = Space.model_validate(raw)
    except ValidationError as e:
        problems = _pydantic_problems(e)
    else:
        problems = check(space)
    if problems:
        raise SpecError("\n".join(f"{where}: {p}" for p in problems))
    if space.name is None:
        space = space.model_copy(update={"name": path.stem})
    return space, path, text


def check(space: Space) -> list[str]:
    """Problems beyond types: model names, path geometry, value ranges, budgets."""
    from takd_search import models

    out: list[str] = []
    ds = space.data.dataset
    if not (
        ds in ("digits", "mnist1d", "cifar10", "cifar100")
        or ds.startswith(("npz:", "folder:", "mnist1d:"))
    ):
        out.append(
            f"data.dataset: unknown data set {ds!r}: use digits, mnist1d, mnist1d:N, cifar10, "
            "cifar100, npz:PATH or folder:PATH"
        )
    if not 0 < space.data.val_fraction <= 0.5:
        out.append(f"data.val_fraction: {space.data.val_fraction} must be in (0, 0.5]")
    m = space.models
    if m.family is not None:
        try:
            models.parse_model_name(f"{m.family}{_first_depth(m.family)}")
        except models.ModelError:
            out.append(
                f"models.family: unknown family {m.family!r}: use "
                f"{', '.join(models.families())} (or vgg for plain)"
            )
            return out
    names = {}
    for where, n in [
        ("teacher", m.teacher),
        ("student", m.student),
        *[(f"candidates[{i}]", c) for i, c in enumerate(m.candidates)],
    ]:
        if where == "teacher" and str(n).strip().lower() == "teacher":
            if not m.teacher_file:
                out.append(
                    "models.teacher: 'teacher' needs models.teacher_file (a TorchScript .pt "
                    "file, or a state_dict with models.teacher_arch)"
                )
            names[where] = "teacher"
            continue
        if str(n).strip().lower() == "teacher":
            out.append(
                f"models.{where}: 'teacher' (your own teacher file) can only be models.teacher"
            )
            continue
        try:
            names[where] = _canonical(n, m.family)
        except models.ModelError as e:
            out.append(f"models.{where}: {e}")
    cands = [names[k] for k in names if k.startswith("candidates")]
    if len(set(cands)) != len(cands):
        dup = sorted({c for c in cands if cands.count(c) > 1})
        out.append(f"models.candidates: {', '.join(dup)} listed twice: list each TA once")
    t, s = names.get("teacher"), names.get("student")
    if t and s:
        for i in range(len(m.candidates)):
            name = names.get(f"candidates[{i}]")
            if name and not _between(name, s, t):
                out.append(
                    f"models.candidates[{i}]: {name} is not strictly between the student "
                    f"{s} and the teacher {t}: remove it or change teacher/student"
                )
        if t != "teacher" and not _between(s, s, t, strict_low=False):
            out.append(f"models.student: {s} is not smaller than the teacher {t}")
    out += _teacher_problems(m)
    if m.max_tas is not None and not 1 <= m.max_tas <= max(1, len(m.candidates)):
        out.append(
            f"models.max_tas: {m.max_tas} must be between 1 and the number of "
            f"candidates ({len(m.candidates)})"
        )
    tr = space.train
    for key in ("epochs", "batch_size"):
        v = getattr(tr, key)
        if v is not None and v < 1:
            out.append(f"train.{key}: {v} must be at least 1")
    if tr.lr is not None:
        for v in ParamSpace(tr.lr).values():
            if not v > 0:
                out.append(f"train.lr: {v} must be > 0")
                break
    if tr.weight_decay is not None and tr.weight_decay < 0:
        out.append(f"train.weight_decay: {tr.weight_decay} must be >= 0")
    if tr.warmup_epochs is not None and tr.warmup_epochs < 0:
        out.append(f"train.warmup_epochs: {tr.warmup_epochs} must be >= 0 (epochs of lr warm-up)")
    d = space.distill
    for name, lo, hi, lo_open, what in [
        ("T", 0, math.inf, True, "a temperature must be > 0"),
        ("alpha", 0, 1, False, "alpha weights the soft loss and must be within [0, 1]"),
        (
            "kd_epochs",
            0,
            1,
            True,
            "a fraction of the hop's epochs in (0, 1]; a value > 1 "
            "would be beyond the hop's epochs",
        ),
        ("parent_epoch", 0, 1, True, "a fraction of the parent's epochs in (0, 1]"),
    ]:
        p = ParamSpace(getattr(d, name))
        for v in p.values():
            if (v <= lo if lo_open else v < lo) or v > hi:
                out.append(f"distill.{name}: {v} is out of range: {what}")
                break
        if p.kind == "range" and p.value.low > p.value.high:
            out.append(f"distill.{name}: low {p.value.low} is above high {p.value.high}")
        if p.kind == "range" and p.value.log and p.value.low <= 0:
            out.append(f"distill.{name}: a log range needs low > 0")
        if p.kind == "choices" and len(set(p.values())) != len(p.values()):
            out.append(f"distill.{name}: choices repeat a value: list each once")
        if p.kind == "choices" and not p.values():
            out.append(f"distill.{name}: no choices given")
    if d.lambda_takd is not None:
        if "alpha" in d.model_fields_set:
            out.append(
                "distill.lambda_takd: give alpha or lambda_takd, not both (lambda_takd is "
                "converted to alpha per data set)"
            )
        p = ParamSpace(d.lambda_takd)
        if any(not 0 <= v <= 1 for v in p.values()):
            out.append("distill.lambda_takd: TAKD's lambda must be within [0, 1]")
        elif p.kind == "range" and p.value.low > p.value.high:
            out.append(f"distill.lambda_takd: low {p.value.low} is above high {p.value.high}")
    if ParamSpace(d.parent_epoch).kind == "range":
        out.append(
            "distill.parent_epoch: give a number or a list of choices, not a range "
            "(each choice is an epoch whose weights the parent keeps)"
        )
    se = space.search
    if se.n_trials is not None and se.n_trials < 1:
        out.append(f"search.n_trials: {se.n_trials} must be at least 1")
    if se.time_budget_s is not None and se.time_budget_s <= 0:
        out.append(f"search.time_budget_s: {se.time_budget_s} must be > 0 seconds")
    if se.n_trials is None and se.time_budget_s is None and se.sampler != "grid":
        out.append("search: set n_trials or time_budget_s (or both): a search needs a budget")
    if se.sampler == "grid":
        for name in ("T", "alpha", "kd_epochs", "parent_epoch"):
            if ParamSpace(getattr(d, name)).kind == "range":
                out.append(
                    f"distill.{name}: the grid sampler needs a number or a list of "
                    "choices, not a range"
                )
        if d.per_hop:
            out.append("distill.per_hop: the grid sampler needs per_hop: false")
    if se.grace_epochs is not None and se.grace_epochs < 1:
        out.append(f"search.grace_epochs: {se.grace_epochs} must be at least 1")
    if se.max_failures < 0:
        out.append(f"search.max_failures: {se.max_failures} must be >= 0")
    r = space.resources
    if not r.cpu > 0:
        out.append(f"resources.cpu: {r.cpu} must be > 0 (CPU cores per trial)")
    if not 0 <= r.gpu <= 1:
        out.append(
            f"resources.gpu: {r.gpu} is a fraction of one GPU per trial and must be "
            "within [0, 1]; several trials share a GPU with 0.25 or 0.5"
        )
    if r.concurrency is not None and r.concurrency < 1:
        out.append(f"resources.concurrency: {r.concurrency} must be at least 1")
    b = space.baselines
    if b.confirm_top_k < 0:
        out.append(f"baselines.confirm_top_k: {b.confirm_top_k} must be >= 0")
    if not b.confirm_seeds:
        out.append("baselines.confirm_seeds: give at least one seed")
    for key in ("confirm_seeds", "select_seeds"):
        seeds = getattr(b, key) or []
        dup = sorted({x for x in seeds if seeds.count(x) > 1})
        if dup:
            out.append(f"baselines.{key}: seed {dup[0]} is listed twice: list each seed once")
        if se.seed in seeds:
            out.append(
                f"baselines.{key}: {se.seed} is the search's seed (search.seed): use fresh "
                "seeds, or the search's own runs would be counted again"
            )
    both = sorted(set(b.confirm_seeds) & set(b.select_seeds or []))
    if both:
        out.append(
            f"baselines.select_seeds: {both[0]} is also a confirm seed: the seeds that pick "
            "the winner must differ from the seeds whose test accuracy is reported"
        )
    if b.blkd_trials is not None and b.blkd_trials < 1:
        out.append(f"baselines.blkd_trials: {b.blkd_trials} must be at least 1")
    return out


def _teacher_problems(m: Models) -> list[str]:
    """The teacher_* keys: only with `teacher: teacher`, and well formed."""
    from takd_search.teacher import TeacherError, check_arch
    from takd_search.teacher import TeacherInput as Contract

    out = []
    own = str(m.teacher).strip().lower() == "teacher"
    for key in ("teacher_file", "teacher_arch", "teacher_input", "teacher_finetune"):
        if getattr(m, key) is not None and not own:
            out.append(
                f"models.{key}: applies to a teacher you bring: set models.teacher: teacher "
                f"(or remove {key})"
            )
            return out
    if m.teacher_arch is not None:
        try:
            check_arch(m.teacher_arch)
        except TeacherError as e:
            out.append(f"models.teacher_arch: {e}")
    if m.teacher_input is not None:
        tin = m.teacher_input
        for p in Contract(
            tuple(tin.mean) if tin.mean is not None else None,
            tuple(tin.std) if tin.std is not None else None,
            tin.size,
        ).problems():
            out.append(f"models.teacher_input: {p}")
    ft = m.teacher_finetune
    if ft is not None and ft.epochs < 1:
        out.append(f"models.teacher_finetune.epochs: {ft.epochs} must be at least 1")
    if ft is not None and ft.lr is not None and not ft.lr > 0:
        out.append(f"models.teacher_finetune.lr: {ft.lr} must be > 0")
    return out


def _first_depth(family: str):
    from takd_search import models

    fams = models.families()
    fam = "plain" if family == "vgg" else family
    return fams[fam][0] if fam in fams else ""


def _size_key(name: str) -> tuple:
    from takd_search import models

    fam, depth = models.parse_model_name(name)
    if fam in ("plain", "resnet"):
        return (fam, int(depth))
    return (fam, models.model_size(name, 10, (3, 32, 32)))


def _between(x: str, low: str, high: str, strict_low: bool = True) -> bool:
    """Is model x strictly smaller than `high` and (strictly) larger than `low`?
    Same family: by depth (mlp: parameter count); across families: not compared
    (chain.check_shrinking applies the same rule)."""

    def smaller(a, b) -> bool:
        ka, kb = _size_key(a), _size_key(b)
        if ka[0] == kb[0]:
            return ka[1] < kb[1]
        return True  # families do not compare (a CNN teacher may teach a bigger MLP)

    if high != "teacher" and not smaller(x, high):
        return False
    return smaller(low, x) if strict_low else not smaller(x, low)
