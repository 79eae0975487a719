import pytest

from takd_search.engine.chain import hop_rows
from takd_search.engine.path import PathError, check_shrinking, parse_path


@pytest.mark.parametrize(
    "text,family,want",
    [
        ("10-4-2", "plain", ["plain10", "plain4", "plain2"]),
        ("10-4-2", "vgg", ["plain10", "plain4", "plain2"]),
        ("plain10>plain6>plain2", None, ["plain10", "plain6", "plain2"]),
        ("vgg10 > vgg2", None, ["plain10", "plain2"]),
        ("110-20-8", "resnet", ["resnet110", "resnet20", "resnet8"]),
        ("mlp2x1200>mlp2x800", None, ["mlp2x1200", "mlp2x800"]),
        ("plain10>plain4>mlp2x100", None, ["plain10", "plain4", "mlp2x100"]),
    ],
)
def test_parse_path(text, family, want):
    assert parse_path(text, family) == want


@pytest.mark.parametrize(
    "text,family,msg",
    [
        ("10", "plain", "needs a teacher and a student"),
        ("10-3-2", "plain", "plain depths are 2, 4, 6, 8, 10"),
        ("10-4-4", "plain", "names a model twice"),
        ("10-4-2", "conv", "unknown"),
    ],
)
def test_parse_path_errors_are_one_line(text, family, msg):
    with pytest.raises(PathError, match=msg) as e:
        parse_path(text, family)
    assert "\n" not in str(e.value)


def test_check_shrinking():
    check_shrinking(["plain10", "plain4", "plain2"], 10, (3, 32, 32))
    with pytest.raises(PathError, match="depths must strictly decrease"):
        check_shrinking(["plain4", "plain10"], 10, (3, 32, 32))
    with pytest.raises(PathError, match="fewer parameters"):
        check_shrinking(["mlp2x100", "mlp2x800"], 10, (1, 28, 28))
    check_shrinking(["plain10", "mlp1x64"], 10, (1, 8, 8))


def test_hop_rows_report_status_and_seconds_saved(digits_data, store):
    from takd_search.engine.chain import Context, run_chain
    from takd_search.engine.hop import HopParams, TrainConfig

    ctx = Context(digits_data, TrainConfig(epochs=2, batch_size=128), store)
    run_chain(ctx, ["plain6", "plain2"], HopParams(T=2.0, alpha=0.3))
    rows = hop_rows(run_chain(ctx, ["plain6", "plain2"], HopParams(T=2.0, alpha=0.3)))
    assert [r["status"] for r in rows] == ["reused", "reused"]
    assert rows[1]["parent"] == "plain6" and rows[1]["T"] == 2.0 and rows[1]["alpha"] == 0.3
    assert rows[0]["seconds_saved"] == rows[0]["seconds"] > 0
    # digits, 10 classes (chance 0.1); a 2-epoch plain2 distilled from plain6 learns
    assert rows[0]["val_acc"] > 0.7 and rows[1]["val_acc"] > 0.6  # measured 0.92, 0.90


def test_teacher_seed_keeps_the_teacher_and_reseeds_the_rest(digits_data, store):
    """Confirmation's shape: a new seed with teacher_seed reuses the teacher (same key,
    not retrained) and trains the student anew; without it the teacher is retrained."""
    from takd_search.engine.chain import Context, run_chain
    from takd_search.engine.hop import HopParams, TrainConfig

    # two epochs: a one-epoch hop of 11 steps, all of it warm-up, can end near chance,
    # which is now a failed hop (HopDidNotLearn), not a result
    ctx = Context(digits_data, TrainConfig(epochs=2, batch_size=128), store)
    hop = HopParams(T=2.0, alpha=0.5)
    base = run_chain(ctx, ["plain4", "plain2"], hop, seed=0)
    kept = run_chain(ctx, ["plain4", "plain2"], hop, seed=1, teacher_seed=0)
    assert kept[0].reused and kept[0].spec.key == base[0].spec.key
    assert not kept[1].reused and kept[1].spec.key != base[1].spec.key
    assert kept[1].spec.seed == 1 and kept[0].spec.seed == 0
    fresh = run_chain(ctx, ["plain4", "plain2"], hop, seed=1)
    assert not fresh[0].reused and fresh[0].spec.seed == 1
    # a one-model path (NoKD) is the student itself: it takes `seed`, not teacher_seed
    alone = run_chain(ctx, ["plain2"], seed=2, teacher_seed=0)
    assert alone[0].spec.seed == 2 and not alone[0].reused
