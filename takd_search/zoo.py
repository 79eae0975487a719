"""Families over torchvision and timm architectures, registered only where the package
imports (plugins.py loads this module on the first model name it does not know).

    tvresnet18, 34, 50, 101, 152    torchvision's ImageNet ResNets (e.g. ResNet-50 ->
                                    ResNet-18 TAs between a big teacher and a small student)
    timmresnet18, 26, 34, 50, 101   timm's ResNets
    timmvitDxE                      timm's VisionTransformer: D blocks of width E
                                    (E/64 heads), patches sized to the input; e.g. vit4x192

Every model is built without pretrained weights (a TA or student is trained by the
search; a teacher file of your own is models.teacher_file), for `num_classes` outputs and
the data's channels and size; images only, not 1-D signals. torchvision wheels on the
package index are CUDA builds that fail to import next to a CPU torch (a RuntimeError,
not an ImportError): any failure leaves the family out, with the reason noted for the
'unknown family' message.
"""

from __future__ import annotations

import math
import re

from torch import nn

from takd_search import plugins
from takd_search.errors import first_line
from takd_search.models import ModelError, register_model

TV_DEPTHS = (18, 34, 50, 101, 152)
TIMM_RESNET_DEPTHS = (18, 26, 34, 50, 101)
VIT_MAX_DEPTH = 24
VIT_MAX_WIDTH = 1536


def _optional(package: str, families: str):
    """The package's module, or None after noting why it gave no families here."""
    try:
        import importlib

        return importlib.import_module(package)
    except Exception as e:  # ImportError, or torchvision's RuntimeError next to a CPU torch
        plugins.note_unavailable(
            package, f"{families} need {package} ({type(e).__name__}: {first_line(e)})"
        )
        return None


def _image(family: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ModelError(
            f"{family} takes images (channels, height, width), not 1-D signals "
            f"{input_shape}: use plain, resnet or mlp for signals"
        )
    return input_shape


def _stem_for(net: nn.Module, channels: int) -> nn.Module:
    """An ImageNet ResNet's first conv for `channels` input channels (fresh weights)."""
    old = net.conv1
    if old.in_channels != channels:
        net.conv1 = nn.Conv2d(
            channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False
        )
    return net


def register_torchvision() -> bool:
    tv = _optional("torchvision", "tvresnet models")
    if tv is None:
        return False

    @register_model("tvresnet", TV_DEPTHS)
    def tvresnet(depth: int, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        """torchvision.models.resnet{depth}(weights=None), its stem for the data's channels."""
        c, _, _ = _image("tvresnet", input_shape)
        net = getattr(tv.models, f"resnet{depth}")(weights=None, num_classes=num_classes)
        return _stem_for(net, c)

    return True


def _vit_token(token: str) -> str | None:
    m = re.fullmatch(r"([0-9]+)x([0-9]+)", token.strip().lower())
    if m is None:
        return None
    depth, width = int(m.group(1)), int(m.group(2))
    if not (1 <= depth <= VIT_MAX_DEPTH and 64 <= width <= VIT_MAX_WIDTH and width % 64 == 0):
        return None
    return f"{depth}x{width}"


def register_timm() -> bool:
    timm = _optional("timm", "timmresnet and timmvit models")
    if timm is None:
        return False

    @register_model("timmresnet", TIMM_RESNET_DEPTHS)
    def timmresnet(depth: int, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        """timm.create_model(f'resnet{depth}', pretrained=False) for the data's channels."""
        c, _, _ = _image("timmresnet", input_shape)
        return timm.create_model(
            f"resnet{depth}", pretrained=False, num_classes=num_classes, in_chans=c
        )

    @register_model(
        "timmvit",
        None,
        parse_depth=_vit_token,
        examples=("2x128", "4x192", "6x384", "12x768"),
        syntax=f"DxE (D blocks of width E, a multiple of 64; 1<=D<={VIT_MAX_DEPTH})",
    )
    def timmvit(depth: str, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        """A VisionTransformer of D blocks of width E (E/64 heads), about 8x8 patches
        of the input whatever its size; no pretrained weights."""
        from timm.models.vision_transformer import VisionTransformer

        c, h, w = _image("timmvit", input_shape)
        blocks, width = (int(x) for x in depth.split("x"))
        patch = max(1, math.gcd(h, w) // 8)
        return VisionTransformer(
            img_size=(h, w),
            patch_size=patch,
            in_chans=c,
            num_classes=num_classes,
            embed_dim=width,
            depth=blocks,
            num_heads=width // 64,
        )

    return True


register_torchvision()
register_timm()
