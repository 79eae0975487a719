"""The rules across fields of a space file: model names, path geometry, value ranges,
budgets and seeds. `check(space)` returns every problem as one line with its dotted
location; config.files raises them together (types alone are config.schema's).

`models` and `teacher` (torch) are imported inside the functions that use them, so that
importing config stays torch-free (`takd-search spaces`, the CLI's --help).
"""

from __future__ import annotations

import math

from takd_search.config.schema import HYPER, Models, ParamSpace, Space, canonical_name


def check(space: Space) -> list[str]:
    """Problems beyond types: model names, path geometry, value ranges, budgets."""
    from takd_search import models  # torch: `takd-search spaces` and --help stay light
    from takd_search.data import dataset_choices, is_dataset_name  # torch: not for --help

    out: list[str] = []
    ds = space.data.dataset
    if not is_dataset_name(ds):
        out.append(f"data.dataset: unknown data set {ds!r}: use {dataset_choices()}")
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
            names[where] = canonical_name(n, m.family)
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
            "kd_fraction",
            0,
            1,
            True,
            "a fraction of the hop's epochs in (0, 1]; a value > 1 "
            "would be beyond the hop's epochs",
        ),
        ("parent_fraction", 0, 1, True, "a fraction of the parent's epochs in (0, 1]"),
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
    if ParamSpace(d.parent_fraction).kind == "range":
        out.append(
            "distill.parent_fraction: give a number or a list of choices, not a range "
            "(each choice is an epoch whose weights the parent keeps)"
        )
    se = space.search
    if se.n_trials is not None and se.n_trials < 1:
        out.append(f"search.n_trials: {se.n_trials} must be at least 1")
    if se.batch < 1:
        out.append(f"search.batch: {se.batch} must be at least 1 (proposals asked together)")
    if se.time_budget_s is not None and se.time_budget_s <= 0:
        out.append(f"search.time_budget_s: {se.time_budget_s} must be > 0 seconds")
    if se.n_trials is None and se.time_budget_s is None and se.sampler != "grid":
        out.append("search: set n_trials or time_budget_s (or both): a search needs a budget")
    if se.sampler == "grid":
        for name in HYPER:
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
    # torch: `takd-search spaces` and --help stay light
    from takd_search.teacher.source import TeacherError, check_arch
    from takd_search.teacher.source import TeacherInput as Contract

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
    from takd_search import models  # torch: `takd-search spaces` and --help stay light

    fams = models.families()
    fam = "plain" if family == "vgg" else family
    return fams[fam][0] if fam in fams else ""


def _size_key(name: str) -> tuple:
    from takd_search import models  # torch: `takd-search spaces` and --help stay light

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
