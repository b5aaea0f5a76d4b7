#!/usr/bin/env bash
# The bundled default model, diverse-embed-multi-v4, from nothing but the corpora's repositories
# and the teacher's wheel:
#
#   scripts/train_default.sh REPOS ESC50 WORK [TEACHER_WHEEL]
#
# REPOS holds a clone of each corpus repository (scripts/corpora.py says how they are found), ESC50
# the 16 kHz ESC-50 folder, WORK receives the extracted audio (WORK/corpora) and the runs.
# TEACHER_WHEEL is aisfx-0.1.2-py2.py3-none-any.whl (`pip download aisfx==0.1.2 --no-deps`; read,
# never installed); without it the script stops after stage 1. Times on a 2-core CPU
# (benchmarks/results/research/multi_corpus/README.md): corpora under a minute, stage 1 about 100 minutes,
# the teacher cache about 15-28 minutes (two 1-thread processes), stage 2 27-66 minutes.
#
#   stage 1, WORK/run:    diverse-embed-multi, every part trained from scratch on seven corpora
#   stage 2, WORK/run-v2: stage 1's MobileNet and neuralogram transformer retrained to also
#                         regress the teacher's vectors (W = 32), then the heads
#   stage 3, WORK/default: stage 2 with the general labels (speech, music, animal, ...) added: a
#                         head fitted on its frozen branches (WORK/run-general), whose general rows
#                         join stage 2's head; its config hears blocks of BLOCK_CHUNKS chunks
#
# Then: python scripts/bundle_checkpoint.py WORK/default --name diverse-embed-multi-v4 --check-audio ESC50/audio
#
# CONTEXT_SECONDS (default 0.5) is the audio stage 2's MobileNet hears on each side of each chunk
# (72 minutes on one thread beside another run), BLOCK_CHUNKS (default 30) how many chunks its
# MobileNet hears at once when embedding. CONTEXT_SECONDS=0.5 BLOCK_CHUNKS=1 gives
# diverse-embed-multi-v3; CONTEXT_SECONDS=0 BLOCK_CHUNKS=1 the previous default, diverse-embed-multi-v2.
set -euo pipefail
repos="$1" esc50="$2" work="$3" teacher="${4:-}"
common=(--dataset csv --manifest "$work/corpora/train.csv" --audio-root / --allow-outside-root
        --train-splits train --val-splits none --test-splits test
        --chunks-per-epoch 28000 --corpus-weights esc50=6 --min-train-chunk-peak-db -50 --no-select-on-val)
python scripts/corpora.py --repos "$repos" --esc50 "$esc50" --output "$work/corpora"
# One epoch is 28,000 one-second chunks drawn across the seven corpora, ESC-50 with 6 shares of
# 12 (its sounds are what a user's collection mostly resembles); no validation split is used to
# pick epochs (the last epoch of each phase is kept), so the corpora's val splits stay unseen.
diverse-embed train "${common[@]}" --output "$work/run" \
    --neuralogram-epochs 7 --branch-epochs 7 --fusion-epochs 4 --gain-augment-db 6 --crop-jitter --ablation-heads
[ -n "$teacher" ] || { echo "no teacher wheel given: stage 1 only ($work/run)"; exit 0; }
# The teacher's vectors of every training chunk, cached once (resumable); two 1-thread processes,
# because the model is many small operations that two threads share badly; the second reads the
# manifest from its end, and each skips the clips the other has cached.
{ head -n 1 "$work/corpora/train.csv"; tail -n +2 "$work/corpora/train.csv" | tac; } > "$work/corpora/train_reversed.csv"
OMP_NUM_THREADS=1 diverse-embed train "${common[@]}" --output "$work/teacher-cache" --teacher "$teacher" --stage teacher &
OMP_NUM_THREADS=1 diverse-embed train "${common[@]}" --manifest "$work/corpora/train_reversed.csv" \
    --output "$work/teacher-cache-reversed" --teacher "$teacher" --stage teacher &
wait
diverse-embed train "${common[@]}" --output "$work/run-v2" \
    --init-from "$work/run" --retrain neuralogram,branch:neuralogram --context-seconds "${CONTEXT_SECONDS:-0.5}" \
    --neuralogram-epochs 12 --branch-epochs 5 --fusion-epochs 4 --gain-augment-db 6 --crop-jitter --ablation-heads \
    --teacher "$teacher" --distill-loss regression --distill-weight 32
# The last chunk of a clip counts only when it holds at least 0.5 s (benchmarks/final_chunk.py).
python - "$work/run-v2/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1])); config["min_final_chunk_seconds"] = 0.5
json.dump(config, open(sys.argv[1], "w"), indent=2, sort_keys=True)
PY
# Stage 3: every training clip once more under a general label, at most GENERAL_CAP training clips
# of each (speech and music would otherwise drown ESC-50's 240 clips per category).
python scripts/general_labels.py "$work/corpora/train.csv" "$esc50" "$work/corpora/train_general.csv" --cap "${GENERAL_CAP:-1200}"
diverse-embed train "${common[@]}" --manifest "$work/corpora/train_general.csv" --output "$work/run-general" \
    --init-from "$work/run-v2" --fusion-epochs 4
python scripts/add_corpus_head.py "$work/run-v2" "$work/run-general" general "$work/default"
# When embedding, the MobileNet hears blocks of BLOCK_CHUNKS chunks (the weights are stage 3's).
python - "$work/default/config.json" "${BLOCK_CHUNKS:-30}" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
if int(sys.argv[2]) > 1:  # 1, the field's default, is left out of config.json
    config["neuralogram"]["block_chunks"] = int(sys.argv[2])
json.dump(config, open(sys.argv[1], "w"), indent=2, sort_keys=True)
PY
