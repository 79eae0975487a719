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
fine-tuned first (`FineTune`): one ordinary hop, in the store like any other.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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


def check_arch(arch: str) -> str:
    """'torchvision:NAME', 'timm:NAME' or one of our model names -> its canonical form."""
    from takd_search import models

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


# ---- the input adapter --------------------------------------------------------------------
class InputAdapter(nn.Module):
    """Our normalised batch -> the teacher's input -> its logits (see the module doc).

    data_mean/data_std: the data set's statistics (what our batch was normalised with).
    Only `model`'s weights are in the state_dict (the conversion constants are not).
    """

    def __init__(self, model: nn.Module, data_mean, data_std, tin: TeacherInput):
        super().__init__()
        self.model = model
        c = len(data_mean)
        self.size = tin.size
        self.convert = tin.mean is not None
        self.channels = len(tin.mean) if tin.mean is not None else c
        self.register_buffer(
            "src_mean", torch.tensor(data_mean, dtype=torch.float32).view(1, c, 1, 1), False
        )
        self.register_buffer(
            "src_std", torch.tensor(data_std, dtype=torch.float32).view(1, c, 1, 1), False
        )
        k = self.channels
        dst_mean = tin.mean if tin.mean is not None else (0.0,) * k
        dst_std = tin.std if tin.std is not None else (1.0,) * k
        self.register_buffer(
            "dst_mean", torch.tensor(dst_mean, dtype=torch.float32).view(1, k, 1, 1), False
        )
        self.register_buffer(
            "dst_std", torch.tensor(dst_std, dtype=torch.float32).view(1, k, 1, 1), False
        )

    def teacher_input(self, x: torch.Tensor) -> torch.Tensor:
        """The batch as the teacher expects it."""
        if self.convert:
            x = x * self.src_std + self.src_mean  # [0, 1] pixels
            if x.shape[1] == 1 and self.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] == 3 and self.channels == 1:
                x = x.mean(1, keepdim=True)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            down = self.size < min(x.shape[-2:])
            x = F.interpolate(
                x.float(),
                size=(self.size, self.size),
                mode="bilinear",
                align_corners=False,
                antialias=down,
            )
        if self.convert:
            x = (x - self.dst_mean) / self.dst_std
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.teacher_input(x))


# ---- building -----------------------------------------------------------------------------
def _torchscript(source: TeacherSource) -> nn.Module:
    try:
        return torch.jit.load(io.BytesIO(source.blob), map_location="cpu")
    except Exception as e:
        try:
            obj = torch.load(io.BytesIO(source.blob), map_location="cpu", weights_only=True)
        except Exception:
            obj = None
        if isinstance(obj, dict):
            raise TeacherError(
                f"teacher file {source.path} holds a state_dict, not TorchScript: name its "
                "architecture (--teacher-arch torchvision:resnet50, timm:NAME or one of ours "
                "such as plain10; models.teacher_arch in a space file), or save the model with "
                "torch.jit.script(model).save(PATH)"
            ) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TeacherError(
            f"teacher file {source.path} is not a TorchScript archive ({first[:120]}): save "
            "it with torch.jit.script(model).save(PATH), or pass a state_dict with "
            "--teacher-arch"
        ) from None


def _architecture(arch: str, num_classes: int, input_shape) -> nn.Module:
    """An untrained network of architecture `arch` for `num_classes` classes."""
    lib, sep, name = arch.partition(":")
    if not sep:
        from takd_search import models

        return models.create_model_from_name(arch, num_classes, input_shape)
    try:
        if lib == "torchvision":
            import torchvision.models as tvm
        else:
            import timm
    except Exception as e:  # torchvision's CUDA wheels raise RuntimeError next to CPU torch
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:100] if str(e) else ''}"
        raise TeacherError(
            f"teacher architecture {arch} needs {lib}, which cannot be imported here ({why}): "
            f"install the {lib} build matching your torch, or save the teacher as TorchScript "
            "(torch.jit.script(model).save('teacher.pt')) and pass it without --teacher-arch"
        ) from None
    try:
        if lib == "torchvision":
            if hasattr(tvm, "get_model"):
                return tvm.get_model(name, weights=None, num_classes=num_classes)
            return getattr(tvm, name)(num_classes=num_classes)
        return timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=input_shape[0]
        )
    except Exception as e:
        raise TeacherError(
            f"cannot build teacher architecture {arch} ({e}): check its name"
        ) from None


def _state_dict(source: TeacherSource) -> dict:
    try:
        obj = torch.load(io.BytesIO(source.blob), map_location="cpu", weights_only=True)
    except Exception as e:
        if _is_torchscript(source.blob):
            raise TeacherError(
                f"teacher file {source.path} is TorchScript: pass it without --teacher-arch"
            ) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TeacherError(
            f"teacher file {source.path} is not a state_dict torch.load can read safely "
            f"({first[:120]}): save it with torch.save(model.state_dict(), PATH)"
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise TeacherError(
            f"teacher file {source.path} does not hold a state_dict (a dict of tensors): save "
            "it with torch.save(model.state_dict(), PATH)"
        )
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _is_torchscript(blob: bytes) -> bool:
    try:
        torch.jit.load(io.BytesIO(blob), map_location="cpu")
        return True
    except Exception:
        return False


def _load_state(model: nn.Module, state: dict, source: TeacherSource, new_head: bool) -> list:
    """Load `state` into `model`; with `new_head` (fine-tuning), tensors whose shape
    differs (a classifier for other classes) keep their fresh initialisation. Returns the
    names of those tensors."""
    own = model.state_dict()
    skipped = []
    if new_head:
        skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        state = {k: v for k, v in state.items() if k not in skipped}
    try:
        model.load_state_dict(state, strict=not skipped)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:3])[:240]
        hint = (
            "a classifier for another class count: add --finetune-epochs to train a new head"
            if "size mismatch" in str(e)
            else "check --teacher-arch"
        )
        raise TeacherError(
            f"teacher file {source.path} does not fit {source.arch} ({detail}): {hint}"
        ) from None
    missing = [k for k in own if k not in state and k not in skipped]
    if skipped and missing:
        raise TeacherError(
            f"teacher file {source.path} lacks {', '.join(missing[:3])} of {source.arch}: "
            "check --teacher-arch"
        )
    return skipped


def build_teacher(source: TeacherSource, num_classes: int, input_shape, mean, std) -> nn.Module:
    """The teacher wrapped in its InputAdapter, on the CPU, in eval mode.

    input_shape/mean/std: the run's data (C, H, W) and per-channel statistics."""
    tin = source.input
    c, h, w = input_shape
    shape = (len(tin.mean) if tin.mean else c, tin.size or h, tin.size or w)
    if source.arch is None:
        net = _torchscript(source)
    else:
        net = _architecture(source.arch, num_classes, shape)
        _load_state(net, _state_dict(source), source, new_head=source.finetune is not None)
    return InputAdapter(net, mean, std, tin).eval()


def check_teacher(source: TeacherSource, ds) -> int:
    """Build the teacher for data set `ds` (a data.Dataset) and run it on two test images;
    raises TeacherError unless it gives one logit per class. Returns its trainable
    parameter count (what the search orders models by)."""
    from takd_search.models import count_params

    if getattr(ds, "is_signal", False):  # the adapter converts images (channels, size) only
        raise TeacherError(
            f"{ds.name} holds 1-D signals, and a brought teacher works on image data only: "
            "use a teacher from the model zoo (e.g. plain10) for signals"
        )
    module = build_teacher(source, ds.num_classes, ds.input_shape, ds.mean, ds.std)
    c = ds.input_shape[0]
    x = ds.x_test[:2].float() / 255.0
    x = (x - torch.tensor(ds.mean).view(1, c, 1, 1)) / torch.tensor(ds.std).view(1, c, 1, 1)
    _, h, w = ds.input_shape
    with torch.no_grad():
        try:
            out = module(x)
        except Exception as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            got = tuple(module.teacher_input(x).shape)
            raise TeacherError(
                f"teacher {Path(source.path).name} fails on a batch of shape {list(got)} "
                f"({first}): declare its input (teacher_input size/mean/std; --teacher-size, "
                "--teacher-mean, --teacher-std)"
            ) from None
    if out.dim() != 2 or out.shape[1] != ds.num_classes:
        k = out.shape[-1] if out.dim() else 0
        raise TeacherError(
            f"teacher {Path(source.path).name} outputs {k} logits per image but {ds.name} "
            f"has {ds.num_classes} classes: give a teacher for these classes (or a "
            "state_dict with --teacher-arch and --finetune-epochs to train a new head)"
        )
    return count_params(module)


def _on_device(module: nn.Module, device) -> nn.Module:
    module = module.to(device)
    if torch.device(device).type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    return module.eval()


# ---- joining a run ------------------------------------------------------------------------
# the teacher hop of a teacher used as given: trained elsewhere, nothing trained here
AS_GIVEN = dict(
    epochs=0,
    batch_size=0,
    lr=0.0,
    momentum=0.0,
    nesterov=False,
    weight_decay=0.0,
    warmup_epochs=0,
    augment="none",
)


def attach_teacher(ctx, source: TeacherSource, *, seed: int = 0):
    """Make `source` the path token `teacher` of Context `ctx` (ctx.external) and return
    its `chain.Trained`: measured on the validation and test splits (or loaded from the
    store when this file, contract and split were measured before), fine-tuned first when
    asked. Children distil from it like from any parent."""
    from takd_search.chain import Trained
    from takd_search.distill import (
        HopResult,
        TrainConfig,
        accuracy,
        load_model,
        precision,
        train_hop,
    )
    from takd_search.models import count_params
    from takd_search.store import HopSpec

    data = ctx.data
    ds = data.ds

    def fresh() -> nn.Module:  # takes the run's input, normalised with its statistics
        return build_teacher(source, ds.num_classes, ds.input_shape, data.mean, data.std)

    ft = source.finetune
    if ft is not None:
        cfg = replace(
            ctx.train,
            epochs=ft.epochs,
            lr=ft.lr if ft.lr is not None else ctx.train.lr / 10,
            schedule="cosine",
            warmup_epochs=0,
            augment=data.augment,
        )
        seed_used = seed
    else:
        cfg, seed_used = TrainConfig(**AS_GIVEN), 0
    spec = HopSpec(
        data=ds.fingerprint,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
        model=NAME,
        train=cfg,
        seed=seed_used,
        teacher=source.digest,
        precision=precision(data.device),
    )
    info = {"model": NAME, "key": spec.key}

    if ft is not None:

        def train():
            ctx.emit("hop_start", **info, status="fine-tuning")
            return train_hop(
                fresh,
                data,
                cfg,
                seed=seed_used,
                on_epoch=lambda row: ctx.emit("epoch", **info, **row),
                name="the fine-tuned teacher",
            )

        result, reused = ctx.store.get_or_train(spec, train)
        module = load_model(fresh, result.state, data.device)
    else:
        module = _on_device(fresh(), data.device)
        result = ctx.store.load(spec.key)
        reused = result is not None
        if result is None:
            t0 = time.perf_counter()
            val, test = accuracy(module, data, "val"), accuracy(module, data, "test")
            result = HopResult(
                val_acc=val,
                val_acc_last=val,
                best_epoch=0,
                test_acc=test,
                epochs=0,
                params=count_params(module),
                seconds=time.perf_counter() - t0,
                device=str(data.device),
            )
            if ctx.store.reuse:
                ctx.store.save(spec, result)
    ctx.emit(
        "hop_end",
        **info,
        status="reused" if reused else ("fine-tuned" if ft else "measured"),
        val_acc=result.val_acc,
        test_acc=result.test_acc,
        seconds=result.seconds,
    )
    ctx.external[NAME] = (spec, result, module)
    return Trained(NAME, spec, result, reused)
