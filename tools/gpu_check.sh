#!/usr/bin/env bash
# GPU check for the VOS plugin (issue 3): run on a machine with a CUDA device, from anywhere.
#   1. the CUDA-only tests (pytest -m cuda): no host-device sync inside a plugin step
#      (torch.cuda.set_sync_debug_mode("error")), bf16 autocast against float32;
#   2. the benchmark sections `step` (CUDA cases only) and `synthesis`, printed as tables and written to
#      runs/gpu_check.json.
# Budget: under 5 minutes on one GPU. Exit status: non-zero if any part failed (all parts still run).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package without installing it
PYTHON="${PYTHON:-python}"
status=0
start=$SECONDS

"$PYTHON" - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA device"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}")
PY

echo "== CUDA tests"
timeout 150 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests || status=1
echo "   ($((SECONDS - start)) s)"

echo "== benchmark: step (CUDA), synthesis"
mkdir -p runs
VOS_STEP_DEVICES=cuda timeout 90 "$PYTHON" tools/benchmark.py step --json runs/gpu_check_step.json || status=1
timeout 60 "$PYTHON" tools/benchmark.py synthesis --quick --json runs/gpu_check_synthesis.json || status=1
echo "== done in $((SECONDS - start)) s, status $status"
exit $status
