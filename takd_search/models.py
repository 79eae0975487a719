"""Model zoo: TAKD's plain CNNs, CIFAR ResNets and MLPs behind one registry.

A model is named by family and depth: `plain10`, `resnet20`, `mlp2x800` (canonical names;
`vgg` is an alias of `plain`, names are case-insensitive). Each family registers one builder
with `register_model`; `create_model` and `create_model_from_name` look it up, so the rest of
the project never imports a model class.

Every model takes a normalised float tensor [B, C, H, W] of any channel count and image size
and returns logits [B, num_classes]. All are TorchScript-scriptable and accept
`memory_format=torch.channels_last`. Given a 1-D input_shape (C, L), plain and resnet build
the same books with Conv1d/BatchNorm1d/MaxPool1d and take [B, C, L] signals; mlp flattens
whatever it gets.

Families from outside the package (a user's module, an installed package's entry point,
the bundled torchvision/timm ones in zoo.py) register the same way; plugins.py imports
them, on first need (docs/families.md).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from takd_search import plugins
from takd_search.errors import UserError

__all__ = [
    "ModelError",
    "count_params",
    "create_model",
    "create_model_from_name",
    "families",
    "list_models",
    "load_families",
    "model_name",
    "model_size",
    "parse_model_name",
    "register_model",
]


class ModelError(UserError):
    """An unknown family, depth or model name; the one-line message lists the valid ones."""


# ---- registry ---------------------------------------------------------------------------

Builder = Callable[[object, int, tuple[int, ...]], nn.Module]


@dataclass(frozen=True)
class _Family:
    name: str
    builder: Builder
    depths: tuple | None  # None: an open family, depth tokens checked by parse_depth
    aliases: tuple[str, ...]
    parse_depth: Callable[[str], str | None] | None  # token -> canonical token, None if bad
    examples: tuple[str, ...]  # depth tokens listed for an open family
    syntax: str  # how an open family's name is spelled, for error messages


_REGISTRY: dict[str, _Family] = {}
_ALIASES: dict[str, str] = {}  # every accepted family spelling -> canonical family


def register_model(
    family: str,
    depths: tuple | None,
    aliases: tuple[str, ...] = (),
    *,
    parse_depth: Callable[[str], str | None] | None = None,
    examples: tuple[str, ...] = (),
    syntax: str = "",
):
    """Register `fn(depth, num_classes, input_shape) -> nn.Module` as the builder of `family`.

    depths: the valid depths (ints), or None for an open family whose depth token is
    normalised by `parse_depth` (returns the canonical token, or None when malformed);
    `examples` are the tokens `families`/`list_models` show and `syntax` is the spelling
    rule quoted in error messages. The builder gets an int depth for a closed family and
    the canonical token for an open one.
    """
    family = family.lower()
    if depths is None and parse_depth is None:
        raise TypeError(f"open family {family!r} needs parse_depth")
    for spelling in (family, *aliases):
        if not re.fullmatch(r"[a-z_]+", spelling.lower()):
            # a model name is the family's letters, then a depth token starting with a digit
            raise ValueError(f"family name {spelling!r}: use letters and _ only (e.g. tiny_vit)")

    def decorate(fn: Builder) -> Builder:
        for spelling in (family, *aliases):
            other = _REGISTRY.get(_ALIASES.get(spelling.lower(), ""))
            if other is not None and _where(other.builder) != _where(fn):
                raise ValueError(
                    f"model family {spelling!r} is already registered by "
                    f"{_where(other.builder)}: register yours under another name"
                )
        _REGISTRY[family] = _Family(
            family, fn, depths, tuple(aliases), parse_depth, tuple(examples), syntax
        )
        for spelling in (family, *aliases):
            _ALIASES[spelling.lower()] = family
        return fn

    return decorate


def _where(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def load_families(specs, where: str = "families") -> list[str]:
    """Import the modules `specs` names (`module` or `module:function`), which register
    families with register_model; a FamilyImportError (one line) when one fails."""
    return plugins.load(specs, where)


def _known(spelling: str) -> str | None:
    """The canonical family of a spelling; on a miss, families from outside the package
    are loaded once ($TAKD_FAMILIES, entry points, torchvision/timm) and it is looked up
    again."""
    key = str(spelling).strip().lower()
    if key not in _ALIASES:
        plugins.autoload()
    return _ALIASES.get(key)


def _choices() -> str:
    """The valid names of every family, one line: what every ModelError ends with."""
    parts = []
    for fam in _REGISTRY.values():
        alias = f" (alias {', '.join(fam.aliases)})" if fam.aliases else ""
        if fam.depths is not None:
            parts.append(f"{fam.name} depths are {', '.join(map(str, fam.depths))}{alias}")
        else:
            example = fam.examples[min(1, len(fam.examples) - 1)] if fam.examples else ""
            parts.append(f"{fam.name} is {fam.name}{fam.syntax}{alias}, e.g. {fam.name}{example}")
    missing = "; ".join(plugins.unavailable().values())
    own = "; your own family: name its module in models.families or --families"
    return "; ".join(parts) + own + (f" (not loaded here: {missing})" if missing else "")


def _family(family: str) -> _Family:
    name = _known(family)
    if name is None:
        raise ModelError(f"unknown model family {family!r}: {_choices()}")
    return _REGISTRY[name]


def _depth(fam: _Family, depth, what: str):
    """Canonical depth of `fam`: an int for a closed family, a token for an open one."""
    token = str(depth).strip().lower()
    if fam.depths is None:
        canon = fam.parse_depth(token)
        if canon is None:
            raise ModelError(f"unknown model {what!r}: {_choices()}")
        return canon
    # int('٣') and int(' 4') succeed; only plain ASCII digits are a depth here.
    if re.fullmatch(r"[0-9]+", token) and int(token) in fam.depths:
        return int(token)
    raise ModelError(f"unknown model {what!r}: {_choices()}")


def _check_io(num_classes: int, input_shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ModelError(
            f"input_shape {tuple(input_shape)!r} must be (channels, height, width) for images "
            "or (channels, length) for 1-D signals"
        )
    if int(num_classes) < 1:
        raise ModelError(f"num_classes {num_classes!r} must be at least 1")
    return shape


# ---- public API -------------------------------------------------------------------------


def create_model(family: str, depth, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Build `family` at `depth` for `num_classes` classes on inputs of `input_shape`: (C, H, W)
    for images, (C, L) for 1-D signals (the 1-D variant of the family).

    depth: an int or numeric str for plain/resnet, "LxW" for mlp. Raises ModelError when
    the family or depth is unknown.
    """
    fam = _family(family)
    d = _depth(fam, depth, f"{family}{depth}")
    return fam.builder(d, int(num_classes), _check_io(num_classes, input_shape))


def parse_model_name(name: str) -> tuple[str, str]:
    """Split a model name into canonical (family, depth token).

    'vgg10' -> ('plain', '10'), 'ResNet110 ' -> ('resnet', '110'), 'mlp2x1200' -> ('mlp',
    '2x1200'). Case-insensitive, surrounding whitespace ignored; the family and depth are written
    together. Raises ModelError, listing the valid names, when the name is not a model.
    """
    text = str(name).strip().lower()
    m = re.fullmatch(r"([a-z_]+)(\S+)", text)
    if m is None or _known(m.group(1)) is None:
        raise ModelError(f"unknown model {name!r}: {_choices()}")
    fam = _REGISTRY[_ALIASES[m.group(1)]]
    return fam.name, str(_depth(fam, m.group(2), name))


def model_name(family: str, depth) -> str:
    """Canonical name of a family and depth: ('vgg', 4) -> 'plain4'."""
    fam = _family(family)
    return f"{fam.name}{_depth(fam, depth, f'{family}{depth}')}"


def create_model_from_name(name: str, num_classes: int, input_shape) -> nn.Module:
    """create_model for a name such as 'plain10', 'vgg4', 'resnet20' or 'mlp2x800'."""
    family, depth = parse_model_name(name)
    return create_model(family, depth, num_classes, input_shape)


def families() -> dict[str, tuple]:
    """Canonical family -> its depths (examples of LxW tokens for the open mlp family)."""
    plugins.autoload()
    return {f.name: f.depths if f.depths is not None else f.examples for f in _REGISTRY.values()}


def list_models(family: str | None = None) -> list[str]:
    """Canonical names of every model (mlp: the examples), or of one family (alias ok)."""
    plugins.autoload()
    fams = [_family(family)] if family is not None else list(_REGISTRY.values())
    return [
        f"{f.name}{d}" for f in fams for d in (f.depths if f.depths is not None else f.examples)
    ]


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm affine included, running stats not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_size(name: str, num_classes: int, input_shape) -> int:
    """Trainable parameter count of model `name`, built without allocating weights.

    Cached: path checks and search spaces compare sizes many times per run.
    """
    family, depth = parse_model_name(name)
    return _model_size(f"{family}{depth}", int(num_classes), tuple(int(s) for s in input_shape))


@functools.lru_cache(maxsize=1024)
def _model_size(name: str, num_classes: int, input_shape: tuple[int, ...]) -> int:
    # The meta device gives every tensor a shape but no storage: resnet110 or mlp16x16384
    # are sized in milliseconds and no memory.
    with torch.device("meta"):
        return count_params(create_model_from_name(name, num_classes, input_shape))


# ---- plain: TAKD's VGG-like CNN -----------------------------------------------------------

# TAKD (Mirzadeh et al., 2020) plain CNNs, depth = number of conv layers. "C16": 3x3 conv of
# 16 channels + BN + ReLU; "M": 2x2 max pool; "FC64": linear layer of 64 units. The last FC
# is the classifier: its width is replaced by the real class count. Parameter counts are at
# 3x32x32 with 10 and 100 classes.
PLAIN_BOOKS: dict[str, dict[int, str]] = {
    "cifar10": {
        2: "C16 M C16 M FC10",  # 13,082
        4: "C16 C16 M C32 C32 M FC10",  # 37,338
        6: "C16 C16 M C32 C32 M C64 C64 M FC10",  # 82,778
        8: "C16 C16 M C32 C32 M C64 C64 M C128 C128 M FC64 FC10",  # 327,962
        10: "C32 C32 M C64 C64 M C128 C128 M C256 C256 C256 C256 M FC128 FC10",  # 2,487,850
    },
    "cifar100": {
        2: "C32 M C32 M FC100",  # 215,172
        4: "C32 C32 M C64 C64 M FC100",  # 475,652
        6: "C32 C32 M C64 C64 M C128 C128 FC100",  # 1,107,204 (no pool before the FC)
        8: "C32 C32 M C64 C64 M C128 C128 M C256 C256 M FC64 FC100",  # 1,246,276
        10: "C32 C32 M C64 C64 M C128 C128 M C256 C256 C256 C256 M FC512 FC100",  # 2,931,460
    },
}


def _layers(dims: int):
    """(Conv, BatchNorm, MaxPool) classes for 2-D images or 1-D signals."""
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d
    return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d


class PlainCNN(nn.Module):
    """Conv feature stack, flatten, fully connected classifier (built from a book string).

    input_shape (C, H, W) builds 3x3 Conv2d and 2x2 MaxPool2d; (C, L) builds the same book
    with 3-tap Conv1d and MaxPool1d(2), for 1-D signals."""

    def __init__(self, book: str, num_classes: int, input_shape: tuple[int, ...]):
        super().__init__()
        conv, norm, pool = _layers(len(input_shape) - 1)
        # a signal is a one-pixel-high image for the size bookkeeping below
        c, h, w = input_shape if len(input_shape) == 3 else (input_shape[0], 0, input_shape[1])
        one_d = len(input_shape) == 2
        features: list[nn.Module] = []
        widths: list[int] = []
        for tok in book.split():
            if tok.startswith("FC"):
                widths.append(int(tok[2:]))
            elif widths:
                raise ValueError(f"book {book!r}: {tok} after an FC layer")
            elif tok == "M":
                # Deep books run out of resolution on small images (digits are 8x8): a pool
                # on a side < 2 would give an empty map, so it is skipped instead.
                if (w if one_d else min(h, w)) < 2:
                    features.append(nn.Identity())
                else:
                    features.append(pool(2, 2))
                    h, w = h // 2, w // 2
            elif tok.startswith("C"):
                n = int(tok[1:])
                features += [conv(c, n, 3, padding=1), norm(n), nn.ReLU(True)]
                c = n  # padding=1 keeps h and w
            else:
                raise ValueError(f"book {book!r}: unknown layer {tok!r}")
        widths[-1] = num_classes
        fc: list[nn.Module] = []
        fan_in = c * w if one_d else c * h * w  # flattened feature map
        for i, n in enumerate(widths):
            if i:
                fc.append(nn.ReLU(True))
            fc.append(nn.Linear(fan_in, n))
            fan_in = n
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(*fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("plain", (2, 4, 6, 8, 10), aliases=("vgg",))
def plain(depth: int, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """TAKD plain CNN; the CIFAR-10 book up to 10 classes, the CIFAR-100 book above; 1-D
    layers for a (C, L) input_shape."""
    book = PLAIN_BOOKS["cifar10" if num_classes <= 10 else "cifar100"][depth]
    return PlainCNN(book, num_classes, input_shape)


# ---- resnet: CIFAR ResNet (He et al., 2016) -----------------------------------------------


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU; projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, dims: int = 2):
        super().__init__()
        conv, norm, _ = _layers(dims)
        self.conv1 = conv(c_in, c_out, 3, stride, padding=1, bias=False)
        self.bn1 = norm(c_out)
        self.conv2 = conv(c_out, c_out, 3, 1, padding=1, bias=False)
        self.bn2 = norm(c_out)
        self.relu = nn.ReLU(True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:  # option B: 1x1 conv + BN projection
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride, bias=False), norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem of 16 channels, three stages of n blocks (16/32/64), global average pool, FC.

    dims=1: the same network with 3-tap Conv1d and BatchNorm1d, for [B, C, L] signals."""

    def __init__(self, blocks: int, num_classes: int, in_channels: int, dims: int = 2):
        super().__init__()
        conv, norm, _ = _layers(dims)
        self.stem = nn.Sequential(
            conv(in_channels, 16, 3, padding=1, bias=False), norm(16), nn.ReLU(True)
        )
        stages, c = [], 16
        for i, width in enumerate((16, 32, 64)):
            stride = 1 if i == 0 else 2  # halve the map entering stages 2 and 3
            stage = [BasicBlock(c, width, stride, dims)]
            stage += [BasicBlock(width, width, 1, dims) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            c = width
        self.layers = nn.Sequential(*stages)
        # Adaptive pooling: any image size (or signal length) gives a 64-vector.
        self.pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("resnet", (8, 14, 20, 26, 32, 44, 56, 110))
def resnet(depth: int, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """CIFAR ResNet-depth: depth = 6n + 2 with n basic blocks per stage; 1-D for (C, L)."""
    return CifarResNet((depth - 2) // 6, num_classes, input_shape[0], len(input_shape) - 1)


# ---- mlp: fully connected nets (Hinton et al., 2015: teacher mlp2x1200, student mlp2x800) --

MLP_MAX_LAYERS = 16
MLP_MAX_WIDTH = 16384


def _mlp_token(token: str) -> str | None:
    """'2x800' -> '2x800' (L hidden layers x W units); None when malformed or out of range."""
    m = re.fullmatch(r"([0-9]+)x([0-9]+)", token.strip().lower())
    if m is None:
        return None
    layers, width = int(m.group(1)), int(m.group(2))
    if not (1 <= layers <= MLP_MAX_LAYERS and 1 <= width <= MLP_MAX_WIDTH):
        return None
    return f"{layers}x{width}"


@register_model(
    "mlp",
    None,
    parse_depth=_mlp_token,
    examples=("1x800", "2x800", "2x1200", "3x1200"),
    syntax=f"LxW (L hidden layers of W units, 1<=L<={MLP_MAX_LAYERS}, 1<=W<={MLP_MAX_WIDTH})",
)
def mlp(depth: str, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Flatten, L x (Linear(W) + ReLU), Linear(W, num_classes); images or 1-D signals."""
    layers, width = (int(s) for s in depth.split("x"))
    mods: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for _ in range(layers):
        mods += [nn.Linear(fan_in, width), nn.ReLU(True)]
        fan_in = width
    mods.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*mods)
