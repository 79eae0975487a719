"""takd-search: search teacher-assistant knowledge-distillation paths (TAKD).

Optuna proposes paths and hyper-parameters, Ray Tune runs the distillation chains, and a
content-addressed hop store trains every network once.
"""

__version__ = "0.1.0"


def run(space, **kw) -> dict:
    """Run (or resume) one search and return its summary: see takd_search.api.run.
    (Imports Ray, torch and Optuna only when called.)"""
    from takd_search.api import run as _run  # the search: only when called

    return _run(space, **kw)


def load_student(path):
    """A student exported by `takd-search export`, ready to call: float images
    [N, C, H, W] in [0, 1] -> logits. (Imports torch only when called.)"""
    from takd_search.export import load_student as _load  # torch: only when called

    return _load(path)
