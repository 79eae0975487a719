"""Model zoo: exact parameter counts, shapes on small and CIFAR inputs, names and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from takd_search import models
from takd_search.errors import UserError
from takd_search.models import ModelError

CIFAR = (3, 32, 32)
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]  # digits, MNIST, CIFAR

# Parameter counts at 3x32x32 (BatchNorm affine included): (10 classes, 100 classes).
PARAMS = {
    "plain2": (13_082, 215_172),
    "plain4": (37_338, 475_652),
    "plain6": (82_778, 1_107_204),
    "plain8": (327_962, 1_246_276),
    "plain10": (2_487_850, 2_931_460),
    "resnet8": (78_042, 83_892),
    "resnet14": (175_258, 181_108),
    "resnet20": (272_474, 278_324),
    "resnet26": (369_690, 375_540),
    "resnet32": (466_906, 472_756),
    "resnet44": (661_338, 667_188),
    "resnet56": (855_770, 861_620),
    "resnet110": (1_730_714, 1_736_564),
}
PLAIN_RESNET = list(PARAMS)  # every plain and resnet depth


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize("book", [0, 1], ids=["cifar10", "cifar100"])
def test_param_counts_exact(name, book):
    num_classes = (10, 100)[book]
    model = models.create_model_from_name(name, num_classes, CIFAR)
    assert models.count_params(model) == PARAMS[name][book]


def test_hinton_student_param_count():
    # 784*800+800 + 800*800+800 + 800*10+10
    model = models.create_model_from_name("mlp2x800", 10, (1, 28, 28))
    assert models.count_params(model) == 1_276_810
    assert models.model_size("mlp2x800", 10, (1, 28, 28)) == 1_276_810


def test_count_params_skips_frozen():
    model = models.create_model("plain", 2, 10, CIFAR)
    model.classifier.requires_grad_(False)
    assert models.count_params(model) == 13_082 - (16 * 8 * 8 * 10 + 10)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", PLAIN_RESNET + ["mlp2x64"])
def test_forward_shape(name, shape):
    model = models.create_model_from_name(name, 10, shape).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("depth", [2, 4, 6, 8, 10])
def test_plain_cifar100_book_on_digits(depth):
    model = models.create_model("plain", depth, 100, (1, 8, 8)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 100)


def test_plain_pool_on_small_map_becomes_identity():
    # plain10 pools 4 times; on 8x8 the last pool sees 1x1 and is skipped.
    model = models.create_model("plain", 10, 10, (1, 8, 8))
    pools = [m for m in model.features if isinstance(m, (nn.MaxPool2d, nn.Identity))]
    assert [type(m) for m in pools] == [nn.MaxPool2d] * 3 + [nn.Identity]
    assert model.classifier[0].in_features == 256  # 256 channels x 1 x 1
    # On CIFAR, 4 pools: 32 -> 2, so the first FC sees 256 x 2 x 2.
    assert models.create_model("plain", 10, 10, CIFAR).classifier[0].in_features == 1024


def test_plain_layers_follow_the_book():
    model = models.create_model("plain", 8, 10, CIFAR)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 128, 128]
    assert all(c.bias is not None and c.kernel_size == (3, 3) for c in convs)
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(128 * 2 * 2, 64), (64, 10)]
    # Class counts other than 10/100 only change the classifier width.
    assert models.create_model("plain", 8, 7, CIFAR).classifier[-1].out_features == 7


def test_resnet_structure():
    model = models.create_model("resnet", 20, 10, (1, 28, 28))
    assert model.stem[0].in_channels == 1
    assert [len(stage) for stage in model.layers] == [3, 3, 3]
    firsts = [stage[0] for stage in model.layers]
    assert isinstance(firsts[0].shortcut, nn.Identity)
    assert all(isinstance(b.shortcut, nn.Sequential) for b in firsts[1:])
    assert [b.conv1.stride for b in firsts] == [(1, 1), (2, 2), (2, 2)]


@pytest.mark.parametrize("name", ["plain10", "resnet8", "mlp2x32"])
def test_torchscript_and_channels_last(name):
    model = models.create_model_from_name(name, 10, CIFAR).eval()
    x = torch.randn(2, *CIFAR)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(scripted(x), want)
        cl = model.to(memory_format=torch.channels_last)
        got = cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "text,want",
    [
        ("plain10", ("plain", "10")),
        ("vgg10", ("plain", "10")),
        ("  VGG4 ", ("plain", "4")),
        ("ResNet110", ("resnet", "110")),
        ("resnet08", ("resnet", "8")),
        ("mlp2x1200", ("mlp", "2x1200")),
        ("MLP2X800", ("mlp", "2x800")),
        ("mlp16x16384", ("mlp", "16x16384")),
    ],
)
def test_parse_model_name(text, want):
    assert models.parse_model_name(text) == want


def test_model_name_and_create_model_accept_aliases_and_str_depths():
    assert models.model_name("vgg", 4) == "plain4"
    assert models.model_name("Plain", "10") == "plain10"
    assert models.model_name("mlp", "3X100") == "mlp3x100"
    a = models.create_model("vgg", "6", 10, CIFAR)
    b = models.create_model("plain", 6, 10, CIFAR)
    assert models.count_params(a) == models.count_params(b) == 82_778


PLAIN_DEPTHS = "plain depths are 2, 4, 6, 8, 10 (alias vgg)"
RESNET_DEPTHS = "resnet depths are 8, 14, 20, 26, 32, 44, 56, 110"


@pytest.mark.parametrize(
    "name",
    [
        "plain3",
        "vgg12",
        "resnet18",
        "conv10",
        "resnet",
        "10",
        "",
        "plain 10",
        "plain-4",
        "mlp2x",
        "mlpx800",
        "mlp0x800",
        "mlp17x10",
        "mlp2x0",
        "mlp2x16385",
        "mlp2x8x8",
    ],
)
def test_bad_names_raise_one_line_model_error_listing_choices(name):
    with pytest.raises(ModelError) as e:
        models.parse_model_name(name)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"unknown model {name!r}: ")
    assert PLAIN_DEPTHS in msg and RESNET_DEPTHS in msg
    assert "mlpLxW" in msg and "e.g. mlp2x800" in msg


def test_model_error_is_a_user_error():
    assert issubclass(ModelError, UserError) and issubclass(ModelError, ValueError)


@pytest.mark.parametrize(
    "family,depth",
    [("plain", 3), ("plain", "ten"), ("resnet", 18), ("mlp", 2), ("mlp", "2x"), ("cnn", 4)],
)
def test_create_model_rejects_unknown_family_or_depth(family, depth):
    with pytest.raises(ModelError, match="plain depths are 2, 4, 6, 8, 10") as e:
        models.create_model(family, depth, 10, CIFAR)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match=RESNET_DEPTHS):
        models.model_name(family, depth)


def test_create_model_rejects_bad_io():
    # (C, L) is a 1-D signal shape since MNIST-1D; one or four numbers are neither
    for shape in ((32,), (1, 3, 32, 32), (3, 0, 32)):
        with pytest.raises(ModelError, match="input_shape"):
            models.create_model("plain", 2, 10, shape)
    with pytest.raises(ModelError, match="num_classes"):
        models.create_model("plain", 2, 0, CIFAR)


def test_families_and_list_models():
    fams = models.families()
    built_in = {k: fams[k] for k in ("plain", "resnet", "mlp")}
    assert built_in == {
        "plain": (2, 4, 6, 8, 10),
        "resnet": (8, 14, 20, 26, 32, 44, 56, 110),
        "mlp": ("1x800", "2x800", "2x1200", "3x1200"),
    }
    # the others come from installed packages (torchvision, timm: takd_search.zoo)
    assert set(fams) - set(built_in) <= {"tvresnet", "timmresnet", "timmvit"}
    assert models.list_models("plain") == ["plain2", "plain4", "plain6", "plain8", "plain10"]
    assert models.list_models("vgg") == models.list_models("plain")
    assert models.list_models("resnet")[-1] == "resnet110"
    assert models.list_models("mlp") == ["mlp1x800", "mlp2x800", "mlp2x1200", "mlp3x1200"]
    assert models.list_models()[:18] == [
        *models.list_models("plain"),
        *models.list_models("resnet"),
        *models.list_models("mlp"),
    ]
    with pytest.raises(ModelError, match="unknown model family 'cnn'"):
        models.list_models("cnn")


@pytest.mark.parametrize(
    "name,num_classes,shape",
    [
        ("plain10", 100, CIFAR),
        ("vgg4", 10, (1, 8, 8)),
        ("resnet110", 10, CIFAR),
        ("mlp2x1200", 10, (1, 28, 28)),
    ],
)
def test_model_size_matches_a_built_model(name, num_classes, shape):
    built = models.count_params(models.create_model_from_name(name, num_classes, shape))
    assert models.model_size(name, num_classes, list(shape)) == built


def test_model_size_is_cached_and_canonical():
    models._model_size.cache_clear()
    first = models.model_size("vgg8", 10, (3, 32, 32))
    again = models.model_size(" PLAIN8", 10, [3, 32, 32])
    assert first == again == 327_962
    info = models._model_size.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_register_model_adds_a_family():
    @models.register_model("tiny", (1,), aliases=("toy",))
    def tiny(depth, num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))

    try:
        assert models.parse_model_name("toy1") == ("tiny", "1")
        assert models.count_params(models.create_model_from_name("tiny1", 3, (2, 1, 1))) == 9
        assert "tiny depths are 1 (alias toy)" in str(
            pytest.raises(ModelError, models.parse_model_name, "tiny2").value
        )
    finally:
        del models._REGISTRY["tiny"]
        del models._ALIASES["tiny"], models._ALIASES["toy"]
    assert "tiny1" not in models.list_models()
