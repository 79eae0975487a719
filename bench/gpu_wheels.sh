#!/usr/bin/env bash
# Fetch, HERE (a machine that reaches PyPI), the Python 3.12 x86-64 wheels that the GPU
# machine lacks for step 4 of bench/gpu.sh (a whole search needs Ray Tune, Optuna and
# pydantic; that machine's image has torch, numpy, pandas, pyarrow, scikit-learn, pyyaml,
# matplotlib and pytest but not these), into .whl/ in the repository root.
#
# Why a script: nothing can be downloaded on the GPU machine, and what travels there is
# capped at 64 MiB in all. Ray's own wheel is 79 MB, 32 MB of it Java jars; this drops the
# jars and the libraries a search never imports (RLlib, Serve, LLM, the dashboard's source
# maps), which leaves it at about 45 MB. pip then installs it there with --no-deps.
#
# Usage (repository root):  bash bench/gpu_wheels.sh      # then carry [".whl"] in the run
# Pins: the versions the project is tested with on the CPU machines (bench/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-.whl}  # ignored by .gitignore, so it travels only when carried
PY=${PYTHON:-python3}
PINS=(
  ray==2.60.0 optuna==5.0.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5 typing_extensions==4.16.0 sqlalchemy==2.1.9 alembic==1.20.1
  mako==1.4.3 colorlog==6.12.0 tensorboardX==2.6.5 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
)
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$DEST" "${PINS[@]}"
# Ray without what a search never loads: rewritten in place, same file name
"$PY" - "$DEST" <<'EOF'
import sys, zipfile
from pathlib import Path

drop = ("ray/jars/", "ray/rllib/", "ray/serve/", "ray/llm/")
for whl in Path(sys.argv[1]).glob("ray-*.whl"):
    tmp = whl.with_suffix(".tmp")
    with zipfile.ZipFile(whl) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            name = item.filename
            if name.startswith(drop) or name.endswith(".js.map"):
                continue
            out.writestr(item, src.read(name), compresslevel=9)
    tmp.replace(whl)
    print(f"{whl.name}: {whl.stat().st_size / 2**20:.1f} MiB after stripping")
EOF
du -ch "$DEST"/*.whl | tail -1
echo "now call the device tool with carry [\".whl\"] (bench/gpu.sh installs them there)"
