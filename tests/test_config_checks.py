"""config/checks.py: the rules across fields of a space file, one line per problem."""

import re

import pytest

from takd_search.config import load_space


def _space(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return load_space(str(p))[0]


BASE = """
models: {family: plain, teacher: 10, student: 2, candidates: [4, 8, 6], max_tas: 3}
distill: {T: [2.0, 4.0], alpha: {low: 0.1, high: 0.9}, kd_fraction: 1.0, parent_fraction: 1.0}
"""


def test_reseed_teacher_is_off_by_default_and_must_be_a_boolean(tmp_path):
    from takd_search.config import SpecError

    assert _space(tmp_path, BASE).baselines.reseed_teacher is False
    on = _space(tmp_path, BASE + "baselines: {reseed_teacher: true}\n")
    assert on.baselines.reseed_teacher is True
    with pytest.raises(SpecError, match="baselines.reseed_teacher"):
        _space(tmp_path, BASE + "baselines: {reseed_teacher: sometimes}\n")


@pytest.mark.parametrize(
    "distill, msg",
    [
        ("{alpha: 0.5, lambda_takd: 0.5}", "give alpha or lambda_takd, not both"),
        ("{lambda_takd: {low: 0.5, high: 1.5}}", "within [0, 1]"),
    ],
)
def test_lambda_problems_are_one_line_each(tmp_path, distill, msg):
    from takd_search.config import SpecError

    p = tmp_path / "s.yaml"
    p.write_text(f"models: {{family: plain, teacher: 10, student: 2}}\ndistill: {distill}\n")
    with pytest.raises(SpecError, match=re.escape(msg)) as e:
        load_space(str(p))
    assert len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize(
    "baselines, msg",
    [
        ("{confirm_seeds: [1, 2, 1]}", "baselines.confirm_seeds: seed 1 is listed twice"),
        ("{confirm_seeds: [0, 1]}", "baselines.confirm_seeds: 0 is the search's seed"),
        ("{select_seeds: [6, 0]}", "baselines.select_seeds: 0 is the search's seed"),
        ("{confirm_seeds: [1, 2], select_seeds: [2, 5]}", "2 is also a confirm seed"),
    ],
)
def test_confirmation_seeds_are_unique_fresh_and_disjoint(tmp_path, baselines, msg):
    from takd_search.config import SpecError

    p = tmp_path / "s.yaml"
    p.write_text(f"models: {{family: plain, teacher: 10, student: 2}}\nbaselines: {baselines}\n")
    with pytest.raises(SpecError, match=re.escape(msg)) as e:
        load_space(str(p))
    assert len(str(e.value).splitlines()) == 1
