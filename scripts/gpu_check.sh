#!/usr/bin/env bash
# The prepared check for a CUDA machine, at most 10 minutes: the speed benchmark on the GPU (batch
# 1/32/256 against the CLAP tower, from arrays and from files), the CUDA tests, one short epoch of
# each training phase in bf16 on ESC-50, and `embed --ray` on one GPU where Ray is installed. Writes benchmarks/results/gpu.md (and the
# pieces under benchmarks/results/gpu/).
#
#     bash scripts/gpu_check.sh                 # from the repository root, on the CUDA machine
#     ESC50=/path/to/esc50 bash scripts/gpu_check.sh
#     GPU_CHECK_DEVICE=cpu bash scripts/gpu_check.sh   # the same steps, tiny, on CPU, report in /tmp:
#                                                      # checks the plumbing
#
# Packages the machine lacks (soundfile, faiss-cpu on this project's GPU image) can travel as
# wheels in .whl/ (see the device notes); they are installed into /tmp/site when present.
# Without ESC-50 at $ESC50 the training step is skipped and the report says so. The device copies
# only the repository (64 MiB of carried files): all of ESC-50 (171 MB) does not fit, so carry a
# subset of its audio and meta/esc50.csv in an ignored folder and point ESC50 at it.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${GPU_CHECK_DEVICE:-cuda}
ESC50=${ESC50:-../shared/data/esc50}
# The CPU run only checks the plumbing: its report goes to /tmp, never over the GPU's.
RESULTS=${GPU_CHECK_RESULTS:-$([ "$DEVICE" = cuda ] && echo benchmarks/results || echo /tmp/gpu_check_cpu)}
OUT=$RESULTS/gpu
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
status=()

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, remember the outcome
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local code=$?
    status+=("| $name | $([ $code -eq 0 ] && echo passed || echo "failed (exit $code)") | $((SECONDS - start)) s |")
    echo "$name: exit $code in $((SECONDS - start)) s"
}

$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')" \
    > "$OUT/device.txt" 2>&1
if [ "$DEVICE" = cuda ]; then
    step speed 200 $PY -m benchmarks.speed --device cuda --batches 1,32,256 --repeats 5 --conditions idle \
        --skip-command --skip-memory --skip-faiss --output "$OUT/speed"
    step cuda_tests 100 $PY -m pytest -q -p no:cacheprovider -k "cuda" tests
    EPOCHS=(--neuralogram-epochs 1 --branch-epochs 1 --fusion-epochs 1 --finetune-epochs 1 --precision bf16)
else
    step speed 200 $PY -m benchmarks.speed --device cpu --files 2 --batches 1 --repeats 1 --conditions idle \
        --skip-command --skip-memory --skip-faiss --output "$OUT/speed"
    step cuda_tests 100 $PY -m pytest -q -p no:cacheprovider -k "cuda" tests
    EPOCHS=(--neuralogram-epochs 1 --branch-epochs 1 --fusion-epochs 1 --finetune-epochs 1 --max-steps-per-phase 2)
fi
if [ -f "$ESC50/meta/esc50.csv" ]; then
    $PY scripts/esc50_manifest.py "$ESC50" > /tmp/gpu_check_esc50.csv
    if [ "$DEVICE" != cuda ]; then  # the plumbing only: 8 clips per fold
        awk -F, 'NR == 1 || seen[$3]++ < 8' /tmp/gpu_check_esc50.csv > /tmp/gpu_check_small.csv
        mv /tmp/gpu_check_small.csv /tmp/gpu_check_esc50.csv
    fi
    step train_bf16 180 $PY -m diverse_embed.cli train --dataset csv --manifest /tmp/gpu_check_esc50.csv \
        --audio-root "$ESC50/audio" --train-splits 1,2,3 --val-splits 4 --test-splits 5 --device "$DEVICE" \
        --output /tmp/gpu_check_run --cache-dir /tmp/gpu_check_cache --quiet "${EPOCHS[@]}"
    cp /tmp/gpu_check_run/metrics.md "$OUT/train_metrics.md" 2>/dev/null
else
    status+=("| train_bf16 | not run: no ESC-50 at $ESC50 | - |")
fi

# Ray's path on one GPU (embed --ray, one model per GPU), where the ray extra is installed (its wheel,
# about 70 MB, is larger than what travels to the device in .whl/, so it must be on the image).
if [ -d "$ESC50/audio" ] && $PY -c "import ray.data" 2>/dev/null; then
    rm -rf /tmp/gpu_check_ray_src /tmp/gpu_check_ray && mkdir -p /tmp/gpu_check_ray_src
    for f in $(ls "$ESC50/audio" | head -64); do ln -s "$(realpath "$ESC50/audio/$f")" /tmp/gpu_check_ray_src/; done
    step ray 150 $PY -m diverse_embed.cli embed /tmp/gpu_check_ray_src --output /tmp/gpu_check_ray --ray --device "$DEVICE" -q
else
    status+=("| ray | not run: no ESC-50 at $ESC50, or the ray extra is not installed | - |")
fi

{
    echo "# GPU check ($(cat "$OUT/device.txt" | tail -1))"
    echo
    echo "Command: \`bash scripts/gpu_check.sh\` (device $DEVICE), $(date -u +%Y-%m-%d)."
    echo
    echo "| step | outcome | time |"
    echo "|---|---|---|"
    printf '%s\n' "${status[@]}"
    echo
    [ -f "$OUT/speed.md" ] && sed 's/^# /## /' "$OUT/speed.md"
    echo
    echo "## CUDA tests"
    echo
    tail -3 "$OUT/cuda_tests.log" | sed 's/^/    /'
    if [ -f "$OUT/train_metrics.md" ]; then
        echo
        echo "## One epoch of each phase, bf16 (training throughput per phase at the end)"
        echo
        sed 's/^#/##/' "$OUT/train_metrics.md"
    fi
} > "$RESULTS/gpu.md"
echo "wrote $RESULTS/gpu.md"
