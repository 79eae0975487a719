import optuna
import pytest

from takd_search import models
from takd_search.config import load_space
from takd_search.search.fractions import hop_params
from takd_search.search.space import PathSpace, snapshot_epochs


def _space(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return load_space(str(p))[0]


BASE = """
models: {family: plain, teacher: 10, student: 2, candidates: [4, 8, 6], max_tas: 3}
distill: {T: [2.0, 4.0], alpha: {low: 0.1, high: 0.9}, kd_fraction: 1.0, parent_fraction: 1.0}
"""


def _sizes(space):
    t, s, c = space.model_names()
    return {m: models.model_size(m, 10, (1, 8, 8)) for m in (t, s, *c)}


def test_fixed_trial_gives_the_path_and_hops(tmp_path):
    space = _space(tmp_path, BASE)
    ps = PathSpace(space, _sizes(space))
    assert ps.candidates == ["plain8", "plain6", "plain4"]  # largest first
    params = {"ta_plain8": False, "ta_plain6": True, "ta_plain4": True, "T": 4.0, "alpha": 0.3}
    cfg = ps(optuna.trial.FixedTrial(params))
    assert cfg["path"] == "plain10>plain6>plain4>plain2"
    assert cfg["guidance"] == "chain"
    hop = {"T": 4.0, "alpha": 0.3, "kd_fraction": 1.0, "parent_fraction": 1.0}
    assert cfg["hops"] == [hop] * 3
    direct = ps(optuna.trial.FixedTrial({**params, "ta_plain6": False, "ta_plain4": False}))
    assert direct["path"] == "plain10>plain2" and len(direct["hops"]) == 1
    assert ps.n_paths() == 8


def test_per_hop_params_are_keyed_by_child(tmp_path):
    space = _space(
        tmp_path, BASE.replace("parent_fraction: 1.0}", "parent_fraction: 1.0, per_hop: true}")
    )
    ps = PathSpace(space, _sizes(space))
    cfg = ps(
        optuna.trial.FixedTrial(
            {
                "ta_plain8": False,
                "ta_plain6": False,
                "ta_plain4": True,
                "T_plain4": 2.0,
                "alpha_plain4": 0.2,
                "T_plain2": 4.0,
                "alpha_plain2": 0.8,
            }
        )
    )
    assert [h["T"] for h in cfg["hops"]] == [2.0, 4.0]
    assert [h["alpha"] for h in cfg["hops"]] == [0.2, 0.8]


def test_max_tas_repair_is_deterministic_and_even(tmp_path):
    space = _space(tmp_path, BASE.replace("max_tas: 3", "max_tas: 1"))
    ps = PathSpace(space, _sizes(space))
    everything = {"ta_plain8": True, "ta_plain6": True, "ta_plain4": True, "T": 2.0, "alpha": 0.5}
    a = ps(optuna.trial.FixedTrial(everything))["path"]
    assert a == ps(optuna.trial.FixedTrial(everything))["path"]
    assert a.count(">") == 2  # exactly one TA kept
    assert ps.n_paths() == 4  # direct + one of three TAs


def test_categorical_choices_never_change_across_a_real_study(tmp_path):
    """Optuna raises if a categorical's choices change between trials; run a real study."""
    space = _space(
        tmp_path,
        BASE.replace("max_tas: 3", "max_tas: 2").replace(
            "parent_fraction: 1.0}", "parent_fraction: 1.0, per_hop: true}"
        ),
    )
    ps = PathSpace(space, _sizes(space))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    paths = set()
    for _ in range(30):
        trial = study.ask()
        cfg = ps(trial)
        paths.add(cfg["path"])
        study.tell(trial, len(cfg["path"]) / 100)
    assert len(paths) >= 4 and all(p.count(">") <= 3 for p in paths)


def test_fractions_become_epochs(tmp_path):
    hops = hop_params(
        [
            {"T": 4.0, "alpha": 0.5, "kd_fraction": 0.5, "parent_fraction": 0.75},
            {"T": 2.0, "alpha": 0.1, "kd_fraction": 1.0, "parent_fraction": 1.0},
        ],
        20,
    )
    assert hops[0].kd_epochs == 10 and hops[0].parent_epoch == 15
    assert hops[1].kd_epochs == 20 and hops[1].parent_epoch is None
    space = _space(tmp_path, BASE.replace("parent_fraction: 1.0", "parent_fraction: [0.5, 1.0]"))
    assert snapshot_epochs(space, 30) == (15,)


def test_grid_size(tmp_path):
    space = _space(tmp_path, BASE.replace("alpha: {low: 0.1, high: 0.9}", "alpha: [0.5]"))
    ps = PathSpace(space, _sizes(space))
    assert ps.grid_size() == 8 * 2  # 8 paths x 2 temperatures
    assert ps.grid() == {
        "ta_plain8": [False, True],
        "ta_plain6": [False, True],
        "ta_plain4": [False, True],
        "T": [2.0, 4.0],
    }


@pytest.mark.parametrize("guidance", ["search"])
def test_guidance_can_be_searched(tmp_path, guidance):
    space = _space(tmp_path, BASE + f"search: {{guidance: {guidance}}}\n")
    ps = PathSpace(space, _sizes(space))
    cfg = ps(
        optuna.trial.FixedTrial(
            {
                "ta_plain8": True,
                "ta_plain6": False,
                "ta_plain4": False,
                "guidance": "dense",
                "T": 2.0,
                "alpha": 0.5,
            }
        )
    )
    assert cfg["guidance"] == "dense"


# ---- TAKD's lambda ------------------------------------------------------------------------
def _takd_loss(s, t, y, T, lam):
    """TAKD's train.py: (1 - l) CE + l T^2 nn.KLDivLoss()(log_softmax(s/T), softmax(t/T))
    (KLDivLoss's default reduction: the mean over every element, N x C)."""
    import torch.nn as nn
    import torch.nn.functional as F

    kl = nn.KLDivLoss()(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1))
    return (1 - lam) * F.cross_entropy(s, y) + lam * T * T * kl


@pytest.mark.parametrize("classes", [10, 100])
@pytest.mark.parametrize("lam", [0.05, 0.5, 0.9, 0.95])
def test_lambda_conversion_matches_takds_mean_reduced_loss(classes, lam):
    """Our loss at alpha_from_lambda(l, C) is TAKD's at l times one constant, whatever the
    batch: the same minimiser and the same gradient direction."""
    import torch

    from takd_search.engine.distill import kd_loss, soft_targets
    from takd_search.search.space import alpha_from_lambda, lambda_from_alpha

    a = alpha_from_lambda(lam, classes)
    assert lambda_from_alpha(a, classes) == pytest.approx(lam)
    g = torch.Generator().manual_seed(0)
    ratios, grads = [], []
    for _ in range(4):
        s = torch.randn(16, classes, generator=g, requires_grad=True)
        t = 3 * torch.randn(16, classes, generator=g)
        y = torch.randint(0, classes, (16,), generator=g)
        ours = kd_loss(s, soft_targets([t], 4.0), y, 4.0, a)
        theirs = _takd_loss(s, t, y, 4.0, lam)
        ratios.append(float(theirs / ours))
        (g_ours,) = torch.autograd.grad(ours, s)
        (g_theirs,) = torch.autograd.grad(theirs, s)
        grads.append(float((g_theirs - ratios[-1] * g_ours).abs().max()))
    assert ratios == pytest.approx([(1 - lam) / (1 - a)] * 4, rel=1e-5)
    assert max(grads) < 1e-6
    # the 1/C rule the docs used to state is wrong for any lambda not near 0
    if lam >= 0.5:
        assert abs(a - lam / classes) > 0.3 * a


def test_facts_values_of_the_conversion():
    from takd_search.search.space import alpha_from_lambda

    assert alpha_from_lambda(0.5, 100) == pytest.approx(0.0099, abs=1e-4)
    assert alpha_from_lambda(0.9, 100) == pytest.approx(0.083, abs=1e-3)
    assert alpha_from_lambda(0.95, 100) == pytest.approx(0.16, abs=1e-2)
    assert alpha_from_lambda(1.0, 100) == 1.0


def test_a_lambda_range_is_searched_and_converted_per_class_count(tmp_path):
    space = _space(
        tmp_path,
        BASE.replace("alpha: {low: 0.1, high: 0.9}", "lambda_takd: {low: 0.05, high: 1.0}"),
    )
    with pytest.raises(ValueError, match="number of classes"):
        PathSpace(space, _sizes(space))
    ps = PathSpace(space, _sizes(space), classes=100)
    params = {"ta_plain8": False, "ta_plain6": False, "ta_plain4": True, "T": 4.0}
    cfg = ps(optuna.trial.FixedTrial({**params, "lambda_takd": 0.9}))
    assert [h["alpha"] for h in cfg["hops"]] == pytest.approx([0.9 / (100 * 0.1 + 0.9)] * 2)
    assert cfg["hops"][0]["lambda_takd"] == 0.9
    # a real study samples lambda in TAKD's range, and alpha follows
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        h = ps(trial)["hops"][0]
        assert 0.05 <= h["lambda_takd"] <= 1.0
        assert h["alpha"] == pytest.approx(
            h["lambda_takd"] / (100 * (1 - h["lambda_takd"]) + h["lambda_takd"])
        )
        study.tell(trial, 0.5)


def test_shipped_cifar_spaces_cover_takds_lambda_range():
    from takd_search.search.space import alpha_from_lambda

    for name in ("cifar10_vgg", "cifar100_vgg", "cifar10_resnet", "cifar100_resnet"):
        space = load_space(name)[0]
        lam = space.distill.lambda_takd
        assert (lam.low, lam.high) == (0.05, 1.0), name
    assert alpha_from_lambda(0.05, 100) < 0.001  # far below the old alpha range's 0.1


# ---- top-up schedule and the grid's distinct hops ------------------------------------------
def test_schedule_space_trains_the_scheduled_path_per_trial_number(tmp_path):
    space = _space(tmp_path, BASE)
    sched = ["plain10>plain6>plain2", "plain10>plain6>plain2", "plain10>plain4>plain2"]
    ps = PathSpace(space, _sizes(space), schedule=sched)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    got = []
    for _ in range(3):
        trial = study.ask()
        cfg = ps(trial)
        got.append(cfg["path"])
        # each path's values are its own parameters: modelled on its own trials only
        assert set(trial.params) <= {"p0_T", "p0_alpha", "p1_T", "p1_alpha"}
        study.tell(trial, 0.5)
    assert got == sched


def test_grid_hops_count_distinct_hops_with_shared_prefixes(tmp_path):
    # teacher 10, TAs 6 and 4 (max 2), student 2; T 2 choices x alpha range (5 points) = 10
    space = _space(
        tmp_path,
        """
models: {family: plain, teacher: 10, student: 2, candidates: [6, 4], max_tas: 2}
distill: {T: [2.0, 4.0], alpha: {low: 0.1, high: 0.9}}
""",
    )
    ps = PathSpace(space, _sizes(space))
    # paths 10>2, 10>6>2, 10>4>2, 10>6>4>2; prefixes 10>6 and 10>6>4 are shared
    hops = ps.grid_hops()
    assert hops == {"plain10": 1, "plain6": 10, "plain4": 20, "plain2": 40}
    assert ps.grid_size() == 40  # trials: 4 paths x 10 settings
    per_hop = _space(
        tmp_path,
        """
models: {family: plain, teacher: 10, student: 2, candidates: [6, 4], max_tas: 2}
distill: {T: [2.0, 4.0], alpha: {low: 0.1, high: 0.9}, per_hop: true}
""",
    )
    # per hop: a prefix of k hops has 10^k settings
    assert PathSpace(per_hop, _sizes(per_hop)).grid_hops() == {
        "plain10": 1,
        "plain6": 10,
        "plain4": 10 + 100,
        "plain2": 10 + 100 + 100 + 1000,
    }
