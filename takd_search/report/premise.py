"""Checks of a run's premise, each one warning line: distillation needs a teacher that is
better than the student alone, a brought teacher that measures as it claims, and a brought
teacher that has not trained on this run's validation images (its sidecar's split).

Used by `run` (after the NoKD phase), `run-path`, the teacher loader and the report; they
only warn (a user may study a weak teacher on purpose), never stop a run. Accuracies are
fractions in [0, 1]; gaps are printed in percentage points.
"""

from __future__ import annotations

# a brought teacher measuring this much (fraction) below what its sidecar claims is
# almost surely fed the wrong input (normalised twice, wrong size), not a data shift
CLAIM_GAP = 0.05


def teacher_not_better(
    teacher: str, teacher_acc: float | None, student: str, student_acc: float | None
) -> str | None:
    """The warning when the teacher's accuracy (NoKD, or as measured when brought) is
    not above the student's NoKD accuracy (validation split), else None."""
    if teacher_acc is None or student_acc is None:
        return None
    if teacher_acc > student_acc:
        return None
    return (
        f"warning: the teacher {teacher} ({100 * teacher_acc:.2f}% val) is not better than "
        f"the student {student} trained alone ({100 * student_acc:.2f}% val): distillation "
        "has nothing to teach; train the teacher longer (--epochs) or pick a larger one"
    )


def below_claim(
    name: str, measured: float | None, claimed: float | None, split: str
) -> str | None:
    """The warning when a brought teacher measures more than CLAIM_GAP below the
    accuracy its sidecar claims (same split name), else None."""
    if measured is None or claimed is None or measured >= claimed - CLAIM_GAP:
        return None
    return (
        f"warning: teacher {name} measures {100 * measured:.2f}% {split} here but its "
        f"sidecar claims {100 * claimed:.2f}%: check its input declaration (--teacher-mean/"
        "--teacher-std/--teacher-size; an exported student normalises its own input)"
    )


def sidecar_split(meta: dict | None) -> dict | None:
    """What a brought teacher's sidecar says about the data it was trained on, as
    {'dataset' (name), 'data' (content fingerprint), 'val_fraction', 'split_seed'} (each
    None when not said), or None when it says nothing.

    Read from an exported student's `student.json` (`dataset` {name, fingerprint} and the
    store lineage `lineage.student_hop`: data, val_fraction, split_seed), or from a
    hand-written sidecar's `trained_on` {dataset, data, val_fraction, split_seed}
    (val_fraction 0: trained on the whole training set)."""
    if not isinstance(meta, dict):
        return None
    hop = (meta.get("lineage") or {}).get("student_hop") or meta.get("trained_on") or {}
    ds = meta.get("dataset")
    ds = ds if isinstance(ds, dict) else {"name": ds} if isinstance(ds, str) else {}
    out = {
        "dataset": ds.get("name") or hop.get("dataset"),
        "data": hop.get("data") or ds.get("fingerprint"),
        "val_fraction": hop.get("val_fraction"),
        "split_seed": hop.get("split_seed"),
    }
    return out if out["val_fraction"] is not None else None


def other_split(name: str, trained_on: dict | None, run_split: dict | None) -> str | None:
    """The warning when a brought teacher was trained on the same data as this run but
    with another validation split (or on the whole training set): it has then seen some
    of this run's validation images, so its accuracy there, and every choice made on
    validation accuracy through its soft labels, is optimistic. trained_on:
    `sidecar_split`; run_split: {'dataset', 'data' (fingerprint, may be None),
    'val_fraction', 'split_seed'} of this run. The same data = equal fingerprints where
    both are known, else equal data set names. None when the split is the same, the data
    differ, or either side is unknown."""
    if not trained_on or not run_split or trained_on.get("val_fraction") is None:
        return None
    if trained_on.get("data") and run_split.get("data"):
        same = trained_on["data"] == run_split["data"]
    else:
        same = bool(trained_on.get("dataset")) and trained_on.get("dataset") == run_split.get(
            "dataset"
        )
    if not same:
        return None
    vf, seed = float(trained_on["val_fraction"]), trained_on.get("split_seed")
    run_vf, run_seed = float(run_split.get("val_fraction") or 0), run_split.get("split_seed")
    if run_vf == 0:  # this run has no validation split to leak into
        return None
    if vf == run_vf and (seed is None or run_seed is None or int(seed) == int(run_seed)):
        return None  # the same split: the teacher never saw this run's validation images
    how = (
        "the whole training set"
        if vf == 0
        else f"another split of the same data (val_fraction {vf:g}, split_seed {seed})"
    )
    return (
        f"warning: teacher {name} was trained on {how}, not this run's split (val_fraction "
        f"{run_vf:g}, split_seed {run_seed}): it has seen some of this run's validation images, "
        "so its validation accuracy and every choice made on validation accuracy are "
        "optimistic; use the teacher's own split (data.val_fraction, data.split_seed) or a "
        "teacher trained without these images"
    )


def chain_warnings(hops: list[dict], alone: dict | None, teacher=None) -> list[str]:
    """The warnings for one trained path (run-path): hops as `chain.hop_rows` (hop 1 =
    the teacher), alone = the student trained alone (or None), teacher = the brought
    teacher's TeacherSource (or None)."""
    if not hops:
        return []
    first = hops[0]
    out = []
    claims = getattr(teacher, "claims", None) or {}
    if teacher is not None and first.get("model") == "teacher":
        for split in ("val", "test"):
            line = below_claim(
                "teacher", first.get(f"{split}_acc"), claims.get(f"{split}_acc"), split
            )
            if line:
                out.append(line)
                break
    if alone is not None and len(hops) > 1:
        line = teacher_not_better(
            first["model"], first.get("val_acc"), alone["model"], alone.get("val_acc")
        )
        if line:
            out.append(line)
    return out


def run_warnings(
    baselines,
    teacher: str,
    student: str,
    claims: dict | None = None,
    split: dict | None = None,
) -> list[str]:
    """The warnings for a search run from its NoKD rows (baselines.csv as a DataFrame,
    or {model: val_acc}); claims: a brought teacher's sidecar claims (`trained_on`: what
    `sidecar_split` read from its sidecar, or `sidecar`: the sidecar's `dataset`,
    `lineage` and `trained_on` keys, read here); split: this run's {'dataset', 'data',
    'val_fraction', 'split_seed'}, for `other_split`."""
    if isinstance(baselines, dict):
        val = baselines
    else:
        nokd = baselines[baselines["kind"] == "nokd"]
        val = {m: (None if v != v else float(v)) for m, v in zip(nokd["model"], nokd["val_acc"])}
    out = []
    trained_on = (claims or {}).get("trained_on") or sidecar_split((claims or {}).get("sidecar"))
    line = other_split(teacher, trained_on, split)
    if line:
        out.append(line)
    if claims and teacher in val:
        line = below_claim(teacher, val.get(teacher), (claims or {}).get("val_acc"), "val")
        if line:
            out.append(line)
    line = teacher_not_better(teacher, val.get(teacher), student, val.get(student))
    if line:
        out.append(line)
    return out
