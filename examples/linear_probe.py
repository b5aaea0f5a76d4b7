"""Train a classifier on frozen embeddings of a labelled folder (one subfolder per class).

python examples/linear_probe.py path/to/labelled --test-size 0.25

labelled/
  dog/  bark1.wav bark2.wav ...
  rain/ ...
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from diverse_embed import DEFAULT_MODEL, DiverseEmbedder
from diverse_embed.files import find_audio_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="one subfolder of audio files per class")
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundled name, from_pretrained folder or Hub id (default {DEFAULT_MODEL})",
    )
    args = parser.parse_args()

    model = DiverseEmbedder.from_pretrained(args.model)
    classes = sorted(p.name for p in Path(args.folder).iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = find_audio_files([Path(args.folder) / name])
        paths += found
        labels += [label] * len(found)
    embeddings = model.embed_files(paths)  # (n_files, 256): the frozen features
    labels = np.array(labels)

    x_train, x_test, y_train, y_test = train_test_split(
        embeddings, labels, test_size=args.test_size, stratify=labels, random_state=0
    )
    probe = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    accuracy = accuracy_score(y_test, probe.predict(x_test))
    print(f"{len(classes)} classes, {len(x_train)} training and {len(x_test)} test files")
    print(f"test accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    main()
