"""report.premise: the warning when a brought teacher's sidecar shows it trained on another
split of this run's data (or on the whole training set)."""

from __future__ import annotations

from takd_search.report.premise import other_split, run_warnings, sidecar_split

# an exported student's student.json, trimmed to what is read
EXPORTED = {
    "dataset": {"name": "digits", "fingerprint": "fp-digits"},
    "lineage": {"student_hop": {"data": "fp-digits", "val_fraction": 0.2, "split_seed": 0}},
}
RUN = {"dataset": "digits", "data": "fp-digits", "val_fraction": 0.2, "split_seed": 0}


def test_sidecar_split_reads_an_exported_student_and_a_hand_written_sidecar():
    assert sidecar_split(EXPORTED) == {
        "dataset": "digits", "data": "fp-digits", "val_fraction": 0.2, "split_seed": 0
    }  # fmt: skip
    hand = {"trained_on": {"dataset": "digits", "val_fraction": 0}}
    assert sidecar_split(hand)["val_fraction"] == 0
    assert sidecar_split({"teacher_input": {}}) is None and sidecar_split(None) is None


def test_another_split_of_the_same_data_warns_the_same_split_does_not():
    same = sidecar_split(EXPORTED)
    assert other_split("teacher", same, RUN) is None
    line = other_split("teacher", same, dict(RUN, split_seed=3))
    assert line.startswith("warning: teacher teacher was trained on another split of the same")
    assert "(val_fraction 0.2, split_seed 0)" in line and "split_seed 3)" in line
    assert other_split("teacher", same, dict(RUN, val_fraction=0.1)) is not None
    # other data (fingerprints differ): nothing to say
    assert other_split("teacher", same, dict(RUN, data="fp-other")) is None
    # the whole training set: it has seen every validation image
    whole = {"dataset": "digits", "data": None, "val_fraction": 0, "split_seed": None}
    assert "the whole training set" in other_split("teacher", whole, dict(RUN, data=None))
    # a run without a fingerprint (the report reads versions.json): compared by name
    assert other_split("teacher", same, dict(RUN, data=None, split_seed=1)) is not None


def test_run_warnings_carry_the_split_warning_from_the_claims():
    claims = {"val_acc": 0.97, "trained_on": sidecar_split(EXPORTED)}
    val = {"teacher": 0.97, "plain2": 0.9}
    lines = run_warnings(val, "teacher", "plain2", claims, dict(RUN, split_seed=5))
    assert len(lines) == 1 and "another split of the same data" in lines[0]
    assert run_warnings(val, "teacher", "plain2", claims, RUN) == []


def test_run_warnings_read_the_raw_sidecar_keys_from_the_claims():
    claims = {"sidecar": EXPORTED}  # what teacher/source.py keeps of the sidecar
    lines = run_warnings({}, "teacher", "plain2", claims, dict(RUN, split_seed=1))
    assert len(lines) == 1 and "another split of the same data" in lines[0]
    hand = {"sidecar": {"dataset": "digits", "trained_on": {"val_fraction": 0}}}
    (line,) = run_warnings({}, "teacher", "plain2", hand, dict(RUN, data=None))
    assert "the whole training set" in line
