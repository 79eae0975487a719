"""The bad-input corpus: each file in tests/bad_inputs/ is something a user might feed
`takd-search run`; its first line says the message expected. Every one must end in exit
code 2, exactly one line naming the field or file and the fix, no traceback, and nothing
written to the results folder."""

from pathlib import Path

import pytest

from takd_search.cli import main

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(CORPUS.glob("*.yaml"))


def _expect(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_input_is_one_clear_line(case, tmp_path, capsys):
    space = tmp_path / case.name
    space.write_text(case.read_text().replace("{corpus}", str(CORPUS)))
    results = tmp_path / "results"
    code = main(["run", "--space", str(space), "--results", str(results)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert _expect(case) in lines[0], err
    assert lines[0].startswith("takd-search: error: ")
    assert "Traceback" not in err
    assert not results.exists() or not any(results.iterdir())


def test_missing_space_file(tmp_path, capsys):
    code = main(["run", "--space", str(tmp_path / "nope.yaml"), "--results", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nope.yaml does not exist" in err and "\n" not in err


def test_unknown_space_name_lists_shipped_ones(capsys):
    assert main(["run", "--space", "cifar1000_vgg"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no search space named 'cifar1000_vgg'" in err and "digits_vgg" in err


def test_every_problem_is_listed_at_once(tmp_path, capsys):
    space = tmp_path / "many.yaml"
    space.write_text(
        "models: {family: plain, teacher: 10, student: 2, candidates: [5, 6, 6]}\n"
        "distill: {T: -1.0, alpha: 3.0}\n"
        "search: {n_trials: 0, colour: blue}\n"
    )
    assert main(["run", "--space", str(space), "--results", str(tmp_path / "r")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    want = ["search.colour: unknown key"]
    assert len(lines) == 1 and all(w in lines[0] for w in want)
    space.write_text(
        "models: {family: plain, teacher: 10, student: 2, candidates: [5, 6, 6]}\n"
        "distill: {T: -1.0, alpha: 3.0}\n"
        "search: {n_trials: 0}\n"
    )
    assert main(["run", "--space", str(space), "--results", str(tmp_path / "r")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    for want in [
        "models.candidates[0]: unknown model 'plain5'",
        "plain6 listed twice",
        "distill.T: -1.0",
        "distill.alpha: 3.0",
        "search.n_trials: 0",
    ]:
        assert sum(want in ln for ln in lines) == 1, (want, lines)
    assert len(lines) == 5
