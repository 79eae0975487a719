import optuna
import pytest

from takd_search import models
from takd_search.space import PathSpace, resolve_hops, snapshot_epochs
from takd_search.spec import load_space


def _space(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return load_space(str(p))[0]


BASE = """
models: {family: plain, teacher: 10, student: 2, candidates: [4, 8, 6], max_tas: 3}
distill: {T: [2.0, 4.0], alpha: {low: 0.1, high: 0.9}, kd_epochs: 1.0, parent_epoch: 1.0}
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
    assert cfg["hops"] == [{"T": 4.0, "alpha": 0.3, "kd_epochs": 1.0, "parent_epoch": 1.0}] * 3
    direct = ps(optuna.trial.FixedTrial({**params, "ta_plain6": False, "ta_plain4": False}))
    assert direct["path"] == "plain10>plain2" and len(direct["hops"]) == 1
    assert ps.n_paths() == 8


def test_per_hop_params_are_keyed_by_child(tmp_path):
    space = _space(
        tmp_path, BASE.replace("parent_epoch: 1.0}", "parent_epoch: 1.0, per_hop: true}")
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
            "parent_epoch: 1.0}", "parent_epoch: 1.0, per_hop: true}"
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
    hops = resolve_hops(
        [
            {"T": 4.0, "alpha": 0.5, "kd_epochs": 0.5, "parent_epoch": 0.75},
            {"T": 2.0, "alpha": 0.1, "kd_epochs": 1.0, "parent_epoch": 1.0},
        ],
        20,
    )
    assert hops[0]["kd_epochs"] == 10 and hops[0]["parent_epoch"] == 15
    assert hops[1]["kd_epochs"] == 20 and hops[1]["parent_epoch"] is None
    space = _space(tmp_path, BASE.replace("parent_epoch: 1.0", "parent_epoch: [0.5, 1.0]"))
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


def test_reseed_teacher_is_off_by_default_and_must_be_a_boolean(tmp_path):
    from takd_search.spec import SpecError

    assert _space(tmp_path, BASE).baselines.reseed_teacher is False
    on = _space(tmp_path, BASE + "baselines: {reseed_teacher: true}\n")
    assert on.baselines.reseed_teacher is True
    with pytest.raises(SpecError, match="baselines.reseed_teacher"):
        _space(tmp_path, BASE + "baselines: {reseed_teacher: sometimes}\n")
