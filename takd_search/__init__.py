"""takd-search: search teacher-assistant knowledge-distillation paths (TAKD).

Optuna proposes paths and hyper-parameters, Ray Tune runs the distillation chains, and a
content-addressed hop store trains every network once.
"""

__version__ = "0.1.0"
