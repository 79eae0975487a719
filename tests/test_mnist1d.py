"""MNIST-1D and 1-D signals: the generator path, npz signals, 1-D models, an end-to-end run.

Everything is real: the mnist1d package's own generator (with the network cut off), real
npz files in tmp_path, real Conv1d models trained on real MNIST-1D signals, and a real Ray
run of the shipped `mnist1d_plain` space cut to 2 trials of 2 epochs.
"""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest
import torch

from takd_search import data, models
from takd_search.cli import main
from takd_search.data import DataError, load_dataset
from takd_search.data.mnist1d import _MNIST1D_VERSION, _load_mnist1d
from takd_search.engine.augment import DeviceData
from takd_search.errors import UserError


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def small():
    """2,000 MNIST-1D samples (1,600 train / 400 test), generated once for this module."""
    return _load_mnist1d(2000, 42, _no_cache_dir())


def _no_cache_dir():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="takd-mnist1d-"))


# --- the generator --------------------------------------------------------------------------


def test_generator_is_offline_deterministic_and_leaves_global_rngs_alone(tmp_path, offline):
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    a = load_dataset("mnist1d:1000", tmp_path / "a")
    # the package reseeds the global generators; the loader puts them back
    assert (random.random(), np.random.rand()) == before
    b = load_dataset("mnist1d:1000", tmp_path / "b")  # another folder: generated again
    for key in ("x_train", "y_train", "x_test", "y_test"):
        ta, tb = getattr(a, key), getattr(b, key)
        assert ta.numpy().tobytes() == tb.numpy().tobytes()
    assert a.fingerprint == b.fingerprint
    assert tuple(a.x_train.shape) == (800, 1, 40) and tuple(a.x_test.shape) == (200, 1, 40)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert a.input_shape == (1, 40) and a.is_signal and a.num_classes == 10
    assert set(a.y_train.tolist()) == set(range(10)) and a.augment == "none"
    assert a.name == "mnist1d:1000"
    # the package's generator itself, called the documented way, gives the same numbers
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = 1000, 42
    ref = make_dataset(args)
    np.testing.assert_array_equal(a.x_train[:, 0].numpy(), ref["x"].astype(np.float32))
    np.testing.assert_array_equal(a.y_test.numpy(), ref["y_test"])
    # statistics are of the signals themselves, per channel
    np.testing.assert_allclose(a.mean, [ref["x"].mean()], rtol=1e-5)
    np.testing.assert_allclose(a.std, [ref["x"].std()], rtol=1e-5)

    other = load_dataset("mnist1d:1000:7", tmp_path / "a")
    assert other.fingerprint != a.fingerprint and other.name == "mnist1d:1000:7"


def test_generated_arrays_are_cached_and_a_damaged_cache_regenerates(tmp_path, offline):
    first = load_dataset("mnist1d:500", tmp_path)
    cache = tmp_path / ".takd_cache" / f"mnist1d-v{_MNIST1D_VERSION}-500-42.pt"
    assert cache.is_file()
    # a cache hit must not call the generator
    import mnist1d.data

    def boom(*a, **k):
        raise AssertionError("generator called despite a cache")

    orig = mnist1d.data.make_dataset
    mnist1d.data.make_dataset = boom
    try:
        assert load_dataset("mnist1d:500", tmp_path).fingerprint == first.fingerprint
    finally:
        mnist1d.data.make_dataset = orig
    cache.write_bytes(b"not a torch file")
    assert load_dataset("mnist1d:500", tmp_path).fingerprint == first.fingerprint


@pytest.mark.parametrize(
    "name, msg",
    [
        ("mnist1d:abc", "write mnist1d, mnist1d:N"),
        ("mnist1d:10", "N = 10 samples is out of range"),
        ("mnist1d:1000:1:2", "write mnist1d, mnist1d:N"),
    ],
)
def test_bad_mnist1d_names_are_one_line_errors(name, msg):
    with pytest.raises(DataError, match=msg) as e:
        load_dataset(name)
    assert "\n" not in str(e.value)


def test_default_size_has_2000_validation_and_test_signals():
    """The shipped spaces use `mnist1d` with val_fraction 0.2: >= 2,000 of each."""
    n = data.MNIST1D_SAMPLES
    assert n - int(0.8 * n) >= 2000 and int(0.8 * n) * 0.2 >= 2000
    rows = {r["name"]: r for r in data.dataset_status()}
    assert rows["mnist1d"]["available"] is True
    assert "10000 train / 2500 test" in rows["mnist1d"]["description"]


def test_device_data_normalises_signals_and_refuses_image_augmentation(small):
    dd = DeviceData(small, "cpu", val_fraction=0.2, split_seed=0)
    assert dd.n_train == 1280 and len(dd.y_val) == 320 and dd.input_shape == (1, 40)
    x = dd.train_batch(torch.arange(1280), dd.views(0, 0))
    assert x.shape == (1280, 1, 40) and x.dtype == torch.float32
    # normalised with the training part's statistics only (the validation signals unseen)
    (mean,), (std,) = small.train_stats(0.2, 0)
    assert (mean, std) != (small.mean[0], small.std[0])
    np.testing.assert_allclose(
        x.numpy(), (small.x_train[dd.ds.split(0.2, 0)[0]].numpy() - mean) / std, rtol=1e-5,
        atol=1e-6,
    )  # fmt: skip
    with pytest.raises(UserError, match="'crop_flip' is for images.*set data.augment to none"):
        DeviceData(small, "cpu", augment="crop_flip")


# --- npz with 1-D signals -------------------------------------------------------------------


def _save(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_signals_load_as_float32_n_c_l(tmp_path):
    rng = np.random.default_rng(0)
    y_tr, y_te = np.arange(30) % 3, np.arange(10) % 3
    # [N, L] floats of any range
    x_tr = rng.normal(5.0, 3.0, (30, 50))
    x_te = rng.normal(5.0, 3.0, (10, 50))
    ds = load_dataset(_save(tmp_path / "a.npz", x_train=x_tr, y_train=y_tr, x_test=x_te,
                            y_test=y_te))  # fmt: skip
    assert ds.is_signal and tuple(ds.x_train.shape) == (30, 1, 50)
    assert ds.x_train.dtype == torch.float32 and ds.num_classes == 3
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), x_tr.astype(np.float32))
    np.testing.assert_allclose(ds.mean, [x_tr.mean()], rtol=1e-6)
    np.testing.assert_allclose(ds.std, [x_tr.std()], rtol=1e-6)
    # [N, C, L] integers (e.g. a 3-axis accelerometer), negative values allowed
    xi = rng.integers(-1000, 1000, (30, 3, 64), dtype=np.int16)
    ds3 = load_dataset(_save(tmp_path / "b.npz", x_train=xi, y_train=y_tr, x_test=xi[:10],
                             y_test=y_te))  # fmt: skip
    assert tuple(ds3.x_train.shape) == (30, 3, 64) and ds3.input_shape == (3, 64)
    assert float(ds3.x_train[4, 2, 7]) == float(xi[4, 2, 7])
    assert len(ds3.mean) == 3
    np.testing.assert_allclose(ds3.mean[1], xi[:, 1].mean(), rtol=1e-6)
    # a tiny-height image array is read as signals only when it looks like them: 28x28
    # grayscale stays images, and `layout` overrides the shape rule either way
    img = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    assert not load_dataset(_save(tmp_path / "c.npz", x_train=img, y_train=y_tr,
                                  x_test=img[:10], y_test=y_te)).is_signal  # fmt: skip
    forced = load_dataset(_save(tmp_path / "d.npz", x_train=img, y_train=y_tr, x_test=img[:10],
                                y_test=y_te, layout="signals"))  # fmt: skip
    assert forced.is_signal and forced.input_shape == (28, 28)
    # and the 1-D models build and run on what was loaded
    net = models.create_model("plain", 4, ds3.num_classes, ds3.input_shape)
    assert net(torch.zeros(2, 3, 64)).shape == (2, 3)


@pytest.mark.parametrize(
    "arrays, msg",
    [
        (dict(x_train=np.full((4, 20), np.nan)), "x_train has 80 NaN or infinite value"),
        (dict(x_test=np.ones((4, 2, 20))), "store both as \\[N, L\\] or both as \\[N, C, L\\]"),
        (dict(x_test=np.ones((4, 21))), "train signals are \\[C, L\\] = \\[1, 20\\] but test"),
        (dict(x_test=np.ones((4, 8, 8, 1))), "store both as \\[N, L\\] or both as"),
        (
            dict(x_train=np.ones((4, 2, 20)), x_test=np.ones((4, 28, 28))),
            "one reads as 1-D signals, the other as images",
        ),
        (dict(x_train=np.ones((4, 20), dtype=bool)), "x_train is bool; store 1-D signals as"),
        (dict(x_train=np.ones((4, 20)) * 1e300), "beyond float32's range"),
        (dict(x_train=np.ones((4, 0))), "store 1-D signals as \\[N, L\\] or \\[N, C, L\\]"),
        (dict(layout=np.array("wave")), "layout is .*store layout='signals'"),
        (dict(x_train=np.ones((3, 20))), "x_train has 3 images but y_train has 4 labels"),
    ],
)
def test_malformed_npz_signals_are_one_line_errors(tmp_path, arrays, msg, capsys):
    base = dict(
        x_train=np.ones((4, 20)), y_train=np.array([0, 1, 0, 1]),
        x_test=np.ones((4, 20)), y_test=np.array([0, 1, 1, 0]),
    )  # fmt: skip
    name = _save(tmp_path / "bad.npz", **{**base, **arrays})
    with pytest.raises(DataError, match=msg) as e:
        load_dataset(name)
    assert "\n" not in str(e.value)
    # and through the CLI: one line, exit 2, no traceback
    assert main(["run-path", "--dataset", name, "--path", "plain4>plain2", "--epochs", "1",
                 "--no-store", "--results", str(tmp_path / "r")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "bad.npz" in err


# --- 1-D models -----------------------------------------------------------------------------


def _conv(c_in, c_out, k=3, bias=True):
    return c_in * c_out * k + (c_out if bias else 0)


def _plain1d_params(book: str, length: int = 40, classes: int = 10, c: int = 1) -> int:
    """The parameter count of a book's 1-D build, worked out from the layer list."""
    total, widths = 0, []
    for tok in book.split():
        if tok == "M":
            length //= 2
        elif tok.startswith("C"):
            n = int(tok[1:])
            total += _conv(c, n) + 2 * n  # conv weight + bias, BN affine
            c = n
        else:
            widths.append(int(tok[2:]))
    widths[-1] = classes
    fan_in = c * length
    for n in widths:
        total += fan_in * n + n
        fan_in = n
    return total


def _resnet1d_params(n: int, classes: int = 10, c_in: int = 1) -> int:
    total = _conv(c_in, 16, bias=False) + 32  # stem
    c = 16
    for width in (16, 32, 64):
        for b in range(n):
            cin = c if b == 0 else width
            total += _conv(cin, width, bias=False) + 2 * width
            total += _conv(width, width, bias=False) + 2 * width
            if cin != width:
                total += _conv(cin, width, 1, bias=False) + 2 * width
        c = width
    return total + 64 * classes + classes


PLAIN1D = {2: 2_522, 4: 8_922, 6: 27_738, 8: 116_122, 10: 854_826}


@pytest.mark.parametrize("depth", [2, 4, 6, 8, 10])
def test_plain_1d_builds_every_depth_with_the_expected_count(depth):
    book = models.PLAIN_BOOKS["cifar10"][depth]
    net = models.create_model("plain", depth, 10, (1, 40))
    assert models.count_params(net) == PLAIN1D[depth] == _plain1d_params(book)
    assert models.model_size(f"plain{depth}", 10, (1, 40)) == PLAIN1D[depth]
    kinds = {type(m) for m in net.modules()}
    assert nn_1d(kinds) and torch.nn.Conv2d not in kinds
    pools = sum(isinstance(m, torch.nn.MaxPool1d) for m in net.modules())
    assert pools == book.split().count("M")  # 40 -> 20 -> 10 -> 5 -> 2: every pool applies
    x = torch.randn(8, 1, 40, requires_grad=True)
    out = net(x)
    assert out.shape == (8, 10)
    out.logsumexp(1).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in net.parameters())
    assert torch.jit.script(net)(x.detach()).shape == (8, 10)


def nn_1d(kinds) -> bool:
    return {torch.nn.Conv1d, torch.nn.BatchNorm1d} <= kinds


@pytest.mark.parametrize("depth", [8, 14, 20, 26, 32, 44, 56, 110])
def test_resnet_1d_builds_every_depth_with_the_expected_count(depth):
    with torch.device("meta"):
        net = models.create_model("resnet", depth, 10, (1, 40))
    assert models.count_params(net) == _resnet1d_params((depth - 2) // 6)
    assert nn_1d({type(m) for m in net.modules()})
    if depth <= 20:  # real weights: forward and backward
        net = models.create_model("resnet", depth, 10, (2, 40))
        x = torch.randn(4, 2, 40)
        out = net(x)
        assert out.shape == (4, 10)
        out.sum().backward()
        assert all(p.grad is not None for p in net.parameters())


def test_known_counts_and_2d_builds_unchanged():
    assert models.model_size("resnet8", 10, (1, 40)) == 28_506
    assert models.model_size("resnet20", 10, (1, 40)) == 93_914
    assert models.model_size("mlp2x100", 10, (1, 40)) == 40 * 100 + 100 + 100 * 100 + 100 + 1010
    assert models.model_size("mlp1x32", 10, (3, 40)) == 120 * 32 + 32 + 330
    # images still get the 2-D books (FACTS.md counts)
    assert models.model_size("plain10", 10, (3, 32, 32)) == 2_487_850
    assert models.model_size("resnet20", 10, (3, 32, 32)) == 272_474
    with pytest.raises(models.ModelError, match="\\(channels, length\\) for 1-D signals"):
        models.create_model("plain", 2, 10, (40,))


def test_a_small_1d_training_run_learns_well_above_chance(small, tmp_path):
    """The engine's own hop training (and a distillation hop) on 1-D signals."""
    from takd_search.engine.chain import Context, hop_rows, run_chain
    from takd_search.engine.hop import TrainConfig
    from takd_search.engine.store import Store

    dd = DeviceData(small, "cpu", val_fraction=0.2, split_seed=0)
    ctx = Context(dd, TrainConfig(epochs=6, batch_size=64, lr=0.05), Store(tmp_path / "s"))
    rows = hop_rows(run_chain(ctx, ["plain4", "plain2"], seed=0))
    assert [r["model"] for r in rows] == ["plain4", "plain2"]
    # chance is 0.10; 1,280 signals and 6 epochs reach 0.89 (plain4) and 0.74 (plain2) here
    assert rows[0]["test_acc"] > 0.7 and rows[0]["val_acc"] > 0.7
    assert rows[1]["test_acc"] > 0.5


# --- CLI ------------------------------------------------------------------------------------


def test_models_and_datasets_show_mnist1d(capsys):
    assert main(["models", "--dataset", "mnist1d:500"]) == 0
    out = capsys.readouterr().out
    assert "params mnist1d:500 (1x40, 10 classes)" in out
    assert "854,826" in out and "2,487,850" in out  # plain10 on signals, and on CIFAR-10
    assert main(["datasets"]) == 0
    assert "mnist1d" in capsys.readouterr().out


@pytest.mark.slow  # a whole search or a long training: the second tier
def test_run_mnist1d_plain_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TAKD_DATA", str(tmp_path / "data"))
    res = tmp_path / "res"
    # two report seeds and the search's own ranking to choose (no selection seeds): the
    # whole protocol at its smallest, 5 models' NoKD to the exported winner
    code = main(["run", "--space", "mnist1d_plain", "--trials", "2", "--epochs", "2",
                 "--seeds", "1,2", "--set", "baselines.select_seeds=[]",
                 "--set", "baselines.confirm_top_k=1",
                 "--results", str(res)])  # fmt: skip
    assert code == 0
    (run_dir,) = [d for d in res.iterdir() if d.is_dir() and not d.name.startswith(".")]
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    from takd_search import results

    r = results.load(run_dir)
    nokd = r["baselines"].query("kind == 'nokd'").set_index("model")
    assert set(nokd.index) >= {"plain10", "plain8", "plain6", "plain4", "plain2"}
    assert (nokd["test_acc"] > 0.3).all()  # two epochs on 8,000 signals: far above 0.10
    assert nokd.loc["plain10", "params"] == 854_826 and nokd.loc["plain2", "params"] == 2_522
    assert len(r["trials"].query("phase == 'search'")) == 2 and summary["winner"]
    assert set(r["confirmation"]["method"]) >= {"blkd", "nokd"}
    # the winner exports as TorchScript taking raw [N, 1, 40] signals and reproduces its
    # recorded test accuracy
    out = tmp_path / "student.pt"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["input_shape"] == [1, 40] and "[N, C, L]" in side["input"]
    ds = load_dataset("mnist1d", tmp_path / "data")
    net = torch.jit.load(str(out))
    with torch.no_grad():
        acc = (net(ds.x_test).argmax(1) == ds.y_test).float().mean().item()
    assert acc == pytest.approx(side["accuracy"]["test_acc"], abs=1e-6)


@pytest.mark.parametrize("name", ["mnist1d_plain", "mnist1d_cnn_mlp"])
def test_shipped_mnist1d_spaces_are_valid_and_every_path_shrinks(name):
    from takd_search.config import load_space
    from takd_search.engine.path import check_shrinking
    from takd_search.search.space import PathSpace

    space = load_space(name)[0]
    assert space.data.dataset == "mnist1d" and space.data.augment in (None, "none")
    train = int(0.8 * data.MNIST1D_SAMPLES)
    assert int(train * space.data.val_fraction) >= 2000  # validation signals
    teacher, student, cands = space.model_names()
    sizes = {m: models.model_size(m, 10, (1, 40)) for m in (teacher, student, *cands)}
    assert sizes[teacher] > max(sizes[c] for c in cands) > min(sizes[c] for c in cands)
    assert min(sizes[c] for c in cands) > sizes[student]
    paths = PathSpace(space, sizes)
    assert paths.n_paths() == 8 if name == "mnist1d_plain" else paths.n_paths() == 7
    for c in cands:
        check_shrinking([teacher, c, student], 10, (1, 40))


def test_dry_run_probes_1d_models_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TAKD_DATA", str(tmp_path / "data"))
    res = tmp_path / "res"
    assert main(["run", "--space", "mnist1d_cnn_mlp", "--dry-run", "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "[1, 40], 10 classes" in out and "plain8 (116,122 params)" in out
    assert "mlp1x32" in out and "ms/step" in out
    assert not res.exists() or not any(res.iterdir())


def test_a_brought_teacher_on_signals_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TAKD_DATA", str(tmp_path / "data"))
    teacher = tmp_path / "teacher.pt"
    torch.jit.script(models.create_model("plain", 2, 10, (1, 8, 8))).save(str(teacher))
    code = main(["run-path", "--dataset", "mnist1d:500", "--teacher", str(teacher), "--path",
                 "teacher>plain2", "--epochs", "1", "--results", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1-D signals" in err and "Traceback" not in err
