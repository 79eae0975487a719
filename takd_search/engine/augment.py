"""The run's images on the training device, and batched augmentation of them.

The whole split lives on the device as uint8 (CIFAR-100 train is 150 MB), so a batch is an
index, a gather and a normalisation: no DataLoader workers, which on a GPU are the
bottleneck and under Ray fight trials for CPU cores (the airbench recipe).

Augmentation is a *view schedule*: for epoch e and seed s, every training image i gets
one view (its crop offset, flip, resize box) and the epoch gets one visiting order, all
drawn from a generator seeded by (s, e) alone. A view therefore does not depend on the
batch size, on the device, or on what ran before, which is what lets a parent's logits
for an epoch be computed once and banked for every child that uses the same schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from takd_search.data import Dataset
from takd_search.errors import UserError

AUGMENTS = ("none", "flip", "crop_flip", "resized_crop_flip")
PAD = 4  # pixels of zero padding for the random crop, as in TAKD's RandomCrop(32, padding=4)


@dataclass(frozen=True)
class Views:
    """One epoch's view schedule for N training images (tensors indexed by image; drawn on
    the CPU by `epoch_views`, moved to the training device once per epoch by `to`).

    order: int64 [N], the visiting order. shift: int64 [N, 2] crop offsets (dy, dx) in
    padded pixels, or None. flip: bool [N] horizontal flips, or None. box: float [N, 4]
    (scale_y, scale_x, centre_y, centre_x) of a random resized crop in [-1, 1] image
    coordinates, or None.
    """

    order: torch.Tensor
    shift: torch.Tensor | None = None
    flip: torch.Tensor | None = None
    box: torch.Tensor | None = None

    @property
    def identity(self) -> bool:
        return self.shift is None and self.flip is None and self.box is None

    @property
    def device(self) -> torch.device:
        return self.order.device

    def to(self, device: torch.device | str) -> Views:
        """The same schedule on `device`: one host-to-device copy per epoch (about 1 MB for
        45,000 images), so a training step gathers its views there and never copies."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Views(move(self.order), move(self.shift), move(self.flip), move(self.box))


def epoch_views(n: int, seed: int, epoch: int, augment: str) -> Views:
    """The view schedule of one epoch: a pure function of (n, seed, epoch, augment)."""
    if augment not in AUGMENTS:
        raise ValueError(f"unknown augmentation {augment!r}: use one of {', '.join(AUGMENTS)}")
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) * 7919 + 17)
    order = torch.randperm(n, generator=gen)
    if augment == "none":
        return Views(order)
    flip = torch.rand(n, generator=gen) < 0.5
    if augment == "flip":
        return Views(order, flip=flip)
    if augment == "crop_flip":
        shift = torch.randint(0, 2 * PAD + 1, (n, 2), generator=gen)
        return Views(order, shift=shift, flip=flip)
    # random resized crop: area in [0.35, 1] of the image, aspect ratio in [3/4, 4/3]
    area = torch.empty(n).uniform_(0.35, 1.0, generator=gen)
    log_ratio = torch.empty(n).uniform_(-0.2877, 0.2877, generator=gen)  # ln(3/4)..ln(4/3)
    ratio = log_ratio.exp()
    sx = (area * ratio).sqrt().clamp(max=1.0)
    sy = (area / ratio).sqrt().clamp(max=1.0)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sy)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sx)
    return Views(order, flip=flip, box=torch.stack([sy, sx, cy, cx], 1))


def apply_views(x: torch.Tensor, idx: torch.Tensor, views: Views) -> torch.Tensor:
    """Augment uint8 images x [B, C, H, W] that are training images `idx` (int64 [B], on
    the device of `views`, normally x's: then nothing here crosses between host and device).

    Returns float32 in [0, 255] on x's device. All of it is batched tensor work.
    """
    out = x.float()
    if views.shift is not None:
        b, _, h, w = x.shape
        shift = views.shift[idx]
        padded = F.pad(out, (PAD, PAD, PAD, PAD))
        rows = (shift[:, 0, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (shift[:, 1, None] + torch.arange(w, device=x.device))[:, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if views.box is not None:
        box = views.box[idx]
        theta = torch.zeros(len(idx), 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 1, 1] = box[:, 1], box[:, 0]
        theta[:, 0, 2], theta[:, 1, 2] = box[:, 3], box[:, 2]
        grid = F.affine_grid(theta, list(out.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", align_corners=False)
    if views.flip is not None:
        flip = views.flip[idx][:, None, None, None]
        out = torch.where(flip, out.flip(3), out)
    return out


class DeviceData:
    """Train / validation / test splits of a data set, resident on one device as uint8
    (1-D signals as float32: 20,000 MNIST-1D signals are 3 MB).

    The validation split is carved from the training set (stratified, seeded) and is what
    every selection uses; the test split is only ever evaluated for reporting. Inputs are
    normalised with `mean`/`std` (per channel, [0, 1] pixel units) of the training part.
    """

    def __init__(
        self,
        ds: Dataset,
        device: torch.device | str = "cpu",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        augment: str | None = None,
    ):
        self.ds = ds
        self.device = torch.device(device)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.augment = augment or ds.augment
        if self.augment not in AUGMENTS:
            raise ValueError(
                f"unknown augmentation {self.augment!r}: use one of {', '.join(AUGMENTS)}"
            )
        if ds.is_signal and self.augment != "none":
            raise UserError(
                f"augmentation {self.augment!r} is for images, but {ds.name} holds 1-D signals: "
                "set data.augment to none (or leave it unset)"
            )
        train_idx, val_idx = ds.split(val_fraction, split_seed)
        put = lambda t: t.contiguous().to(self.device)  # noqa: E731
        self.x_train, self.y_train = put(ds.x_train[train_idx]), put(ds.y_train[train_idx])
        self.x_val, self.y_val = put(ds.x_train[val_idx]), put(ds.y_train[val_idx])
        self.x_test, self.y_test = put(ds.x_test), put(ds.y_test)
        shape = (1, ds.input_shape[0]) + (1,) * (len(ds.input_shape) - 1)  # [1, C, 1(, 1)]
        # statistics of the training part only: validation and test images stay unseen
        self.mean, self.std = ds.train_stats(val_fraction, split_seed)
        # fold /255 into the normalisation so one fused multiply-add turns uint8 into input;
        # float signals are normalised in their own units
        unit = 1.0 if ds.is_signal else 255.0
        std = torch.tensor(self.std, dtype=torch.float32).view(shape) * unit
        mean = torch.tensor(self.mean, dtype=torch.float32).view(shape) * unit
        self._scale = (1.0 / std).to(self.device)
        self._shift = (-mean / std).to(self.device)

    @property
    def num_classes(self) -> int:
        return self.ds.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.ds.input_shape

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images uint8, labels) of 'train', 'val' or 'test'."""
        return {
            "train": (self.x_train, self.y_train),
            "val": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }[name]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or float [0, 255] images (float32 signals) -> normalised float32 model input."""
        return x.float() * self._scale + self._shift

    def views(self, seed: int, epoch: int) -> Views:
        """Epoch `epoch`'s view schedule for seed `seed`, on this device: drawn on the CPU
        (the same numbers on every device, so banks and store keys do not depend on it),
        then copied over once for the whole epoch."""
        return epoch_views(self.n_train, seed, epoch, self.augment).to(self.device)

    def train_batch(self, idx: torch.Tensor, views: Views) -> torch.Tensor:
        """Normalised, augmented training images `idx` (int64 on this device, a slice of
        `views.order` or an arange) under `views` (on this device, from `self.views`)."""
        x = self.x_train[idx]
        if views.identity:
            return self.normalize(x)
        return self.normalize(apply_views(x, idx, views))
