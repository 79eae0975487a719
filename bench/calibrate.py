"""Calibration of the tool's answer: how often does it claim "the path beats BLKD" when
paths make no difference, and how often does it see a real +1 pp path effect?

A *simulated trainer* (`SimTrainer`, the signature of `takd_search.search.trial.run_trial`)
replaces training: a configuration's accuracy is a smooth function of the student hop's
T and alpha (`Landscape.kd_gain`, at most `kd_peak` above the student alone), plus a fixed
effect per path (none in the null landscape), plus per-(configuration, seed) network noise
(`net_sd`, a normal deviation of the network's true accuracy), and every evaluation is a
count of correct images out of n_val / n_test (binomial). The same (configuration, seed)
always gives the same network and counts, as the hop store would.

Two drivers, the same trainer and the same counting:

- `--mode full` (the default once `takd_search.search.runner` exists): the real procedure,
  `run_search(..., runner=InProcessRunner(trial_fn=SimTrainer(...)), write_report=False)`
  on a small digits space (NoKD, search, BLKD and top-up tuning, confirmation with
  selection and report seeds, statistics, summary.json), no Ray and no torch training; the
  claims are read from summary.json exactly as the answer block words them. (The study.db
  mirror, which feeds nothing of the answer, is skipped: SQLite writes are most of a
  simulated run's time; the run folders live in /dev/shm where there is one.)
- `--mode stats`: the selection and statistics code alone (`takd_search.baselines`: top-k,
  selection seeds, `select_winner`, paired tests, Holm, `verdict_kind`) on a model of the
  equal-effort protocol: the searched side and BLKD (and the heuristic's path) get the same
  number of random proposals, the same top-k and the same selection seeds. Fast (no data,
  no files), so it also runs larger n_val / n_test than digits.

Per run it records: the winner's verdict against BLKD (`beats`: "the path beats BLKD", a
false positive in the null landscape and a detection in the effect landscape), whether the
heuristic's path is the winner's path, and whether the run claims the heuristic's path is
worse than the winner (interval below zero: a false positive whenever paths do not
matter). Rates come with a Clopper-Pearson 95 % interval from the counts.

    python bench/calibrate.py --runs 400 --jobs 2                    # both landscapes
    python bench/calibrate.py --runs 4 --mode stats --landscape null  # the smoke
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

# one thread per process: the simulated runs do no training, and idle OpenMP threads
# spinning on a shared machine cost more CPU than the runs themselves
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/calibrate.py` from a checkout
    sys.path.insert(0, str(ROOT))

from takd_search import baselines  # noqa: E402

# ---------------------------------------------------------------------------------------
# the landscape and the simulated trainer


@dataclass(frozen=True)
class Landscape:
    """What a configuration's accuracy is, in fractions.

    nokd_base + nokd_per_depth * depth: a model trained alone (plain2 0.80 ... plain10
    0.96 by default: the heuristic has a real TA to pick). A distilled student: the
    student alone + kd_gain(T, alpha) of the hop into the student + the path's effect
    (`effect` on every path with at least one TA when `effect_paths` is "any", or only on
    paths through `effect_paths`, e.g. "plain6"). net_sd: the seed-to-seed spread of a
    network's true accuracy. n_val / n_test: images per evaluation when the driver does
    not know the data set's own (full mode uses the run's). binomial: counts drawn
    Binomial(n, q) (the default), or exactly round(q * n) for a landscape with a known
    answer."""

    name: str = "null"
    effect: float = 0.0
    effect_paths: str = "any"
    nokd_base: float = 0.76
    nokd_per_depth: float = 0.02
    kd_peak: float = 0.03
    T_best: float = 4.0
    T_width: float = 0.8  # in log T
    alpha_best: float = 0.6
    alpha_width: float = 0.3
    net_sd: float = 0.005
    n_val: int = 288
    n_test: int = 360
    binomial: bool = True  # False: counts = round(q * n), no evaluation noise (smoke tests)

    def nokd(self, model: str) -> float:
        depth = int("".join(ch for ch in model if ch.isdigit()) or 2)
        return self.nokd_base + self.nokd_per_depth * depth

    def kd_gain(self, T: float, alpha: float) -> float:
        """Smooth in log T and alpha, peak `kd_peak` at (T_best, alpha_best)."""
        lt = (math.log(T) - math.log(self.T_best)) / self.T_width
        la = (alpha - self.alpha_best) / self.alpha_width
        return self.kd_peak * math.exp(-0.5 * (lt * lt + la * la))

    def path_effect(self, path: str) -> float:
        models = path.split(">")
        if len(models) < 3 or not self.effect:
            return 0.0
        if self.effect_paths == "any" or self.effect_paths in models[1:-1]:
            return self.effect
        return 0.0

    def truth(self, path: str, hops: list[dict]) -> float:
        """The configuration's true accuracy (before network noise)."""
        models = path.split(">")
        if len(models) == 1 or not hops:
            return self.nokd(models[-1])
        h = hops[-1]
        return (
            self.nokd(models[-1])
            + self.kd_gain(float(h["T"]), float(h["alpha"]))
            + (self.path_effect(path))
        )


LANDSCAPES = {
    "null": Landscape(),
    "effect": Landscape(name="effect", effect=0.01),
    # a smoke landscape with a known answer: no noise at all, a large effect
    "certain": Landscape(name="certain", effect=0.2, net_sd=0.0, binomial=False),
}


def _rng(*key) -> np.random.Generator:
    """A generator seeded by the key's content: the same (run, configuration, seed) gives
    the same network and the same counts in any process and in any order."""
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(blob).digest()[:8], "little"))


def _config_key(config: dict) -> list:
    # hashed under the names the calibration figures were drawn with (docs/benchmarks.md:
    # the fractions were kd_epochs/parent_epoch then), so a configuration draws the same
    # network as it did
    label = {
        "T": "T",
        "alpha": "alpha",
        "kd_fraction": "kd_epochs",
        "parent_fraction": "parent_epoch",
    }
    hops = [
        {label[k]: round(float(h[k]), 9) for k in label if k in h}
        for h in config.get("hops") or []
    ]
    return [config.get("path"), config.get("guidance", "chain"), hops, config.get("lr")]


def evaluate(
    land: Landscape, run_index: int, config: dict, seed: int, n_val: int, n_test: int
) -> dict:
    """One trained student: its true accuracy with network noise, and the counts of
    correct validation and test images (binomial)."""
    q = land.truth(config["path"], config.get("hops") or [])
    net = _rng("net", run_index, _config_key(config), seed)
    q = min(1.0, max(0.0, q + (land.net_sd * float(net.standard_normal()) if land.net_sd else 0)))
    if land.binomial:
        ev = _rng("eval", run_index, _config_key(config), seed)
        val, test = int(ev.binomial(n_val, q)), int(ev.binomial(n_test, q))
    else:
        val, test = round(q * n_val), round(q * n_test)
    return {"q": q, "val_correct": val, "val_total": n_val, "test_correct": test,
            "test_total": n_test}  # fmt: skip


def _sees_test(config: dict) -> bool:
    """The run's own rule (trial.sees_test_set) where the package has it: NoKD baselines
    and report seeds see the test set, selection seeds and search trials never."""
    try:
        from takd_search.search.trial import sees_test_set
    except ImportError:  # before the runner seam
        return config.get("method") is not None and config.get("seed_set") != "select"
    return sees_test_set(config)


class SimTrainer:
    """A trial function with `run_trial`'s signature that trains nothing: `evaluate` gives
    the student's counts; it reports a rising per-epoch validation curve ending at them,
    then the final metrics (test numbers only for configurations that may see the test set:
    those with a `method`). Picklable; one per simulated run (`run_index`)."""

    def __init__(self, land: Landscape, run_index: int):
        self.land, self.run_index = land, run_index

    def __call__(self, config, run, dataset=None, teacher=None, *, report, trial_id):
        run = run.as_dict() if hasattr(run, "as_dict") else run  # RunSettings or its dict
        n_val, n_test = self._sizes(run, dataset)
        seed = config.get("seed")
        seed = int(run.get("seed", 0) if seed is None else seed)
        e = evaluate(self.land, self.run_index, config, seed, n_val, n_test)
        epochs = int((run.get("train") or {}).get("epochs") or 4)
        val = e["val_correct"] / n_val
        for ep in range(1, epochs + 1):
            v = val * (0.9 + 0.1 * ep / epochs)
            report({"score": v, "val_acc": v, "epoch": ep, "epochs": epochs})
        sees_test = _sees_test(config)
        report(
            {
                "score": val,
                "val_acc": val,
                "test_acc": e["test_correct"] / n_test if sees_test else None,
                "val_correct": e["val_correct"],
                "val_total": n_val,
                "test_correct": e["test_correct"] if sees_test else None,
                "test_total": n_test if sees_test else None,
                "epoch": epochs,
                "epochs": epochs,
                "best_epoch": epochs,
                "hops_trained": max(1, config["path"].count(">")),
                "hops_reused": 0,
                "train_seconds": 0.01 * max(1, config["path"].count(">")),
                "wall_seconds": 0.01,
                "hop_rows": [],
                "attempt": 0,
                "corrupt": [],
                "finished": True,
            }
        )

    def _sizes(self, run: dict, dataset) -> tuple[int, int]:
        """n_val and n_test of the run's data set when the trainer is given it (so counts
        and the run's one-image tie band agree), else the landscape's."""
        if dataset is not None:
            try:
                val = dataset.split(run["val_fraction"], run["split_seed"])[1]
                return int(len(val)), int(len(dataset.y_test))
            except Exception:  # noqa: BLE001 - an unknown Dataset shape: the landscape's
                pass
        return self.land.n_val, self.land.n_test


# ---------------------------------------------------------------------------------------
# what one run claims, from its summary (the answer block's wording)


def claims(summary: dict) -> dict:
    """The claims one run makes, as the answer block words them: `beats_blkd` (the winner
    "beats BLKD": Holm-adjusted test rejects, interval above zero), `blkd_beats` (the
    reverse), `gain` (winner minus BLKD, fraction), `heuristic_same` (the heuristic's path
    is the winner's), `heuristic_worse` (the run says the heuristic's path is worse than
    the winner: paired interval below zero), `winner_tas`, `tied` (the choice was a tie)."""
    b = summary.get("best") or {}
    # the run's own claim (summary.py: the matched control applied); older summaries
    # without it: the tuned-BLKD comparison alone
    kind = b.get("claim_vs_blkd") or baselines.verdict_kind(
        b.get("diff_vs_blkd"), b.get("diff_ci_vs_blkd"), b.get("p_holm_vs_blkd"),
        b.get("p_note_vs_blkd"),
    )  # fmt: skip
    hv = summary.get("heuristic_vs_best") or {}
    return {
        "beats_blkd": kind == "beats",
        "blkd_beats": kind == "beaten",
        "gain": b.get("diff_vs_blkd"),
        "heuristic_same": bool(summary.get("heuristic_found_best")),
        "heuristic_worse": bool(
            not summary.get("heuristic_found_best") and hv.get("ci") and hv["ci"][1] < 0
        ),
        "winner_tas": baselines.n_tas(b.get("path")),
        "tied": bool((summary.get("selection") or {}).get("tied")),
    }


# ---------------------------------------------------------------------------------------
# driver 1: the real procedure (run_search with the in-process runner)

SPACE = """
description: calibration (simulated trainer; nothing is trained)
data: {{dataset: {dataset}, val_fraction: 0.2}}
models: {{family: plain, teacher: 10, student: 2, candidates: [8, 6, 4], max_tas: 3}}
train: {{epochs: 2, batch_size: 64}}
distill: {{T: {{low: 1.0, high: 20.0, log: true}}, alpha: {{low: 0.1, high: 0.9}}}}
search: {{n_trials: {trials}, seed: {seed}}}
resources: {{cpu: 1}}
baselines: {{confirm_top_k: {top_k}, confirm_seeds: {report}, select_seeds: {select}}}
"""


_DATA: dict = {}  # (args, kwargs) -> Dataset: kept for the process, across runs


def _cache_datasets() -> None:
    """Load each data set once per process (the plan loads it every run; MNIST-1D is
    generated, seconds each time). The data are only read, never changed, by a run."""
    from takd_search.search import plan

    if getattr(plan.load_dataset, "calibrate_cached", False):
        return
    load = plan.load_dataset

    def cached(*a, **k):
        key = (a, tuple(sorted(k.items())))
        if key not in _DATA:
            _DATA[key] = load(*a, **k)
        return _DATA[key]

    cached.calibrate_cached = True
    plan.load_dataset = cached


def full_run(args: dict) -> dict:
    """One simulated run of the real procedure; returns its claims (and what failed)."""
    from takd_search.search import study

    # study.db is a mirror of the phases for Optuna's dashboards (most of a simulated run's
    # time, in SQLite); nothing of the answer is read from it. The patches are undone when
    # the run ends: a caller in the same process (the test suite) keeps the real ones.
    saved = (study.mirror, study.LiveMirror.trial, plan_module().load_dataset)
    study.mirror = lambda *a, **k: None
    study.LiveMirror.trial = lambda *a, **k: None
    _cache_datasets()
    try:
        return _full_run(args)
    finally:
        study.mirror, study.LiveMirror.trial, plan_module().load_dataset = saved


def plan_module():
    from takd_search.search import plan

    return plan


def _full_run(args: dict) -> dict:
    from takd_search.search.inprocess import InProcessRunner
    from takd_search.search.run import run_search

    land, i = Landscape(**args["landscape"]), args["index"]
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # the run folder in memory
    with tempfile.TemporaryDirectory(prefix="calib-", dir=shm) as tmp:
        space = Path(tmp) / "calib.yaml"
        space.write_text(
            SPACE.format(
                trials=args["trials"],
                dataset=args.get("dataset", "digits"),
                seed=1000 + i,  # never a report or selection seed
                top_k=args["top_k"],
                report=list(range(1, args["report_seeds"] + 1)),
                select=list(range(100, 100 + args["select_seeds"])),
            )
        )
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                run_dir = run_search(
                    str(space),
                    results_dir=Path(tmp) / "results",
                    no_store=True,
                    write_report=False,
                    runner=InProcessRunner(trial_fn=SimTrainer(land, i)),
                )
            summary = json.loads((Path(run_dir) / "summary.json").read_text())
        except Exception as e:  # noqa: BLE001 - a run that fails is counted, not fatal
            if type(e).__name__ == "Interrupted":  # Ctrl-C / SIGTERM stops the benchmark
                raise
            return {"index": i, "error": f"{type(e).__name__}: {e}", "log": out.getvalue()[-2000:]}
    return {"index": i, **claims(summary)}


# ---------------------------------------------------------------------------------------
# driver 2: the selection and statistics code on a model of the equal-effort protocol

TAS = ("plain8", "plain6", "plain4")
TEACHER, STUDENT = "plain10", "plain2"


def _proposal(rng: np.random.Generator, path: str) -> dict:
    """One random proposal on `path`: one (T, alpha) shared by every hop (the shipped
    spaces' `per_hop: false`), T log-uniform in [1, 20], alpha uniform in [0.1, 0.9]."""
    T = float(math.exp(rng.uniform(0.0, math.log(20.0))))
    alpha = float(rng.uniform(0.1, 0.9))
    hop = {"T": T, "alpha": alpha, "kd_fraction": 1.0, "parent_fraction": 1.0}
    return {"path": path, "guidance": "chain", "hops": [dict(hop)] * path.count(">"),
            "lr": None}  # fmt: skip


def _paths() -> list[str]:
    out = []
    for r in range(len(TAS) + 1):
        for tas in itertools.combinations(TAS, r):
            out.append(">".join([TEACHER, *tas, STUDENT]))
    return out


def stats_run(args: dict) -> dict:
    """One run of the model protocol with the real selection and statistics functions.

    NoKD per model (search seed) -> the heuristic's TA. Three sides with `trials` random
    proposals each at the search seed: the search over every path (the direct path
    included), BLKD (the direct path), the heuristic's path. Each side's top-k
    (`baselines.top_configs`) retrained on the selection seeds; `select_winner` names the
    searched winner and each side's representative. The winner, BLKD, the heuristic and
    NoKD retrained on the report seeds; `paired_summary` + `holm` + `verdict_kind` as in
    summary.json."""
    land, i = Landscape(**args["landscape"]), args["index"]
    n_val, n_test = land.n_val, land.n_test
    search_seed = 0
    rng = _rng("proposals", i)

    def ev(cfg, seed):
        return evaluate(land, i, cfg, seed, n_val, n_test)

    nokd_val = {
        m: ev({"path": m, "hops": []}, search_seed)["val_correct"] / n_val
        for m in (TEACHER, *TAS, STUDENT)
    }
    sizes = {m: int(m[5:]) for m in nokd_val}
    ta = baselines.heuristic_ta(nokd_val, TEACHER, STUDENT, list(TAS), sizes, n_val)
    paths = _paths()
    direct, heur_path = paths[0], f"{TEACHER}>{ta}>{STUDENT}"

    def side(name, choose_path):
        trials = []
        # common random numbers: every procedure proposes the same (T, alpha) sequence
        hp = _rng("proposals", i, "hp") if args.get("crn") else rng
        for n in range(args["trials"]):
            cfg = _proposal(hp, choose_path())
            v = ev(cfg, search_seed)
            trials.append({**cfg, "trial_id": f"{name}{n}", "trial_number": n,
                           "phase": "search", "status": "completed",
                           "val_acc": v["val_correct"] / n_val})  # fmt: skip
        return baselines.top_configs(trials, args["top_k"])

    search = side("s", lambda: paths[int(rng.integers(len(paths)))])
    blkd = side("b", lambda: direct)
    heur = side("h", lambda: heur_path)
    select_seeds = list(range(100, 100 + args["select_seeds"]))

    def pick(top, prefix):
        labels = [f"{prefix}{k}" for k in range(1, len(top) + 1)]
        cfgs = dict(zip(labels, top))
        rows = [
            {"method": lab, "seed": s, "status": "completed",
             **{k: v for k, v in ev(cfgs[lab], s).items() if k != "q"}}
            for lab in labels for s in select_seeds
        ]  # fmt: skip
        for r in rows:
            r["val_acc"] = r["val_correct"] / n_val
        sc = baselines.selection_scores(rows, labels, total=n_val)
        paths_of = {lab: cfgs[lab]["path"] for lab in labels}
        choice = baselines.select_winner(sc, labels, paths_of, n_val)
        return cfgs[choice["winner"]], choice

    win_cfg, choice = pick(search, "top")
    blkd_cfg, _ = pick(blkd, "blkd")
    heur_cfg, _ = pick(heur, "heur")
    methods = {
        "best": win_cfg,
        "blkd": blkd_cfg,
        "heuristic": heur_cfg,
        "nokd": {"path": STUDENT, "hops": []},
    }
    if args.get("matched"):  # BLKD retrained at the winner's student-hop hyper-parameters
        methods["matched"] = {"path": direct, "hops": [dict(win_cfg["hops"][-1])],
                              "guidance": "chain", "lr": None}  # fmt: skip
    rows = []
    for m, cfg in methods.items():
        for s in range(1, args["report_seeds"] + 1):
            e = ev(cfg, s)
            rows.append({"method": m, "seed": s, "status": "completed",
                         "test_acc": e["test_correct"] / n_test,
                         **{k: v for k, v in e.items() if k != "q"}})  # fmt: skip
    vs_blkd = baselines.paired_summary(rows, "blkd")["best"]
    vs_nokd = baselines.paired_summary(rows, "nokd")["best"]
    adj = baselines.holm({"blkd": vs_blkd["p_vs_blkd"], "nokd": vs_nokd["p_vs_nokd"]})
    matched_kind = None
    if args.get("matched"):
        # intersection-union: "beats BLKD" also needs the winner to beat BLKD at its own
        # hyper-parameters (the path's effect, without the tuning's luck), each at 5 %
        m = baselines.paired_summary(rows, "matched")["best"]
        matched_kind = baselines.verdict_kind(
            m["diff_vs_matched"], m["diff_ci_vs_matched"], m["p_vs_matched"],
            m["p_note_vs_matched"],
        )  # fmt: skip
    by = {}
    for r in rows:
        if r["method"] in ("best", "heuristic"):
            by.setdefault(r["seed"], {})[r["method"]] = Fraction(r["test_correct"], n_test)
    same = win_cfg["path"] == heur_cfg["path"]
    hv = baselines.paired_test([v["heuristic"] - v["best"] for v in by.values()])
    summary = {
        "best": {
            "path": win_cfg["path"],
            "diff_vs_blkd": vs_blkd["diff_vs_blkd"],
            "diff_ci_vs_blkd": vs_blkd["diff_ci_vs_blkd"],
            "p_holm_vs_blkd": adj["blkd"],
            "p_note_vs_blkd": vs_blkd["p_note_vs_blkd"],
        },
        "heuristic_found_best": same,
        "heuristic_vs_best": None if same else hv,
        "selection": {"tied": choice["tied"]},
    }
    out = {"index": i, **claims(summary)}
    if matched_kind is not None:
        out["beats_blkd"] = out["beats_blkd"] and matched_kind == "beats"
    return out


# ---------------------------------------------------------------------------------------
# counting and the table


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials (fractions)."""
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def tally(results: list[dict]) -> dict:
    """Counts and rates (with Clopper-Pearson 95 % intervals) of each claim over the runs
    that finished; failed runs are counted apart."""
    ok = [r for r in results if "error" not in r]
    n = len(ok)
    out = {"runs": len(results), "finished": n, "errors": len(results) - n}
    for key in ("beats_blkd", "blkd_beats", "heuristic_same", "heuristic_worse", "tied"):
        k = sum(1 for r in ok if r[key])
        out[key] = {"k": k, "rate": k / n if n else None,
                    "ci": clopper_pearson(k, n) if n else None}  # fmt: skip
    gains = [r["gain"] for r in ok if r.get("gain") is not None]
    out["gain_mean_pp"] = 100 * float(np.mean(gains)) if gains else None
    out["winner_tas_mean"] = float(np.mean([r["winner_tas"] for r in ok])) if ok else None
    return out


def _rate(c: dict) -> str:
    if c["rate"] is None:
        return "-"
    return f"{c['k']} ({100 * c['rate']:.1f} % [{100 * c['ci'][0]:.1f}, {100 * c['ci'][1]:.1f}])"


def table(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table, one row per landscape."""
    head = ("| landscape | runs | \"path beats BLKD\" | \"BLKD beats path\" | "
            "heuristic's path = winner's | \"heuristic worse than best\" | winner tied | "
            "mean gain vs BLKD | mean TAs of winner |")  # fmt: skip
    out = [head, "|" + "---|" * 9]
    for name, t in rows:
        out.append(
            f"| {name} | {t['finished']}"
            + (f" ({t['errors']} failed)" if t["errors"] else "")
            + f" | {_rate(t['beats_blkd'])} | {_rate(t['blkd_beats'])} | "
            f"{_rate(t['heuristic_same'])} | {_rate(t['heuristic_worse'])} | {_rate(t['tied'])}"
            f" | {t['gain_mean_pp']:+.2f} pp | {t['winner_tas_mean']:.2f} |"
        )
    return "\n".join(out)


def seam_available() -> bool:
    try:
        import takd_search.search.runner  # noqa: F401
    except ImportError:
        return False
    return True


def run_many(
    fn: Callable[[dict], dict], jobs: list[dict], n_jobs: int, label: str = ""
) -> list[dict]:
    """fn over jobs (in order), in `n_jobs` processes; a progress line on stderr every
    tenth of the way (the runs take seconds each)."""
    every = max(1, len(jobs) // 10)
    t0 = time.perf_counter()

    def progress(results: Iterable[dict]) -> Iterator[dict]:
        for k, r in enumerate(results, 1):
            yield r
            if k % every == 0 or k == len(jobs):
                print(f"[{label}] {k}/{len(jobs)} runs, {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip

    if n_jobs <= 1:
        return list(progress(fn(j) for j in jobs))
    ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    with ctx.Pool(n_jobs) as pool:
        return list(progress(pool.imap(fn, jobs, chunksize=1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="simulated runs per landscape")
    ap.add_argument("--jobs", type=int, default=1, help="processes (runs are independent)")
    ap.add_argument("--mode", choices=("full", "stats", "auto"), default="auto",
                    help="full: run_search with the in-process runner; stats: the "
                    "selection and statistics code on a model protocol; auto: full when "
                    "available")  # fmt: skip
    ap.add_argument("--landscape", action="append", choices=sorted(LANDSCAPES),
                    help="repeatable; default: null and effect")  # fmt: skip
    ap.add_argument("--trials", type=int, default=12, help="search trials (proposals) per side")
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--report-seeds", type=int, default=5)
    ap.add_argument("--select-seeds", type=int, default=2)
    ap.add_argument("--crn", action="store_true", help="stats mode: every procedure "
                    "proposes the same (T, alpha) sequence (common random numbers)")  # fmt: skip
    ap.add_argument("--matched", action="store_true", help="stats mode: also retrain BLKD "
                    "at the winner's hyper-parameters and claim only when both beat")  # fmt: skip
    ap.add_argument("--dataset", default="digits", help="full mode: the space's data set "
                    "(its split sizes are the counts' totals), e.g. mnist1d")  # fmt: skip
    ap.add_argument("--n-val", type=int, help="stats mode: validation images (default 288)")
    ap.add_argument("--n-test", type=int, help="stats mode: test images (default 360)")
    ap.add_argument("--first", type=int, default=0, help="index of the first run")
    ap.add_argument("--json", type=Path, help="write every run's claims and the tallies here")
    a = ap.parse_args(argv)
    mode = a.mode if a.mode != "auto" else ("full" if seam_available() else "stats")
    if mode == "full" and not seam_available():
        print("--mode full needs takd_search.search.runner (the runner seam)", file=sys.stderr)
        return 2
    names = a.landscape or ["null", "effect"]
    fn = full_run if mode == "full" else stats_run
    t0, started = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows, dump = [], {}
    for name in names:
        land = LANDSCAPES[name]
        if mode == "stats":
            land = replace(land, n_val=a.n_val or land.n_val, n_test=a.n_test or land.n_test)
        jobs = [
            {"landscape": asdict(land), "index": a.first + i, "trials": a.trials,
             "top_k": a.top_k, "report_seeds": a.report_seeds, "select_seeds": a.select_seeds,
             "crn": a.crn, "matched": a.matched, "dataset": a.dataset}
            for i in range(a.runs)
        ]  # fmt: skip
        res = run_many(fn, jobs, a.jobs, name)
        t = tally(res)
        if not t["finished"]:
            print(f"{name}: every run failed, e.g. {res[0].get('error')}", file=sys.stderr)
            return 1
        rows.append((name, t))
        dump[name] = {"landscape": asdict(land), "tally": t, "runs": res}
        errs = [r for r in res if "error" in r]
        if errs:
            print(f"{name}: {len(errs)} runs failed, e.g. {errs[0]['error']}", file=sys.stderr)
    print(table(rows))
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(
        f"\nmode {mode}; {a.runs} runs per landscape; {a.trials} proposals per side, top-"
        f"{a.top_k}, {a.select_seeds} selection + {a.report_seeds} report seeds; "
        f"{time.perf_counter() - t0:.0f} s with {a.jobs} jobs; started {started}; "
        f"nproc {os.cpu_count()}, python {platform.python_version()}, load "
        + " ".join(f"{x:.2f}" if isinstance(x, float) else x for x in load)
    )
    if a.json:
        a.json.write_text(json.dumps({"argv": argv if argv is not None else sys.argv[1:],
                                      "mode": mode, "landscapes": dump}, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
