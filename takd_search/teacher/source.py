"""Bring your own teacher: a user's trained network as the first model of a path.

A teacher file is one of

- TorchScript (`torch.jit.script(model).save(PATH)` or `torch.jit.trace(...)`): loads with
  torch alone, whatever library built it;
- a state_dict (or a checkpoint dict holding one under `state_dict`, `model` or
  `model_state_dict`; a `module.` prefix from DataParallel is dropped) plus the name of its
  architecture: `torchvision:resnet50`, `timm:NAME` (imported lazily, only then), or one of
  ours (`plain10`, `resnet20`, `mlp2x1200`).

Input contract. Every model of a path sees the same batch: the run's images under the
epoch's augmentation views, at the data set's size, normalised with the data set's own
statistics, `(x/255 - mean_data)/std_data`. A teacher trained elsewhere usually expects
something else (ImageNet mean/std, 224 px, 3 channels); `TeacherInput` declares it and
`InputAdapter` converts our batch on the way in: back to [0, 1], grey repeated to 3
channels (or RGB averaged to 1) when the teacher's mean has another channel count,
resized (bilinear) to `size`, then `(x - mean)/std`. Nothing declared: the contract the
file declares itself, if it does (a student made by `takd-search export` carries
`student.json` with its `teacher_input`: [0, 1] pixels, its own normalisation inside;
so does a `<file>.json` sidecar next to it); else the teacher takes our batch as it is.
Same pixels, same views, one conversion: the teacher's soft targets are for exactly the
images the student sees.

The teacher's accuracy is measured here, on the run's validation and test splits (never
read from the file's metadata), and kept in the hop store under a key of the file's
content, its architecture, its input contract and the data split. Optionally it is
fine-tuned first (`FineTune`): one ordinary hop, in the store like any other."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from takd_search import models
from takd_search.errors import UserError

NAME = "teacher"  # the path token that stands for the user's teacher (chain.parse_path)


IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


class TeacherError(UserError):
    """A teacher file that cannot be read, built or run; one line naming the fix."""


@dataclass(frozen=True)
class TeacherInput:
    """What the teacher expects. mean/std: per channel, in [0, 1] pixel units (the
    teacher gets (x/255 - mean)/std; their length is its channel count). size: side in
    pixels of its square input. None everywhere: the run's own input, unchanged."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    size: int | None = None

    @classmethod
    def of(cls, value) -> TeacherInput:
        """From None, a dict (a space file's `teacher_input`) or a TeacherInput."""
        if value is None:
            return cls()
        if isinstance(value, TeacherInput):
            return value
        d = dict(value if isinstance(value, dict) else value.model_dump())
        tin = cls(
            mean=tuple(float(v) for v in d["mean"]) if d.get("mean") is not None else None,
            std=tuple(float(v) for v in d["std"]) if d.get("std") is not None else None,
            size=int(d["size"]) if d.get("size") is not None else None,
        )
        problems = tin.problems()
        if problems:
            raise TeacherError(f"teacher input: {problems[0]}")
        return tin

    def problems(self) -> list[str]:
        """What is wrong with the declaration (empty when nothing)."""
        out = []
        if (self.mean is None) != (self.std is None):
            out.append("give mean and std together (e.g. ImageNet's, see docs/own_teacher.md)")
        elif self.mean is not None:
            if len(self.mean) != len(self.std):
                out.append(f"mean has {len(self.mean)} values but std has {len(self.std)}")
            if len(self.mean) not in (1, 3):
                out.append(f"mean has {len(self.mean)} values: give 1 (grey) or 3 (RGB)")
            if any(s <= 0 for s in self.std):
                out.append("std values must be > 0")
        if self.size is not None and not 1 <= self.size <= 4096:
            out.append(f"size {self.size} must be a side in 1..4096 pixels")
        return out

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class FineTune:
    """Train the brought teacher on the run's data before it teaches: `epochs` of SGD at
    peak learning rate `lr` (default: a tenth of the run's), cosine schedule, the run's
    batch size, weight decay and augmentation."""

    epochs: int
    lr: float | None = None


@dataclass(frozen=True, repr=False)
class TeacherSource:
    """A user's teacher as a run ships it to every trial: the file's bytes (workers and
    cluster nodes need no access to the file), how to build it, what it expects, and
    whether to fine-tune it. Picklable; `digest` names the network it defines."""

    path: str
    blob: bytes
    arch: str | None = None
    input: TeacherInput = TeacherInput()
    finetune: FineTune | None = None
    # what the file's own sidecar says it scores ({'val_acc', 'test_acc'}, fractions) and
    # where the input contract came from ('flags', 'sidecar' or None): for the warning when
    # a brought teacher measures far below its claim; not part of its identity
    claims: dict | None = field(default=None, compare=False)
    input_from: str | None = field(default=None, compare=False)

    @property
    def file_sha256(self) -> str:
        return hashlib.sha256(self.blob).hexdigest()

    @property
    def digest(self) -> str:
        """The teacher's identity: file content, architecture and input contract."""
        blob = json.dumps(
            {"file": self.file_sha256, "arch": self.arch, "input": self.input.as_dict()},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def describe(self) -> dict:
        """JSON for chain.json / versions.json."""
        return {
            "file": self.path,
            "sha256": self.file_sha256,
            "arch": self.arch or "torchscript",
            "input": self.input.as_dict(),
            "finetune": asdict(self.finetune) if self.finetune else None,
            "digest": self.digest,
            "input_from": self.input_from,
            "claims": self.claims,
        }

    def __repr__(self) -> str:
        return f"TeacherSource({self.path!r}, arch={self.arch!r}, {len(self.blob)} bytes)"


def check_arch(arch: str) -> str:
    """'torchvision:NAME', 'timm:NAME' or one of our model names -> its canonical form."""
    text = str(arch).strip()
    lib, sep, name = text.partition(":")
    if sep:
        if lib.lower() not in ("torchvision", "timm") or not name.strip():
            raise TeacherError(
                f"teacher architecture {arch!r}: use torchvision:NAME (e.g. "
                "torchvision:resnet50), timm:NAME, or one of ours (plain10, resnet20, mlp2x1200)"
            )
        return f"{lib.lower()}:{name.strip()}"
    try:
        fam, depth = models.parse_model_name(text)
    except models.ModelError as e:
        raise TeacherError(
            f"teacher architecture {arch!r} is neither torchvision:NAME, timm:NAME nor one "
            f"of ours: {e}"
        ) from None
    return models.model_name(fam, depth)


def read_teacher(
    path: str | Path,
    arch: str | None = None,
    teacher_input=None,
    finetune: FineTune | None = None,
) -> TeacherSource:
    """Read a teacher file (nothing is built yet: see `check_teacher`)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise TeacherError(
            f"teacher file {path} not found: pass the path of a TorchScript .pt file "
            "(or a state_dict with --teacher-arch)"
        )
    if arch is not None:
        arch = check_arch(arch)
    if finetune is not None and (
        finetune.epochs < 1 or (finetune.lr is not None and finetune.lr <= 0)
    ):
        raise TeacherError(
            f"teacher fine-tune {finetune.epochs} epochs at lr {finetune.lr}: give at least "
            "1 epoch and a learning rate > 0"
        )
    blob = p.read_bytes()
    tin = TeacherInput.of(teacher_input)
    declared = tin != TeacherInput()
    sidecar = declared_contract(p, blob) if arch is None else None
    claims = None
    if sidecar is not None:
        acc = sidecar.get("accuracy") or {}
        claims = {k: acc.get(k) for k in ("val_acc", "test_acc") if acc.get(k) is not None}
        # what it was trained on, for the run's warning about another split (premise.py)
        claims["sidecar"] = {
            k: sidecar[k] for k in ("dataset", "lineage", "trained_on") if k in sidecar
        }
        if not declared and sidecar.get("teacher_input"):
            tin = TeacherInput.of(sidecar["teacher_input"])
    frm = "flags" if declared else ("sidecar" if sidecar and tin != TeacherInput() else None)
    return TeacherSource(
        str(p.resolve()), blob, arch, tin, finetune, claims=claims or None, input_from=frm
    )


def declared_contract(path: Path, blob: bytes) -> dict | None:
    """The JSON a TorchScript teacher file declares about itself: the `student.json`
    embedded by `takd-search export`, else a `<file>.json` sidecar next to it holding
    `teacher_input`; None when neither (or the file is not TorchScript)."""
    extra = {"student.json": ""}
    try:
        torch.jit.load(io.BytesIO(blob), map_location="cpu", _extra_files=extra)
    except Exception:
        return None
    text = extra.get("student.json") or ""
    if not text:
        side = path.with_suffix(".json")
        text = side.read_text() if side.is_file() else ""
    try:
        meta = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    if "teacher_input" not in meta and (meta.get("normalisation") or {}).get("inside_module"):
        # a student exported before the sidecar said so: it takes [0, 1] pixels
        c, h, w = meta.get("input_shape") or [len(meta["normalisation"]["mean"]), None, None]
        meta["teacher_input"] = {"mean": [0.0] * c, "std": [1.0] * c}
    return meta


def teacher_from_space(space) -> TeacherSource | None:
    """The teacher a space file brings (`models.teacher: teacher`), or None."""
    m = space.models
    if str(m.teacher).strip().lower() != NAME:
        return None
    ft = m.teacher_finetune
    return read_teacher(
        m.teacher_file,
        m.teacher_arch,
        m.teacher_input,
        FineTune(ft.epochs, ft.lr) if ft is not None else None,
    )
