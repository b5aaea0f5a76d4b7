"""Print the reference outputs that tests/test_bundled.py checks the bundled checkpoint against.

    python scripts/print_bundled_reference.py ../shared/data/esc50 [--model diverse-embed-multi-v3]

Run it once when the bundled checkpoint is (re)made, and paste its output into the test. Never
to make a failing test pass otherwise: a change of these numbers is a change of the model.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from diverse_embed import DEFAULT_MODEL, DiverseEmbedder
from diverse_embed.audio import load_audio

REPO = Path(__file__).resolve().parent.parent


def reference(model: DiverseEmbedder, path: Path) -> dict:
    output = model.embed(load_audio(path), sample_rate=16000)
    top = np.argsort(-output.logits)[:3]
    return {
        "embedding": [round(float(v), 6) for v in output.embedding[:12]],
        "top": [model.config.id2label[int(i)] for i in top],
        "logits": [round(float(output.logits[i]), 6) for i in top],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("esc50", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "esc50")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a bundled model (default: the default)")
    args = parser.parse_args()
    model = DiverseEmbedder.from_pretrained(args.model)
    paths = [
        REPO / "diverse_embed" / "samples" / "note_220hz_harmonic.wav",
        args.esc50 / "audio" / "5-203128-A-0.flac",
        args.esc50 / "audio" / "5-181766-A-10.flac",
    ]
    values = {p.name: reference(model, p) for p in paths}
    print("REFERENCE = " + json.dumps(values, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
