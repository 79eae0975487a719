#!/usr/bin/env bash
# The GPU checks of issues 17 and 25 in one command, 8 minutes (--budget 480 s) on an H200
# in the order that gives the most trustworthy numbers first; one folder of outputs and a
# summary table at the end.
#
# ---- How a session with a device machine runs it: ONE call of the device tool ----------
# 1. Here, first (the GPU machine reaches no package index, and its image lacks Ray Tune,
#    Optuna and pydantic, which the `search` step needs):
#        bash bench/gpu_wheels.sh        # ~50 MiB of Python 3.12 wheels into .whl/ (ignored)
# 2. One device call (the working tree travels; .whl only because it is carried):
#        run(command="GIT_REV=$(git rev-parse --short HEAD) bash bench/gpu.sh",
#            carry=[".whl"], timeout_s=560)
#    (write the revision into the command literally: there is no .git on that machine.)
#    Nothing else to install there: its python3 (/opt/torch/.venv) holds a CUDA torch
#    (2.11.0+cu130 when last seen), numpy, pandas, scikit-learn, pyyaml, matplotlib and
#    pytest. This script puts the repository on PYTHONPATH instead of `pip install -e .`
#    (which would try to fetch build dependencies: nothing can be fetched there) and
#    pip-installs .whl/*.whl --no-deps into /tmp/takd-site. Without .whl the `search` step
#    says SKIPPED and every other step runs.
#    $OUT is set there, so the outputs land in $OUT as summary.md (the table), results.json
#    (every step's numbers), gpu.log, profile.txt and steps.tar.gz (each step's log and
#    JSON, nvidia-smi samples): 5 files, as the tool returns at most 8.
#    Device time: the machine's start (1-2 min) + this script (--budget 480 s + ~20 s of
#    install) + transfers ~ 11 of the 15 minutes.
# 3. Only if a step FAILED or was cut short, AT ONCE (the machine stays warm 30 s; a new
#    start needs 4 minutes left): a second call with just those steps and a short budget,
#        run(command="bash bench/gpu.sh --only hostsync,concurrent_mps --budget 150",
#            carry=[".whl"], timeout_s=180)
#    then give_back. Copy summary.md's table into bench/RESULTS.md with its header lines.
#
# ---- Anywhere else ----------------------------------------------------------------------
#   bash bench/gpu.sh                       # CUDA, full sizes, into bench/out/gpu-<date>
#   bash bench/gpu.sh --device cpu --tiny   # the CPU dry run (a few minutes on 2 cores)
#   options: --device cuda|cpu  --tiny  --only STEP,STEP  --out DIR  --budget SECONDS
#            --compile-batches "256 512" (the compile step's batch sizes, for a re-run)
#
# Steps (issue 25: the most trustworthy numbers first, for a 15-minute device slot; each
# has its own time limit, clipped so the total stays inside --budget, default 480 s, x3
# with --tiny; a step that fails, times out or is skipped is marked so in the table, writes
# its rows as it finishes them, and the others still run):
#   env            GPU model, driver, torch, CUDA, date, git revision; bf16 product rate
#   tests          the `gpu`-marked pytest tests (bf16 autocast + channels_last hop)
#   repeat         one distilled hop trained twice: bit-identical weights? (deterministic flags)
#   epochs         per-model epoch time at 45,000 images: plain2/4/10, resnet8/110, batch 128, 512
#   hostsync       the same epoch with the old per-step host copies put back: before/after
#   concurrent     1/2/4/8 trial processes on the one GPU at once, without Ray
#   concurrent_mps the same under MPS (nvidia-cuda-mps-control, started and stopped here)
#   compile        eager vs torch.compile vs CUDA graphs, batch 128 only
#   search         a small whole Ray search at resources.gpu 0.25, nvidia-smi utilisation
# Not in the default order (name them with --only): agree, throughput, flops, hop150, profile
# (issue 17's checks).
# Device time: start 1-2 min + 480 s + ~30 s of install and transfer ~ 10-11 of 15 minutes,
# which leaves a warm re-run of a failed step (--only STEP --budget 150).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

DEVICE=cuda TINY=0 ONLY="" OUTDIR="" BUDGET="" CBATCH="128 256 512"
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --compile-batches) CBATCH=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "bench/gpu.sh: unknown option $1 (see bench/gpu.sh --help)" >&2; exit 2 ;;
  esac
done
# --tiny is the CPU dry run: no device lease to fit, and 2 shared cores run it 3x slower
# than a GPU runs the full sizes, so its limits and budget (1260 s) are tripled
SCALE=1
[ "$TINY" = 1 ] && SCALE=3
BUDGET=${BUDGET:-$((480 * SCALE))}
OUTDIR=${OUTDIR:-${OUT:-bench/out/gpu-$(date -u +%Y%m%d-%H%M%S)}}
mkdir -p "$OUTDIR/steps" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
STEPS=$OUTDIR/steps
: >"$STEPS/status.tsv"
exec > >(tee -a "$OUTDIR/gpu.log") 2>&1
TEE=$!
START=$(date +%s)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 GIT_REV DEVICE PY HAS_CUDA
GIT_REV=${GIT_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo "unknown (no .git)")}
[ "$TINY" = 1 ] && T_=--tiny || T_=

# ---- install: the repository on PYTHONPATH, carried wheels in /tmp/takd-site -------------
SITE=""
if compgen -G ".whl/*.whl" >/dev/null; then
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/takd-site .whl/*.whl >"$STEPS/install.log" 2>&1; then
    SITE=/tmp/takd-site:
  else
    echo "install of .whl/ failed (see steps/install.log); the search step will skip"
  fi
fi
export PYTHONPATH="$SITE$REPO${PYTHONPATH:+:$PYTHONPATH}"
echo "# bench/gpu.sh: device $DEVICE, tiny $TINY, budget ${BUDGET}s, out $OUTDIR, git $GIT_REV"
HAS_CUDA='import torch, sys; sys.exit(not torch.cuda.is_available())'
echo "# python $("$PY" -c 'import sys, torch
print(sys.executable, "torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1)"

if [ "$DEVICE" = cuda ] && ! "$PY" -c "$HAS_CUDA"; then
  echo "bench/gpu.sh: --device cuda but torch sees no CUDA device here; every GPU step will"
  echo "  say SKIPPED. Run it on the GPU machine, or 'bash bench/gpu.sh --device cpu --tiny'."
fi

# step NAME LIMIT_S COMMAND...: run with a time limit clipped to the budget left (10 s kept
# for the summary); record OK / FAILED (rc) / TIMEOUT / SKIPPED and the seconds it took
step() {
  local name=$1 limit=$(($2 * SCALE)); shift 2
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return; fi
  if [ -z "$ONLY" ] && [[ " $DEFAULT " != *" $name "* ]]; then return; fi
  local left=$((BUDGET - 10 - ($(date +%s) - START)))
  if [ "$left" -lt 15 ]; then
    printf '%s\tSKIPPED\t0\tno time left in the %ss budget\n' "$name" "$BUDGET" \
      >>"$STEPS/status.tsv"
    echo "== $name: SKIPPED (budget spent)"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  local t0=$(date +%s) rc st note=""
  # bash -c: the guards below are shell functions, which timeout cannot run by itself
  timeout -k 10 "$limit" bash -c '"$@"' _ "$@" >"$STEPS/$name.log" 2>&1
  rc=$?
  case $rc in
    0) st=OK ;;
    3) st=SKIPPED; note=$(grep -m1 SKIPPED "$STEPS/$name.log") ;;
    124|137) st="TIMEOUT (${limit}s)" ;;
    *) st="FAILED (rc $rc)"; note=$(grep -v '^\s*$' "$STEPS/$name.log" | tail -1 | cut -c1-200) ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$st" "$(($(date +%s) - t0))" "$note" >>"$STEPS/status.tsv"
  echo "== $name: $st in $(($(date +%s) - t0))s"
  [ "$st" = OK ] || tail -n 5 "$STEPS/$name.log" | sed 's/^/   | /'
}

need_cuda() { # a GPU-only command: on the CPU dry run it still runs, on --device cpu
  [ "$DEVICE" = cpu ] || "$PY" -c "$HAS_CUDA" || { echo "SKIPPED: torch sees no CUDA device"
    return 3; }
  "$@"
}
need_search_deps() {
  "$PY" -c 'import ray, optuna, pydantic' 2>/dev/null || {
    echo "SKIPPED: ray/optuna/pydantic not importable; run bench/gpu_wheels.sh here and carry .whl"
    return 3; }
  "$@"
}
with_mps() { # run "$@" under NVIDIA MPS, started here and stopped after (SKIPPED without it)
  [ "$DEVICE" = cuda ] || { "$@"; return; }  # the CPU dry run: the same code path, no MPS
  command -v nvidia-cuda-mps-control >/dev/null || {
    echo "SKIPPED: nvidia-cuda-mps-control not found"; return 3; }
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/takd-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/takd-mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d || { echo "SKIPPED: MPS did not start"; return 3; }
  trap 'echo quit | nvidia-cuda-mps-control' EXIT  # stopped even when the limit kills "$@"
  "$@"
}
export -f need_cuda need_search_deps with_mps

C="$PY bench/gpu_checks.py"
A=(--device "$DEVICE" --dir "$STEPS" $T_)
GPU_TESTS=$(grep -l 'mark.gpu' tests/test_*.py | tr '\n' ' ')
if [ "$TINY" = 1 ]; then
  TP=(--pairs plain resnet --batches 64 --n-train 256 --n-test 20 --n-warm 100 --reps 1 \
      --workers 0 --val-fraction 0.05 --classes 10)
else
  TP=(--pairs plain resnet --batches 128 256 512 --n-train 45000 --n-test 1000 --n-warm 2000 \
      --reps 2 --workers 2 --classes 100)
fi

S="$PY bench/gpu_scale.py"
if [ "$TINY" = 1 ]; then PROCS="1 2"; EB="128"; CBATCH=64; else PROCS="1 2 4 8"; EB="128 512"; CBATCH=128; fi
DEFAULT="env tests repeat epochs hostsync concurrent concurrent_mps compile search"
step env 25 need_cuda $C env "${A[@]}"
step tests 50 need_cuda "$PY" -m pytest -q -m gpu -p no:cacheprovider $GPU_TESTS
step repeat 40 need_cuda $S repeat "${A[@]}"
step epochs 110 need_cuda $S epochs "${A[@]}" --batches $EB
step hostsync 40 need_cuda $S hostsync "${A[@]}"
step concurrent 55 need_cuda $S concurrent "${A[@]}" --procs $PROCS
step concurrent_mps 55 need_cuda with_mps $S concurrent "${A[@]}" --procs $PROCS --mps
step compile 50 need_cuda $C compile "${A[@]}" --pairs plain resnet --batches $CBATCH
step search 80 need_cuda need_search_deps $C search "${A[@]}" --epochs 5 --trials 6 --gpus 0.25
# issue 17's checks: only with --only NAME
step agree 75 need_cuda $C agree "${A[@]}"
step throughput 150 need_cuda "$PY" bench/hop_throughput.py --device "$DEVICE" "${TP[@]}" \
  --json "$STEPS/throughput.json"
step flops 30 need_cuda $C flops "${A[@]}"
step hop150 60 need_cuda $C hop150 "${A[@]}" --epochs 20
step profile 60 need_cuda $C profile "${A[@]}"

# ---- summary and packing ----------------------------------------------------------------
echo
$PY bench/gpu_checks.py summary --device "$DEVICE" --dir "$STEPS" || cat "$STEPS/status.tsv"
tar czf "$OUTDIR/steps.tar.gz" -C "$OUTDIR" steps
# in $OUT the device tool returns at most 8 files: keep summary.md, results.json, gpu.log,
# steps.tar.gz and the profile table, and drop the unpacked folder
if [ -n "${OUT:-}" ] && [ "$OUTDIR" = "$(cd "$OUT" && pwd)" ]; then
  cp "$STEPS/profile.txt" "$OUTDIR/profile.txt" 2>/dev/null
  rm -rf "$STEPS"
fi
echo "# total $(($(date +%s) - START)) s; outputs in $OUTDIR"
exec >&- 2>&-
wait "$TEE" 2>/dev/null  # gpu.log complete before the command returns
