"""Small generated data sets for trying the example spaces offline (docs/own_teacher.md).

    from takd_search.examples import make_example_data
    make_example_data("data")   # data/letters.npz, data/my_images/, two teacher files

- `make_letters`: letter-like 28x28 grey images as an npz (Pillow's bundled font at random
  sizes, offsets and slants, with noise): a stand-in for EMNIST letters;
- `make_shapes_folder`: an image folder (train/<class>/*.png, test/...) of coloured
  shapes on noise, for `folder:PATH` at realistic sizes;
- `pretrained_elsewhere`: a plain4 state_dict "pretrained" on another task (2 of the 3
  shape classes, 32 px, ImageNet normalisation), for own_teacher_finetune;
- `make_digits_teacher`: a plain6 trained on digits, saved as TorchScript that expects
  `(x/255 - 0.5)/0.25`, for own_teacher_digits.

Everything is seeded and runs on a CPU in seconds (Pillow comes with matplotlib).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from takd_search import models
from takd_search.data import load_dataset
from takd_search.engine.augment import DeviceData
from takd_search.engine.hop import TrainConfig
from takd_search.engine.train import train_hop
from takd_search.teacher.source import IMAGENET


def make_letters(path, per_class=30, test_per_class=10, size=16, letters="ABCDEFGHIJ", seed=0):
    """Letter-like images as an npz: the glyphs of Pillow's bundled font at random sizes,
    offsets and slants, with noise (a stand-in for EMNIST letters / notMNIST)."""
    rng = np.random.default_rng(seed)
    fonts = [ImageFont.load_default(size=s) for s in range(size // 2 + 2, size - 1)]

    def glyph(ch):
        img = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(img)
        font = fonts[rng.integers(len(fonts))]
        left, top, right, bottom = d.textbbox((0, 0), ch, font=font)
        x = (size - (right - left)) / 2 - left + rng.integers(-1, 2)
        y = (size - (bottom - top)) / 2 - top + rng.integers(-1, 2)
        d.text((x, y), ch, fill=int(rng.integers(170, 256)), font=font)
        img = img.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
        a = np.asarray(img, dtype=np.float32) + rng.normal(0, 10, (size, size))
        return np.clip(a, 0, 255).astype(np.uint8)

    def split(n):
        y = np.repeat(np.arange(len(letters)), n)
        return np.stack([glyph(letters[k]) for k in y]), y

    (xtr, ytr), (xte, yte) = split(per_class), split(test_per_class)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


SHAPES = {"disc": (220, 60, 60), "square": (60, 200, 60), "triangle": (70, 90, 230)}


def make_shapes_folder(root, size=64, per_class=8, test_per_class=4, seed=0):
    """folder:ROOT (created when missing) with train/<class>/*.png and test/<class>/*.png:
    a coloured shape (disc, square, triangle) at a random place and scale on noise."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for name, colour in SHAPES.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                bg = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
                img = Image.fromarray(bg)
                d = ImageDraw.Draw(img)
                r = int(rng.integers(size // 6, size // 3))
                cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
                box = (cx - r, cy - r, cx + r, cy + r)
                tint = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in colour)
                if name == "disc":
                    d.ellipse(box, fill=tint)
                elif name == "square":
                    d.rectangle(box, fill=tint)
                else:
                    d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=tint)
                img.save(root / split / name / f"{i:03d}.png")
    return root


def pretrained_elsewhere(shapes, path):
    """A plain4 'pretrained' on another task: two of the three classes, at 32 px, with
    ImageNet normalisation (as torchvision's weights are), saved as a state_dict."""

    ds = load_dataset(f"folder:{shapes}", image_size=32)
    keep = ds.y_train < 2
    other = replace(
        ds,
        x_train=ds.x_train[keep],
        y_train=ds.y_train[keep],
        num_classes=2,
        mean=IMAGENET["mean"],
        std=IMAGENET["std"],
        fingerprint="pretraining",
    )
    make = lambda: models.create_model_from_name("plain4", 2, (3, 32, 32))  # noqa: E731
    # trained on ImageNet-normalised input, as torchvision's weights are: these statistics
    # stand in for the training part's own (what DeviceData normalises with otherwise)
    other.__dict__["_stats"] = {(0.2, 0): (tuple(IMAGENET["mean"]), tuple(IMAGENET["std"]))}
    cfg = TrainConfig(epochs=3, batch_size=8, warmup_epochs=0)  # its recipe before issue 13
    res = train_hop(make, DeviceData(other, "cpu", 0.2), cfg)
    torch.save(res.state, path)
    return path


class _FixedInput(torch.nn.Module):
    """A net trained on our normalisation, taking (x/255 - mean)/std input instead."""

    def __init__(self, net, data_mean: float, data_std: float, mean: float, std: float):
        super().__init__()
        self.net = net
        self.a = (std / data_std, (mean - data_mean) / data_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.a[0] + self.a[1])


def make_digits_teacher(path, epochs: int = 4, mean: float = 0.5, std: float = 0.25):
    """A plain6 trained `epochs` on digits, saved as TorchScript expecting grey pixels
    normalised (x/255 - mean)/std (own_teacher_digits' teacher_input)."""

    ds = load_dataset("digits")
    make = lambda: models.create_model_from_name("plain6", 10, ds.input_shape)  # noqa: E731
    data = DeviceData(ds, "cpu")
    res = train_hop(make, data, TrainConfig(epochs=epochs, batch_size=64))
    net = make()
    net.load_state_dict(res.state)
    # the statistics it was trained with (the training part of the split)
    module = _FixedInput(net.eval(), data.mean[0], data.std[0], mean, std).eval()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(module).save(str(path))
    return path


def make_example_data(root="data") -> dict:
    """Everything the example spaces read from `root` (created when missing):
    letters.npz, my_images/, pretrained_plain4.pt and digits_teacher.pt."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = {
        "letters": make_letters(root / "letters.npz", per_class=60, test_per_class=20, size=28),
        "images": make_shapes_folder(root / "my_images", size=64, per_class=30, test_per_class=10),
    }
    out["pretrained"] = pretrained_elsewhere(out["images"], root / "pretrained_plain4.pt")
    out["digits_teacher"] = make_digits_teacher(root / "digits_teacher.pt")
    return out
