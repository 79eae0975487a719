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
