"""Building a user's teacher as a module: TorchScript, or a state_dict plus an architecture
(ours, `torchvision:NAME`, `timm:NAME`, imported lazily), wrapped in the `InputAdapter`
that converts our batch to the input the teacher was trained on; and `check_teacher`,
which measures it on the run's own splits (never read from the file).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from takd_search import models
from takd_search.errors import first_line
from takd_search.models import count_params
from takd_search.teacher.source import TeacherError, TeacherInput, TeacherSource


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
        first = first_line(e)
        raise TeacherError(
            f"teacher file {source.path} is not a TorchScript archive ({first[:120]}): save "
            "it with torch.jit.script(model).save(PATH), or pass a state_dict with "
            "--teacher-arch"
        ) from None


def _architecture(arch: str, num_classes: int, input_shape) -> nn.Module:
    """An untrained network of architecture `arch` for `num_classes` classes."""
    lib, sep, name = arch.partition(":")
    if not sep:
        return models.create_model_from_name(arch, num_classes, input_shape)
    try:
        if lib == "torchvision":
            import torchvision.models as tvm  # optional package: only for a torchvision: teacher
        else:
            import timm  # optional package: only for a timm: teacher
    except Exception as e:  # torchvision's CUDA wheels raise RuntimeError next to CPU torch
        why = f"{type(e).__name__}: {first_line(e, 100)}"
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
        first = first_line(e)
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
            first = first_line(e, 160)
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
