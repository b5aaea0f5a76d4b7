#!/usr/bin/env bash
# The bundled default model, diverse-embed-multi, from nothing but the corpora's repositories:
#
#   scripts/train_default.sh REPOS ESC50 WORK
#
# REPOS holds a clone of each corpus repository (scripts/corpora.py says how they are found), ESC50
# the 16 kHz ESC-50 folder, WORK receives the extracted audio (WORK/corpora) and the run
# (WORK/run). About 100 minutes on a 2-core CPU (benchmarks/results/multi_corpus/README.md); then
# `python scripts/bundle_checkpoint.py WORK/run --name diverse-embed-multi` packages it.
set -euo pipefail
repos="$1" esc50="$2" work="$3"
python scripts/corpora.py --repos "$repos" --esc50 "$esc50" --output "$work/corpora"
# One epoch is 28,000 one-second chunks drawn across the seven corpora, ESC-50 with 6 shares of
# 12 (its sounds are what a user's collection mostly resembles); no validation split is used to
# pick epochs (the last epoch of each phase is kept), so the corpora's val splits stay unseen.
diverse-embed train --dataset csv --manifest "$work/corpora/train.csv" --audio-root / --allow-outside-root \
    --train-splits train --val-splits none --test-splits test --output "$work/run" \
    --chunks-per-epoch 28000 --corpus-weights esc50=6 --neuralogram-epochs 7 --branch-epochs 7 --fusion-epochs 4 \
    --gain-augment-db 6 --crop-jitter --min-train-chunk-peak-db -50 --no-select-on-val
