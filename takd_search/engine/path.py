"""Paths: the one parser from what a user types ('10-4-2' with a family, 'plain10>plain4>plain2',
a list) to canonical model names, and the checks a path must pass (each model smaller
than the one before). A path is stored and shown as names joined by '>' (`path_text`);
`path_models` reads that form back.
"""

from __future__ import annotations

from collections.abc import Sequence

from takd_search.errors import UserError


class PathError(UserError):
    """A path that is not a strictly shrinking sequence of known models (one line)."""


def parse_path(path: str | Sequence[str], family: str | None = None) -> list[str]:
    """'10-4-2' (with a family), 'plain10>plain4>plain2', or a list -> canonical names.

    Each model must be strictly smaller than the one before: by depth within the plain and
    resnet families, by parameter count otherwise (checked by the caller that knows the
    input shape, see `check_shrinking`). A path needs at least two models.
    """
    from takd_search import models  # torch: this module also serves the torch-free report

    if isinstance(path, str):
        text = path.strip()
        sep = ">" if ">" in text else "-"
        tokens = [t.strip() for t in text.split(sep) if t.strip()]
    else:
        tokens = [str(t).strip() for t in path]
    if len(tokens) < 2:
        raise PathError(
            f"path {path!r} needs a teacher and a student, e.g. 10-4-2 with --family plain, "
            "or plain10>plain4>plain2"
        )
    names = []
    for tok in tokens:
        if tok.lower() in models_external_names():
            if names:
                raise PathError(
                    f"path {path!r}: {tok!r} (a teacher you bring with --teacher) can only "
                    "be the first model of a path, e.g. teacher>plain4>plain2"
                )
            names.append(tok.lower())
            continue
        if family is not None and tok[:1].isdigit():
            tok = f"{family}{tok}"
        try:
            fam, depth = models.parse_model_name(tok)
        except models.ModelError as e:
            raise PathError(
                f"path {path!r}: {e}; or 'teacher' first for a teacher file (--teacher)"
            ) from None
        names.append(models.model_name(fam, depth))
    if len(set(names)) != len(names):
        raise PathError(f"path {path!r} names a model twice: each model appears once")
    return names


def models_external_names() -> tuple[str, ...]:
    """Names that stand for a model the user brought rather than one we build."""
    return ("teacher",)


def check_shrinking(names: list[str], num_classes: int, input_shape) -> None:
    """Raise PathError unless each model is strictly smaller than the one before it
    within its family (plain, resnet: by depth; mlp: by parameter count). A hop that
    changes family (plain10>mlp2x800, a CNN teacher for an MLP student) is not checked:
    parameter counts of different families do not say which one is the bigger teacher."""
    from takd_search import models  # torch: this module also serves the torch-free report

    for big, small in zip(names, names[1:]):
        if big in models_external_names():
            continue
        fb, db = models.parse_model_name(big)
        fs, ds = models.parse_model_name(small)
        if fb != fs:
            continue
        if fb in ("plain", "resnet"):
            if int(ds) >= int(db):
                raise PathError(
                    f"path {'>'.join(names)}: {small} is not smaller than {big}; "
                    "depths must strictly decrease from teacher to student"
                )
        elif models.model_size(small, num_classes, tuple(input_shape)) >= models.model_size(
            big, num_classes, tuple(input_shape)
        ):
            raise PathError(
                f"path {'>'.join(names)}: {small} has no fewer parameters than {big}; "
                "each model must be smaller than the one before it"
            )


def path_text(names: Sequence[str]) -> str:
    """Canonical names -> the stored form, 'plain10>plain4>plain2'."""
    return ">".join(names)


def path_models(text: str) -> list[str]:
    """The stored form 'plain10>plain4>plain2' (trials.csv, configs, summaries) -> names.
    Only for paths the tool wrote; what a user types goes through `parse_path`."""
    return [t for t in str(text).split(">") if t]
