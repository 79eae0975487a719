"""Model families of your own (issue 23): a module outside the package registers a family,
the space file or --families names it, and it mixes with the built-in families in one
path, through parameter counts, the path checks, training, the heuristic and export.
The bundled torchvision/timm families register only where their package imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from takd_search import baselines, models, plugins
from takd_search.config.files import SpecError, load_space
from takd_search.engine.path import check_shrinking, parse_path

ROOT = Path(__file__).resolve().parent.parent

# A user's module: a depth-parameterised small CNN, `tinycnnD` = D conv layers of 16
# channels, flattened into a linear head. Not importable from the package.
TINY = """
import torch
from torch import nn
from takd_search.models import register_model


@register_model("tinycnn", (1, 2, 3))
def tinycnn(depth, num_classes, input_shape):
    c, h, w = input_shape
    layers = []
    for _ in range(depth):
        layers += [nn.Conv2d(c, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()]
        c = 16
    layers += [nn.Flatten(), nn.Linear(16 * h * w, num_classes)]
    return nn.Sequential(*layers)
"""


def _params(depth: int, c: int = 1, k: int = 10, side: int = 8) -> int:
    """tinycnn's parameter count by hand: convs (+bias), BN affine, the head."""
    n = 0
    for _ in range(depth):
        n += c * 16 * 9 + 16 + 2 * 16
        c = 16
    return n + 16 * side * side * k + k


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """`userfams` on sys.path (a folder outside the package), as a user's module is."""
    folder = tmp_path / "mycode"
    folder.mkdir()
    (folder / "userfams.py").write_text(textwrap.dedent(TINY))
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    # the registry is process-wide: leave it as the other tests expect it
    models._REGISTRY.pop("tinycnn", None)
    models._ALIASES.pop("tinycnn", None)
    plugins._loaded.pop("userfams", None)
    sys.modules.pop("userfams", None)


def test_a_space_file_names_a_family_module_and_mixes_it_with_plain(user_module, tmp_path):
    space_file = tmp_path / "mine.yaml"
    space_file.write_text(
        "models:\n  families: [userfams]\n  teacher: plain6\n  student: tinycnn1\n"
        "  candidates: [plain4, tinycnn3, tinycnn2]\n"
    )
    space, _, _ = load_space(str(space_file))
    assert space.model_names() == ("plain6", "tinycnn1", ["plain4", "tinycnn3", "tinycnn2"])
    # parameter counts of the registered family, on digits' 1x8x8 input
    assert (
        [models.model_size(f"tinycnn{d}", 10, (1, 8, 8)) for d in (1, 2, 3)]
        == [
            _params(1),
            _params(2),
            _params(3),
        ]
        == [10_442, 12_794, 15_146]
    )
    # its sizes order the path checks: a bigger tinycnn cannot teach a smaller one's parent
    names = parse_path("plain6>tinycnn3>tinycnn1")
    check_shrinking(names, 10, (1, 8, 8))
    with pytest.raises(Exception, match="no fewer parameters"):
        check_shrinking(parse_path("tinycnn1>tinycnn3"), 10, (1, 8, 8))
    # the heuristic breaks a tie towards the smaller TA by these counts
    sizes = {m: models.model_size(m, 10, (1, 8, 8)) for m in ("tinycnn2", "tinycnn3")}
    acc = {"plain6": 0.9, "tinycnn1": 0.5, "tinycnn3": 0.75, "tinycnn2": 0.65}
    assert baselines.heuristic_ta(acc, "plain6", "tinycnn1", ["tinycnn3", "tinycnn2"], sizes) == (
        "tinycnn2"
    )


def test_a_module_that_does_not_import_is_one_line(tmp_path):
    space_file = tmp_path / "bad.yaml"
    space_file.write_text("models:\n  families: [no_such_module_x]\n  teacher: 6\n  student: 2\n")
    with pytest.raises(SpecError) as e:
        load_space(str(space_file))
    (line,) = str(e.value).splitlines()
    assert "models.families: cannot load model families from 'no_such_module_x'" in line
    assert "ModuleNotFoundError" in line and "PYTHONPATH" in line


def test_a_family_cannot_take_a_built_in_name():
    with pytest.raises(ValueError, match="'plain' is already registered"):
        models.register_model("plain", (1,))(lambda d, k, s: torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="letters and _ only"):
        models.register_model("vit3d", (1,))


def test_workers_get_the_module_and_its_folder(user_module, monkeypatch):
    from takd_search.search.ray_session import worker_env

    monkeypatch.delenv(plugins.ENV, raising=False)
    models.load_families(["userfams"])
    env = worker_env()
    assert env[plugins.ENV] == "userfams"
    assert str(user_module) in env["PYTHONPATH"].split(os.pathsep)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)  # this package first
    # and `submit` ships the module's file with the job, as it ships takd_search
    assert plugins.module_paths() == [str(user_module / "userfams.py")]


@pytest.mark.slow  # a whole search or a long training: the second tier
def test_run_path_trains_a_path_through_a_family_from_outside_and_exports_it(tmp_path):
    """`takd-search run-path` on digits: plain4 -> tinycnn2 -> tinycnn1, a real (short)
    training of every hop in a fresh process, then `export` of its student, which a
    third process loads as TorchScript without the user's module."""
    folder = tmp_path / "mycode"
    folder.mkdir()
    (folder / "userfams.py").write_text(textwrap.dedent(TINY))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder)])}
    env.pop(plugins.ENV, None)

    def cli(*args, **kw):
        return subprocess.run(
            [sys.executable, "-m", "takd_search", *args],
            cwd=tmp_path,
            env={**env, **kw},
            capture_output=True,
            text=True,
            timeout=600,
        )

    r = cli(
        "run-path", "--families", "userfams", "--dataset", "digits",
        "--path", "plain4>tinycnn2>tinycnn1", "--epochs", "4",
        "--T", "4", "--alpha", "0.5", "--no-baseline", "--name", "mine", "--device", "cpu",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    chain = json.loads((tmp_path / "results" / "mine" / "chain.json").read_text())
    text = json.dumps(chain)
    assert "tinycnn2" in text and "tinycnn1" in text

    # without the module named, the family is unknown: one line that says how to name it
    r = cli("export", "results/mine", "--out", "s.pt")
    assert r.returncode == 2 and "unknown model" in r.stderr and "--families" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    # named by $TAKD_FAMILIES (as a Ray worker gets it), export builds the student, from
    # a hop store that moved since (pulled from a cluster): --store says where it is now
    (tmp_path / "results" / ".store").rename(tmp_path / "pulled-store")
    r = cli("export", "results/mine", "--out", "s.pt", TAKD_FAMILIES="userfams")
    assert r.returncode == 2 and "export --store" in r.stderr, r.stderr
    r = cli(
        "export", "results/mine", "--out", "s.pt", "--store", "pulled-store",
        TAKD_FAMILIES="userfams",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "s.json").read_text())
    assert side["model"] == "tinycnn1" and side["family"] == "tinycnn"
    assert side["params"] == _params(1) == 10_442
    net = torch.jit.load(str(tmp_path / "s.pt"))  # no userfams in this process
    assert "userfams" not in sys.modules
    out = net(torch.rand(5, 1, 8, 8))
    assert out.shape == (5, 10) and torch.isfinite(out).all()


# ---- the bundled torchvision / timm families ------------------------------------------
FAKE_TV = """
from torch import nn

class _Net(nn.Module):
    def __init__(self, width, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.fc = nn.Linear(width, num_classes)
    def forward(self, x):
        return self.fc(self.conv1(x).mean((2, 3)))

def _make(width):
    def build(weights=None, num_classes=1000):
        assert weights is None  # never pretrained unless asked
        return _Net(width, num_classes)
    return build

resnet18, resnet34, resnet50, resnet101, resnet152 = (_make(w) for w in (8, 16, 32, 64, 128))
"""


def _fresh_process(code: str, pythonpath: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *pythonpath])}
    env.pop(plugins.ENV, None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_torchvision_family_registers_where_torchvision_imports(tmp_path):
    """A stand-in torchvision (the real one is a CUDA build here): tvresnetN is built from
    torchvision.models.resnetN with weights=None and a stem for the data's channels."""
    pkg = tmp_path / "torchvision"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from torchvision import models\n")
    (pkg / "models" / "__init__.py").write_text(textwrap.dedent(FAKE_TV))
    r = _fresh_process(
        """
        from takd_search import models
        net = models.create_model_from_name("tvresnet50", 7, (1, 8, 8))
        print(net.conv1.in_channels, net.fc.out_features, models.count_params(net))
        print(models.model_size("tvresnet18", 10, (3, 32, 32)))
        print(models.parse_model_name("tvresnet18")[0] in models.families())
        """,
        [str(tmp_path)],
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "1",
        "7",
        f"{1 * 32 * 49 + 32 * 7 + 7}",
        f"{3 * 8 * 49 + 8 * 10 + 10}",
        "True",
    ]


def test_a_torchvision_that_fails_to_import_leaves_the_family_out_with_its_reason(tmp_path):
    """torchvision next to a CPU torch raises RuntimeError at import, not ImportError."""
    pkg = tmp_path / "torchvision"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n"
    )
    r = _fresh_process(
        """
        from takd_search import models
        assert "plain" in models.families() and "tvresnet" not in models.families()
        try:
            models.create_model_from_name("tvresnet18", 10, (3, 32, 32))
        except models.ModelError as e:
            print(e)
        """,
        [str(tmp_path)],
    )
    assert r.returncode == 0, r.stderr
    assert "unknown model 'tvresnet18'" in r.stdout
    assert "tvresnet models need torchvision (RuntimeError: operator torchvision::nms" in r.stdout


def test_real_timm_families_where_timm_is_installed():
    timm = pytest.importorskip("timm", exc_type=ImportError)
    assert timm is not None
    vit = models.create_model_from_name("timmvit2x128", 10, (3, 32, 32))
    assert vit(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    res = models.create_model_from_name("timmresnet18", 10, (1, 28, 28))
    assert res(torch.rand(2, 1, 28, 28)).shape == (2, 10)
