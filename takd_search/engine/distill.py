"""One hop: train a child network from scratch or from its parents' soft targets.

Pure torch. The loss is Hinton's: (1 - alpha) * CE(y, s) + alpha * T^2 * KL(p_t^T || p_s^T)
with `batchmean` KL, so alpha is the weight of the soft term per example. (TAKD's code used
mean-reduced KL, which divides the soft term by the class count C: its lambda is our alpha
where alpha / (1 - alpha) = lambda / (C (1 - lambda)); see space.alpha_from_lambda.) The T^2
factor keeps the soft term's gradient magnitude roughly constant as T changes.

Parents never run here: the caller hands in, per epoch, the parents' logits for every
training image under that epoch's view schedule (see `augment.Views`), computed live or
read from a logit bank. This keeps the hop's cost independent of the parents' size."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from takd_search.engine.augment import DeviceData, Views
from takd_search.errors import UserError

# cuBLAS picks its reduction order per workspace unless this is set before its first use
# (here: on import, before any hop runs); with it, deterministic algorithms can be enforced
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

# (epoch) -> parent logits [N_train, C] for that epoch's views, in training-image order
TeacherLogits = Callable[[int], torch.Tensor]


def pick_device(preferred: str | None = None, gpu: float | None = None) -> torch.device:
    """cuda, then mps, then cpu, unless `preferred` names one. gpu: the GPUs a trial asks
    for (resources.gpu); 0 means the CPU even on a CUDA machine, whatever Ray shows it."""
    if preferred:
        return torch.device(preferred)
    if gpu == 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def trial_device(device: str | None, gpu: float) -> str | None:
    """The --device every trial of a search gets, checked against resources.gpu before any
    worker starts (UserError in one line): gpu 0 -> 'cpu' (never a GPU Ray happens to leave
    visible); gpu > 0 -> the GPU Ray assigns, which a worker sees as cuda:0, so cuda:N with
    N > 0 would fail in every worker."""
    dev = torch.device(device) if device else None
    if gpu == 0:
        if dev is not None and dev.type in ("cuda", "mps"):
            raise UserError(
                f"--device {device} but resources.gpu is 0, so no trial gets a GPU: set "
                "resources.gpu (e.g. 0.25, or --gpus-per-trial) or pass --device cpu"
            )
        return "cpu"
    if dev is not None and dev.type == "cuda" and (dev.index or 0) > 0:
        raise UserError(
            f"--device {device}: Ray gives each trial its own GPU and shows it as cuda:0, so "
            f"cuda:{dev.index} exists in no worker: pass --device cuda (or leave it out) and "
            "choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    return device


def deterministic(device: torch.device) -> None:
    """Deterministic kernels for a hop on `device` (a no-op on the CPU, which is already):
    cuDNN without autotuning or nondeterministic algorithms, and torch's deterministic
    mode in warn-only form, so an op without a deterministic CUDA kernel (e.g. adaptive
    average pooling's backward in the ResNets) warns instead of failing the hop. What this
    makes bit-repeatable is said in docs/engine.md."""
    if torch.device(device).type != "cuda":
        return
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    # a debugging aid of deterministic mode: filling every torch.empty with NaN costs a
    # kernel per allocation and changes no result of ours (every buffer is written first)
    torch.utils.deterministic.fill_uninitialized_memory = False


def autocast(device: torch.device):
    """bf16 autocast on CUDA (same range as fp32, no loss scaling); nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision(device: torch.device | str) -> str:
    """The arithmetic a hop trains in on `device`: 'bf16' (autocast) on CUDA, else 'fp32'.
    Part of the hop's lineage: the two give different networks from one recipe."""
    return "bf16" if torch.device(device).type == "cuda" else "fp32"


def soft_targets(teacher_logits: Sequence[torch.Tensor], T: float) -> torch.Tensor:
    """Average of the teachers' tempered softmax (one teacher: just its softmax at T)."""
    probs = [F.softmax(t.float() / T, dim=1) for t in teacher_logits]
    return probs[0] if len(probs) == 1 else torch.stack(probs).mean(0)


def kd_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor | None,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> torch.Tensor:
    """(1 - alpha) * CE + alpha * T^2 * KL_batchmean(targets || softmax(student / T)).

    `targets` are the teachers' soft targets at temperature T (see `soft_targets`).
    With alpha == 0 or no targets this is plain cross-entropy.
    """
    return kd_terms(student_logits, targets, labels, T, alpha)[0]


def kd_terms(student_logits, targets, labels, T: float, alpha: float):
    """(kd_loss, its cross-entropy term): the second is what `learning_problem` reads."""
    ce = F.cross_entropy(student_logits.float(), labels)
    if targets is None or alpha == 0:
        return ce, ce
    log_p = F.log_softmax(student_logits.float() / T, dim=1)
    kl = F.kl_div(log_p, targets, reduction="batchmean")
    return (1.0 - alpha) * ce + alpha * (T * T) * kl, ce


@torch.no_grad()
def predict(
    model: torch.nn.Module, data: DeviceData, images: torch.Tensor, batch_size: int = 1024
) -> torch.Tensor:
    """Logits (float32) of `model` in eval mode for uint8 `images` already on the device."""
    was_training = model.training
    model.eval()
    out = []
    with autocast(data.device):
        for i in range(0, len(images), batch_size):
            x = data.normalize(images[i : i + batch_size])
            if data.device.type == "cuda" and x.dim() == 4:  # images; signals stay [B, C, L]
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(model(x).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, data.num_classes, device=data.device)


@torch.no_grad()
def train_logits(
    model: torch.nn.Module, data: DeviceData, views: Views, batch_size: int = 1024
) -> torch.Tensor:
    """A parent's logits [N_train, C] for every training image under `views` (eval mode)."""
    was_training = model.training
    model.eval()
    out = []
    idx = torch.arange(data.n_train, device=data.device)  # made there: no copy per batch
    with autocast(data.device):
        for i in range(0, data.n_train, batch_size):
            x = data.train_batch(idx[i : i + batch_size], views)
            if data.device.type == "cuda" and x.dim() == 4:  # images; signals stay [B, C, L]
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(model(x).float())
    model.train(was_training)
    return torch.cat(out)


def accuracy(model: torch.nn.Module, data: DeviceData, split: str) -> float:
    """Top-1 accuracy (fraction) on 'train', 'val' or 'test'."""
    x, y = data.split(split)
    if len(y) == 0:
        return float("nan")
    return (predict(model, data, x).argmax(1) == y).float().mean().item()


def evaluate(model: torch.nn.Module, data: DeviceData, split: str) -> tuple[float, float]:
    """(top-1 accuracy as a fraction, mean cross-entropy in nats) on a split."""
    x, y = data.split(split)
    if len(y) == 0:
        return float("nan"), float("nan")
    logits = predict(model, data, x)
    acc = (logits.argmax(1) == y).float().mean().item()
    return acc, F.cross_entropy(logits, y).item()


def load_model(make_model: Callable[[], torch.nn.Module], state: dict, device) -> torch.nn.Module:
    """Build a model and load `state` into it, in eval mode on `device`."""
    model = make_model()
    model.load_state_dict(state)
    model = model.to(device)
    if torch.device(device).type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model.eval()
