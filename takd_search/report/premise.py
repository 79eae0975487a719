"""Checks of a run's premise, each one warning line: distillation needs a teacher that is
better than the student alone, and a brought teacher that measures as it claims.

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


def run_warnings(baselines, teacher: str, student: str, claims: dict | None = None) -> list[str]:
    """The warnings for a search run from its NoKD rows (baselines.csv as a DataFrame,
    or {model: val_acc}); claims: a brought teacher's sidecar claims."""
    if isinstance(baselines, dict):
        val = baselines
    else:
        nokd = baselines[baselines["kind"] == "nokd"]
        val = {m: (None if v != v else float(v)) for m, v in zip(nokd["model"], nokd["val_acc"])}
    out = []
    if claims and teacher in val:
        line = below_claim(teacher, val.get(teacher), (claims or {}).get("val_acc"), "val")
        if line:
            out.append(line)
    line = teacher_not_better(teacher, val.get(teacher), student, val.get(student))
    if line:
        out.append(line)
    return out
