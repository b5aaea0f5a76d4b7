"""Copy a trained model into the package as a bundled checkpoint, stored in float16.

    python scripts/bundle_checkpoint.py RUN_DIR [--name diverse-embed-multi] [--check-audio ESC50/audio]

RUN_DIR is a training output folder (config.json + model.safetensors in float32). The bundled copy
goes to diverse_embed/pretrained/NAME/, which `pip install .` ships and
`DiverseEmbedder.from_pretrained(NAME)` loads offline. Float16 halves the size; the script checks
that the embeddings of the float16 copy stay within 1e-3 cosine distance of the float32 model's
(on the packaged samples, and on up to 200 clips of --check-audio) and writes what it measured to
benchmarks/results/bundled_NAME.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors.torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from diverse_embed import DEFAULT_MODEL, DiverseEmbedder  # noqa: E402
from diverse_embed.audio import SAMPLE_RATE, load_audio  # noqa: E402
from diverse_embed.checkpoint import BUNDLED_DIR, SAFETENSORS_FILE  # noqa: E402
from diverse_embed.files import find_audio_files  # noqa: E402

MAX_COSINE_DISTANCE = 1e-3


def half_precision_copy(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    state = safetensors.torch.load_file(str(source / SAFETENSORS_FILE))
    # Floating tensors only: integer counters (batch-norm's num_batches_tracked) keep their type.
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    safetensors.torch.save_file(half, str(target / SAFETENSORS_FILE), metadata={"format": "pt"})
    shutil.copyfile(source / "config.json", target / "config.json")


def cosine_distances(a: DiverseEmbedder, b: DiverseEmbedder, clips: list[np.ndarray]) -> np.ndarray:
    """1 - cosine similarity of the two models' clip embeddings (both L2-normalised), one per clip."""
    x = np.stack([o.embedding for o in a.embed_batch(clips, SAMPLE_RATE)])  # (n, 256)
    y = np.stack([o.embedding for o in b.embed_batch(clips, SAMPLE_RATE)])
    return 1.0 - (x * y).sum(axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", default=DEFAULT_MODEL)
    parser.add_argument("--check-audio", type=Path, help="a folder of audio to compare float16 and float32 on")
    args = parser.parse_args()

    target = BUNDLED_DIR / args.name
    half_precision_copy(args.run_dir, target)
    full = DiverseEmbedder.from_pretrained(args.run_dir)
    bundled = DiverseEmbedder.from_pretrained(target)
    paths = find_audio_files([str(REPO / "diverse_embed" / "samples")])
    if args.check_audio:
        paths += find_audio_files([str(args.check_audio)])[:200]
    distances = cosine_distances(full, bundled, [load_audio(p) for p in paths])
    report = {
        "name": args.name,
        "source": str(args.run_dir),
        "clips_compared": len(paths),
        "max_cosine_distance_fp16_vs_fp32": float(distances.max()),
        "mean_cosine_distance_fp16_vs_fp32": float(distances.mean()),
        "bytes": (target / SAFETENSORS_FILE).stat().st_size,
        "fingerprint": bundled.fingerprint(),
    }
    print(json.dumps(report, indent=2))
    (REPO / "benchmarks" / "results" / f"bundled_{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    if distances.max() > MAX_COSINE_DISTANCE:
        print(
            f"error: float16 copy is {distances.max():.2e} cosine away from float32 (limit {MAX_COSINE_DISTANCE})",
            file=sys.stderr,
        )
        shutil.rmtree(target)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
