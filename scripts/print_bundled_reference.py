"""Print the reference outputs that tests/test_bundled.py checks the bundled checkpoint against.

    python scripts/print_bundled_reference.py ../shared/data/esc50

Run it once when the bundled checkpoint is (re)made, and paste its output into the test. Never
to make a failing test pass otherwise: a change of these numbers is a change of the model.
"""

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
    esc50 = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "esc50"
    model = DiverseEmbedder.from_pretrained(DEFAULT_MODEL)
    paths = [
        REPO / "diverse_embed" / "samples" / "note_220hz_harmonic.wav",
        esc50 / "audio" / "5-203128-A-0.flac",
        esc50 / "audio" / "5-181766-A-10.flac",
    ]
    values = {p.name: reference(model, p) for p in paths}
    print("REFERENCE = " + json.dumps(values, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
