#!/usr/bin/env bash
# One GPU session: real-data runs in priority order (the throughput benchmark after the
# issue's runs), each resumable (a committed run directory under results/ is copied
# first and extended) and packed into $OUT as soon as it ends. From the repository root:
#   FLOWSET=.devdata/megc2019-cde-flow OUT=/tmp/out bash scripts/gpu_session.sh
# Environment: FLOWSET, OUT, BUDGET (seconds for the whole script, default 540),
# EPOCHS (default 100), SEEDS (default 0-9), DEVICE (default cuda), PEAK_TFLOPS
# (the card's dense TF32 peak, default 495), PEAK_TBPS (its memory bandwidth, default
# 3.35 on an H100, else 4.8 as an H200's), BENCH_SEEDS (default 2).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
FLOWSET=${FLOWSET:-.devdata/megc2019-cde-flow}
OUT=${OUT:-/tmp/mefr-gpu}
BUDGET=${BUDGET:-540}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-0-9}
DEVICE=${DEVICE:-cuda}
PEAK=${PEAK_TFLOPS:-495}
BENCH_SEEDS=${BENCH_SEEDS:-2}
mkdir -p "$OUT/runs"
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
left() { echo $((BUDGET - SECONDS)); }

[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -z "${PEAK_TBPS:-}" ]; then
  case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)" in
    *H100*) PEAK_TBPS=3.35 ;; *) PEAK_TBPS=4.8 ;;
  esac
fi
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])"

run() {  # run NAME COMMITTED_RUN_DIR MIN_SECONDS_LEFT ARGS...
  local name=$1 committed=$2 need=$3; shift 3
  if [ "$(left)" -lt "$need" ]; then log "skip $name: $(left)s left < $need"; return; fi
  # resume the committed run: its finished seeds and folds are not trained again
  [ -d "$committed" ] && [ ! -d "$OUT/runs/$name" ] && cp -r "$committed" "$OUT/runs/$name"
  log "start $name"
  timeout "$(left)" python3 -m mefr.cli evaluate --features "flowset:$FLOWSET" \
    --seeds "$SEEDS" --device "$DEVICE" --run-dir "$OUT/runs/$name" --no-progress \
    --set "epochs=$EPOCHS" "$@" 2>&1 | tail -n 25
  log "end $name"
  tar -C "$OUT/runs" -czf "$OUT/$name.tgz" "$name"
}
# issue 33 first: the honest recipe with learning curves (FR and Basic Inception paired),
# then the committed recipe again with curves, for `mefr audit`
run cde_fr-paper_adam results/cde/fr-paper_adam 60 --protocol cde --model fr --preset paper_adam
run cde_basic_inception-paper_adam results/cde/basic_inception-paper_adam 60 --protocol cde --model basic_inception --preset paper_adam
# STSTNet under its authors' recipe (800 epochs, whatever EPOCHS says): does mefr's pipeline
# give the 0.7209 of their code on the same flows? (about 11 minutes a fold on a busy
# 2-core CPU, 68 folds a seed)
run cde_ststnet-ststnet_ref results/cde/ststnet-ststnet_ref 60 --protocol cde --model ststnet --preset ststnet_ref --set epochs=800
# then the throughput benchmark, when time is left for it
if [ "$(left)" -ge 100 ]; then
  log "throughput benchmark"
  timeout 90 python3 benchmarks/train_throughput.py --device "$DEVICE" --seeds "$BENCH_SEEDS" \
    --epochs 1 --naive-jobs 1 --naive-epochs 1 --peak-tflops "$PEAK" --peak-tbps "$PEAK_TBPS" \
    --profile 136 \
    --out "$OUT/train_throughput_$DEVICE.md" ${BENCH_ARGS:-}
else
  log "skip the throughput benchmark: $(left)s left"
fi
# does the unfold + batched-matmul group convolution beat the grouped cuDNN one on the card?
if [ "$(left)" -ge 60 ]; then
  log "group convolution: native vs matmul"
  timeout 60 python3 benchmarks/step_layout.py --device "$DEVICE" --models 136 \
    --out "$OUT/step_layout_$DEVICE.md" | tail -n 8
fi
run cde_fr_curves results/cde/fr_curves 40 --protocol cde --model fr --preset cde
run cde_basic_inception_curves results/cde/basic_inception_curves 40 --protocol cde --model basic_inception --preset cde
run cde_off_apexnet_curves results/cde/off_apexnet_curves 40 --protocol cde --model off_apexnet --preset cde
run cde_fr results/cde/fr 30 --protocol cde --model fr --preset cde
run cde_basic_inception results/cde/basic_inception 30 --protocol cde --model basic_inception --preset cde
run cde_fr_fc results/cde/fr_fc 30 --protocol cde --model fr_fc --preset cde
run cde_fr_concat results/cde/fr_concat 30 --protocol cde --model fr_concat --preset cde
run cde_off_apexnet results/cde/off_apexnet 30 --protocol cde --model off_apexnet --preset cde
run smic_hs_fr results/loso/smic_hs/fr-cde 20 --protocol loso:smic_hs --model fr --preset cde
run smic_hs_basic_inception results/loso/smic_hs/basic_inception-cde 20 --protocol loso:smic_hs --model basic_inception --preset cde
rm -rf "$OUT/runs"
log "done"
ls -la "$OUT"
