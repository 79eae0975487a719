"""`takd-search report` for a `run-path` folder (chain.json): report.md with the hop
table, any premise warnings, and one plot of every hop's validation accuracy per epoch
(the student trained alone dashed). Reads the folder only: no Ray, no torch.

Accuracies are fractions in chain.json and percentages in the report.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from takd_search import results
from takd_search.atomic import write_atomic
from takd_search.progress import table
from takd_search.report.plots import figure, save_png
from takd_search.report.premise import chain_warnings
from takd_search.report.tables import markdown_table

PLOT = "learning_curves.png"


def _pct(x) -> str:
    return "-" if x is None or x != x else f"{100 * float(x):.2f}"


def plot_chain_curves(chain: dict, path: Path) -> Path | None:
    """Validation accuracy per epoch of each trained hop (and the student alone);
    None when no hop carries a curve (e.g. every hop was given or reused without one)."""
    hops = [h for h in chain["hops"] if h.get("curve")]
    alone = chain.get("student_alone")
    if not hops and not (alone and alone.get("curve")):
        return None
    fig = figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for h in hops:
        c = pd.DataFrame(h["curve"])
        src = f" <- {h['parent']}" if h.get("parent") else ""
        ax.plot(c["epoch"], 100 * c["val_acc"], marker=".", label=f"{h['model']}{src}")
    if alone and alone.get("curve"):
        c = pd.DataFrame(alone["curve"])
        ax.plot(c["epoch"], 100 * c["val_acc"], "k--", label=f"{alone['model']} alone (NoKD)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{chain['path']} on {chain['dataset']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_png(fig, path)


def report_chain(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict:
    """Write report.md (+ learning_curves.png) for a run-path folder. Returns
    {'report', 'plots', 'table', 'stats'} like `build.report` (stats: the hop table)."""
    d = results.check_run_dir(results.run_dir_of(run_dir))
    chain = results.read_json(d, results.CHAIN)
    out = Path(out_dir) if out_dir is not None else d
    out.mkdir(parents=True, exist_ok=True)
    hops = results.load_chain(d)
    shown = pd.DataFrame(
        {
            "hop": hops["hop"].astype(str),
            "model": hops["model"],
            "from": hops["parent"].fillna("-"),
            "params": hops["params"].map(lambda v: "-" if v != v or v is None else f"{int(v):,}"),
            "status": hops["status"],
            "val %": hops["val_acc"].map(_pct),
            "test %": hops["test_acc"].map(_pct),
            "T": hops["T"].map(lambda v: "-" if v is None or v != v else f"{v:g}"),
            "alpha": hops["alpha"].map(lambda v: "-" if v is None or v != v else f"{v:g}"),
        }
    )
    warnings = chain.get("warnings")
    if warnings is None:  # a folder from before chain.json kept its warnings
        warnings = chain_warnings(chain["hops"], chain.get("student_alone"))
    plots = {}
    p = plot_chain_curves(chain, out / PLOT)
    if p is not None:
        plots["curves"] = p
    student, alone = chain["hops"][-1], chain.get("student_alone")
    gain = (
        f" Against the student trained alone ({_pct(alone['test_acc'])}% test): "
        f"{100 * (student['test_acc'] - alone['test_acc']):+.2f} pp, one seed (a single "
        "run-path is no statistical comparison: `takd-search run` confirms with seeds)."
        if alone and student.get("test_acc") is not None and alone.get("test_acc") is not None
        else ""
    )
    md = [
        f"# run-path {chain['path']} on {chain['dataset']}",
        "",
        f"Run folder `{d}`, seed {chain.get('seed')}, {chain.get('guidance')} guidance, "
        f"{(chain.get('train') or {}).get('epochs')} epochs per hop, on {chain.get('device')}.",
        "",
        "## Answer",
        "",
        f"The student {student['model']} reached {_pct(student['test_acc'])}% test "
        f"({_pct(student['val_acc'])}% validation).{gain}",
        "",
        *[f"> **{w}**" for w in warnings],
        *([""] if warnings else []),
        "## Hops",
        "",
        markdown_table(shown),
        "",
    ]
    if plots:
        md += [
            "## Learning curves",
            "",
            "Validation accuracy after each epoch of every hop trained in this run.",
            "",
            f"![learning curves]({os.path.relpath(plots['curves'], out)})",
            "",
        ]
    path = write_atomic(out / "report.md", "\n".join(md))
    text = table(
        [r for r in chain["hops"] + ([alone] if alone else [])],
        [("hop", "hop"), ("model", "model"), ("parent", "from"), ("val_acc", "val %"),
         ("test_acc", "test %")],
    )  # fmt: skip
    return {"report": path, "plots": plots, "table": text, "stats": hops}
