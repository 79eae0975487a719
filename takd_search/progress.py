"""Console output: progress lines while hops train, and plain-text tables.

Progress goes to stderr (so stdout stays a clean table); on a terminal the epoch line is
rewritten in place, elsewhere (CI, logs, Ray workers) a line is printed every few epochs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def fmt_acc(x) -> str:
    """A fraction in [0, 1] as a percentage with two decimals, '-' when missing."""
    try:
        if x is None or x != x:
            return "-"
        return f"{100 * float(x):.2f}"
    except (TypeError, ValueError):
        return "-"


class HopProgress:
    """Turns the chain's events into progress lines: `hop 2/3 plain4 <- plain10 ...`."""

    def __init__(self, stream=None, every: int | None = None, prefix: str = ""):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.prefix = prefix
        self._epochs = None

    def _head(self, info: dict) -> str:
        where = f"hop {info['hop']}/{info['hops']} " if "hop" in info else ""
        src = f" <- {info['parent']}" if info.get("parent") else ""
        return f"{self.prefix}{where}{info['model']}{src}"

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "hop_start":
            self._epochs = info.get("epochs")
        elif kind == "epoch":
            e = info["epoch"]
            every = self.every or 5
            line = (
                f"{self._head(info)}: epoch {e} loss {info['train_loss']:.3f} "
                f"val {fmt_acc(info['val_acc'])}%"
            )
            if self.tty:
                self.stream.write("\r\033[K" + line)
                self.stream.flush()
            elif e == 1 or e % every == 0:
                print(line, file=self.stream, flush=True)
        elif kind == "hop_end":
            if self.tty:
                self.stream.write("\r\033[K")
            print(
                f"{self._head(info)}: {info['status']}, val {fmt_acc(info['val_acc'])}% "
                f"({info['seconds']:.1f} s{' saved' if info['status'] == 'reused' else ''})",
                file=self.stream,
                flush=True,
            )


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """A plain fixed-width table; columns are (key, heading) pairs. Accuracies are
    printed as percentages when the key ends in '_acc'."""

    def cell(row, key):
        v = row.get(key)
        if key.endswith("_acc"):
            return fmt_acc(v)
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10000:
            return f"{v:,}"
        return "-" if v is None else str(v)

    body = [[cell(r, k) for k, _ in columns] for r in rows]
    heads = [h for _, h in columns]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(heads)
    ]
    # numbers right-aligned, text left-aligned, as a reader expects
    numeric = [all(_numeric(b[i]) for b in body) if body else False for i in range(len(heads))]

    def line(cells):
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)
        ).rstrip()

    return "\n".join([line(heads), line(["-" * w for w in widths]), *map(line, body)])


def _numeric(text: str) -> bool:
    return text == "-" or text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
