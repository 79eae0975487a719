"""A trial's per-hop settings in the user's unit (fractions of a hop's epochs), the one
conversion to the engine's whole epochs, and the reading of the old names.

Two units, two sets of names:

- fractions, where a user or a search speaks: the space file (`distill.kd_fraction`,
  `distill.parent_fraction`), a trial config's `hops` ({T, alpha, kd_fraction,
  parent_fraction}), trials.csv, study.db, the report, `run-path --kd-fraction`;
- whole epochs, where the engine trains and keys: `HopParams.kd_epochs` and
  `.parent_epoch`, `HopSpec` (the hop store's key), the lineage rows of `phases/*.json`
  (`hop_rows`) and of an exported student.

`HopFractions.to_params` is the only place where one becomes the other (a trial, run-path
and the snapshots every hop keeps all go through it).

Until 2026-12-03 the fractions carried the engine's names (`kd_epochs`, `parent_epoch`).
`OLD_NAMES` maps them to the new ones; space files and run folders written with them are
read through `upgrade_*` (results.py, the resumed phases), so nothing else knows them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from takd_search.engine.hop import HopParams

# the fractions' names until 2026-12-03 -> their names now (docs/results.md, compatibility)
OLD_NAMES = {"kd_epochs": "kd_fraction", "parent_epoch": "parent_fraction"}
# an Optuna parameter of a trial config under an old name: `kd_epochs`, `kd_epochs_plain4`
# (per hop), `p0_kd_epochs` (a top-up space's per-path names)
_OLD_PARAM = re.compile(r"^(p\d+_)?(kd_epochs|parent_epoch)(_.+)?$")


def kd_epochs(fraction: float, epochs: int) -> int:
    """Student early stop: the whole epochs trained with the soft loss (at least 1)."""
    return max(1, round(fraction * epochs))


def parent_epoch(fraction: float, epochs: int) -> int | None:
    """Teacher early stop: the parent's epoch whose weights are distilled from; None for
    1.0 (the parent's selected, best-validation weights)."""
    return None if fraction >= 1.0 else max(1, round(fraction * epochs))


@dataclass(frozen=True)
class HopFractions:
    """One hop's distillation settings as a trial config holds them.

    T: softmax temperature. alpha: weight of the soft loss. kd_fraction: the share of
    the hop's epochs trained with the soft loss (the rest: labels only). parent_fraction:
    distil from the parent's weights at this share of its epochs (1.0: its selected
    weights). Both fractions are in (0, 1].
    """

    T: float = 4.0
    alpha: float = 0.5
    kd_fraction: float = 1.0
    parent_fraction: float = 1.0

    @classmethod
    def of(cls, hop: Mapping) -> HopFractions:
        """A trial config's hop dict (keys besides these, e.g. `lambda_takd`, are the
        search's record, not the chain's)."""
        return cls(hop["T"], hop["alpha"], hop["kd_fraction"], hop["parent_fraction"])

    def as_dict(self) -> dict:
        return asdict(self)

    def to_params(self, epochs: int) -> HopParams:
        """The engine's settings for a hop of `epochs` epochs: the fractions as whole
        epochs (round(f * epochs), at least 1; parent_fraction 1.0 -> None)."""
        return HopParams(
            T=self.T,
            alpha=self.alpha,
            kd_epochs=kd_epochs(self.kd_fraction, epochs),
            parent_epoch=parent_epoch(self.parent_fraction, epochs),
        )


def hop_params(hops: list[Mapping], epochs: int) -> list[HopParams]:
    """A trial config's `hops` -> the chain's HopParams, one per hop."""
    return [HopFractions.of(h).to_params(epochs) for h in hops]


# ---- old names -> new, for what was written before the rename ----------------------------


def upgrade_hops(hops):
    """A list of hop dicts with the old names renamed (anything else as it is)."""
    if not isinstance(hops, list):
        return hops
    return [
        {OLD_NAMES.get(k, k): v for k, v in h.items()} if isinstance(h, dict) else h for h in hops
    ]


def _param_name(name: str) -> str:
    m = _OLD_PARAM.match(name)
    if not m:
        return name
    return f"{m.group(1) or ''}{OLD_NAMES[m.group(2)]}{m.group(3) or ''}"


def upgrade_config(config):
    """A trial config: its `hops`, the Optuna parameters it carries (`kd_epochs_plain4`
    -> `kd_fraction_plain4`) and a fixed phase's nested `case`."""
    if not isinstance(config, dict):
        return config
    out = {_param_name(k): v for k, v in config.items()}
    if "hops" in out:
        out["hops"] = upgrade_hops(out["hops"])
    if isinstance(out.get("case"), dict):
        out["case"] = upgrade_config(out["case"])
    return out


def upgrade_rows(rows):
    """Trial rows (phases/*.json, a runner's saved trials): each row's config. The
    metrics (`hop_rows`) are the engine's and keep `kd_epochs`/`parent_epoch`, whole
    epochs."""
    if not isinstance(rows, list):
        return rows
    return [
        {**r, "config": upgrade_config(r["config"])}
        if isinstance(r, dict) and isinstance(r.get("config"), dict)
        else r
        for r in rows
    ]


def upgrade_distill(distill):
    """A space's `distill` section (a file's or space.json's): old keys renamed; both
    names of one setting are left for the schema to refuse."""
    if not isinstance(distill, dict) or not any(k in distill for k in OLD_NAMES):
        return distill
    if any(old in distill and new in distill for old, new in OLD_NAMES.items()):
        return distill
    return {OLD_NAMES.get(k, k): v for k, v in distill.items()}


def upgrade_space(space):
    """space.json (the effective space of a run folder)."""
    if not isinstance(space, dict) or "distill" not in space:
        return space
    return {**space, "distill": upgrade_distill(space["distill"])}


def upgrade_summary(summary):
    """summary.json: every method's `hops` (best, heuristic, blkd, nokd, top*)."""
    if not isinstance(summary, dict):
        return summary

    def method(m):
        return {**m, "hops": upgrade_hops(m["hops"])} if isinstance(m, dict) and "hops" in m else m

    out = {k: method(v) for k, v in summary.items()}
    if isinstance(out.get("top"), dict):
        out["top"] = {k: method(v) for k, v in out["top"].items()}
    return out


def upgrade_key(dotted: str) -> str:
    """A dotted space key (`--set distill.kd_epochs=...`) under its current name."""
    section, _, leaf = dotted.rpartition(".")
    return f"{section}.{OLD_NAMES[leaf]}" if section == "distill" and leaf in OLD_NAMES else dotted
