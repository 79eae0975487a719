"""What `takd-search run` checks before anything is written: the plan of a run.

Everything that can be wrong with the input (the space file, a resumed run's flags, the
data, the models, a brought teacher) is found by `make_plan`, which needs neither Ray nor
the disk; `check_machine` then checks this machine (the device, the CPUs and GPUs a trial
asks for or the cluster's address, a writable results folder and store). Only after both
does the run folder get written (run.py), so a refused run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from takd_search import models
from takd_search.config import Space, load_space
from takd_search.data import load_dataset
from takd_search.engine.distill import trial_device
from takd_search.engine.path import check_shrinking
from takd_search.engine.store import Store
from takd_search.errors import UserError
from takd_search.run_path import recipe
from takd_search.search import disk_plan
from takd_search.search import resume as saved_run
from takd_search.search.run_dir import check_writable
from takd_search.search.space import reference_lr
from takd_search.teacher.build import check_teacher
from takd_search.teacher.source import teacher_from_space


@dataclass
class RunPlan:
    """A run as checked, before anything is written (`make_plan`, then `check_machine`)."""

    space: Space
    space_json: dict  # the effective space, as space.json holds it
    text: str | None  # the space file's text (None on a resume: its space.json is kept)
    space_file: str | None
    overrides: dict
    prev: dict | None  # a resumed run's saved settings (resume.saved), or None
    resume: Path | None  # the resumed run folder, or None
    results_dir: Path
    device: str | None
    ds: object  # takd_search.data.Dataset, split already
    teacher: str
    student: str
    candidates: list[str]
    own: object  # a brought teacher (takd_search.teacher.TeacherSource), or None
    sizes: dict[str, int]
    train: object  # engine.hop.TrainConfig: the fixed recipe of every hop
    store: str | None = None  # the hop store's folder, known after check_machine


def make_plan(
    space_ref: str | None,
    *,
    overrides: dict | None,
    results_dir,
    store_root,
    no_store: bool,
    resume,
    device: str | None,
) -> RunPlan:
    """The space (or a resumed run's saved one), its data and models, checked: UserError
    in one line on bad input. Starts no Ray and writes nothing."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    prev = None
    if resume:
        resume = saved_run.resume_dir(resume)
        prev = saved_run.saved(resume)
        saved_run.check_flags(
            resume,
            prev,
            space_ref=space_ref,
            overrides=overrides,
            results_dir=results_dir,
            store_root=store_root,
            no_store=no_store,
            device=device,
        )
        space = Space.model_validate(prev["space"])
        text, space_file = None, prev.get("space_file")
        results_dir, device = prev["results"], prev.get("device")
    else:
        space_ref = space_ref or "digits_vgg"
        space, space_path, text = load_space(space_ref, overrides)
        space_file = str(space_path.resolve())

    ds = load_dataset(space.data.dataset, space.data.data_dir, image_size=space.data.image_size)
    # the split now: a data set too small to split fails here, before Ray starts, and the
    # workers get the split with the data
    ds.split(space.data.val_fraction, space.data.split_seed)
    if ds.is_signal and space.data.augment not in (None, "none"):
        raise UserError(
            f"data.augment: {space.data.augment!r} is for images, but {ds.name} holds 1-D "
            "signals: set data.augment to none (or leave it unset)"
        )
    teacher, student, candidates = space.model_names()
    shape, classes = ds.input_shape, ds.num_classes

    own = teacher_from_space(space)  # a brought teacher (`teacher: teacher`), or None
    sizes = {
        m: check_teacher(own, ds) if m == "teacher" else models.model_size(m, classes, shape)
        for m in (teacher, *candidates, student)
    }
    for ta in candidates:
        check_shrinking([teacher, ta, student], classes, shape)
    check_shrinking([teacher, student], classes, shape)
    fixed = {k: v for k, v in space.train.model_dump().items() if v is not None}
    fixed["lr"] = reference_lr(space)  # searched per trial when given as choices/range
    train = recipe(space.data.dataset, family=space.models.family, **fixed)
    space_json = json.loads(space.model_dump_json())
    results_dir = Path(results_dir or "results").resolve()
    return RunPlan(
        space=space,
        space_json=space_json,
        text=text,
        space_file=space_file,
        overrides=overrides,
        prev=prev,
        resume=resume,
        results_dir=results_dir,
        device=device,
        ds=ds,
        teacher=teacher,
        student=student,
        candidates=candidates,
        own=own,
        sizes=sizes,
        train=train,
    )


def check_machine(plan: RunPlan, address: str | None, store_root, no_store: bool) -> str | None:
    """This machine's part of the checks, still before anything is written; returns the
    hop store's folder (None with --no-store) and keeps it in `plan.store`."""
    from takd_search.search import ray_session  # Ray only once the input is known good

    space, results_dir, prev = plan.space, plan.results_dir, plan.prev
    # every check that needs no Ray before Ray starts (seconds) and before anything is
    # written: the device, and for a local run the CPUs and GPUs a trial asks for
    ray_session.check_device(plan.device)
    # trials follow resources.gpu: gpu 0 trains on the CPU, gpu > 0 on Ray's GPU (cuda:0 in
    # every worker); the workers get the device decided here (issue 25)
    plan.device = trial_device(plan.device, space.resources.gpu)
    local = address in (None, "", "local")
    conc = 1  # trials at once here (a cluster's: unknown before it is reached)
    if local:
        conc = ray_session.check_resources(
            space.resources.cpu,
            space.resources.gpu,
            space.resources.concurrency,
            ray_session.local_resources(),
        )
    else:
        ray_session.probe_address(address)
    check_writable(results_dir)
    if prev is not None:
        store = prev.get("store")
    else:
        store = (
            None
            if no_store
            else str(
                Path(
                    store_root or os.environ.get("TAKD_STORE") or results_dir / ".store"
                ).resolve()
            )
        )
    # an unwritable store: one line now, before the run folder is written; after the checks
    # above, so a failed check leaves nothing behind, not even an empty store
    # the disk the run may fill against the free space, before anything is written
    disk_plan.check_fits(
        disk_plan.for_plan(
            space, plan.ds, plan.sizes, plan.train, results_dir, store, conc, plan.resume
        )
    )
    if store is not None:
        Store(store)
    plan.store = store
    return store
