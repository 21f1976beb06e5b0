#!/usr/bin/env bash
# One GPU session: throughput benchmark, then the real-data runs of results/, in
# priority order, each resumable. Run from the repository root on a CUDA machine:
#   FLOWSET=.devdata/megc2019-cde-flow OUT=/tmp/out bash scripts/gpu_session.sh
# Environment: FLOWSET (composite flow set), OUT (where run dirs and logs go),
# BUDGET (seconds this script may use, default 540), EPOCHS (default 100),
# SEEDS (default 0-9), PEAK_TFLOPS (the card's dense TF32 peak, default 495).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
FLOWSET=${FLOWSET:-.devdata/megc2019-cde-flow}
OUT=${OUT:-/tmp/mefr-gpu}
BUDGET=${BUDGET:-540}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-0-9}
PEAK=${PEAK_TFLOPS:-495}
BENCH_SEEDS=${BENCH_SEEDS:-10}
mkdir -p "$OUT/runs"
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
left() { echo $((BUDGET - SECONDS)); }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])"

log "layout micro-benchmark"
timeout 60 python3 benchmarks/step_layout.py --device cuda --models 136 --steps 10 | tee "$OUT/step_layout.md"
CL=$(grep -o 'best_channels_last=[a-z]*' "$OUT/step_layout.md" | cut -d= -f2)
LAYOUT=()
[ "$CL" = "false" ] && LAYOUT=(--set "model_kwargs={channels_last: false}")
log "layout: channels_last=${CL:-true}"

log "throughput benchmark"
timeout 150 python3 benchmarks/train_throughput.py --device cuda --seeds "$BENCH_SEEDS" \
  --epochs 2 --naive-jobs 1 --naive-epochs 2 --peak-tflops "$PEAK" \
  --out "$OUT/train_throughput_gpu.md"

run() {  # run NAME MIN_SECONDS_LEFT ARGS...
  local name=$1 need=$2; shift 2
  if [ "$(left)" -lt "$need" ]; then log "skip $name: $(left)s left < $need"; return; fi
  log "start $name"
  timeout "$(left)" python3 -m mefr.cli evaluate --features "flowset:$FLOWSET" \
    --seeds "$SEEDS" --device cuda --run-dir "$OUT/runs/$name" --no-progress \
    --set "epochs=$EPOCHS" "${LAYOUT[@]}" "$@" 2>&1 | tail -n 25
  log "end $name"
}
run cde_fr 60 --protocol cde --model fr --preset cde
run cde_basic_inception 60 --protocol cde --model basic_inception --preset cde
run smic_hs_fr 20 --protocol loso --datasets smic_hs --model fr --preset cde
run smic_hs_basic_inception 20 --protocol loso --datasets smic_hs --model basic_inception --preset cde
run cde_off_apexnet 40 --protocol cde --model off_apexnet --preset cde
run cde_ststnet 40 --protocol cde --model ststnet --preset cde
run cde_fr_fc 60 --protocol cde --model fr_fc --preset cde
run cde_fr_concat 60 --protocol cde --model fr_concat --preset cde
run cde_fr_paper_sgd 60 --protocol cde --model fr --preset paper_cde
log "done; packing"
tar -C "$OUT" -czf "$OUT/runs.tgz" runs && rm -rf "$OUT/runs"
ls -la "$OUT"
