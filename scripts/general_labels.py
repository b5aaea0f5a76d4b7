"""Add a corpus of general labels to the training manifest: every clip once more, as speech, music,
animal, nature, human (non-speech), domestic or urban.

    python scripts/general_labels.py CORPORA/train.csv ../shared/data/esc50 CORPORA/train_general.csv [--cap 400]

The corpora's own labels are narrow (50 environmental sounds, 16 instruments, keywords, emotions)
and each has its own softmax, so no head can say "this is speech" or "this is music". The general
corpus is one more label space over the same clips: ESC-50's five major categories (its classes
0-9, 10-19, ... 40-49), and a label for each other corpus's kind of sound. A clip that fits none
(Precise's not-wake-word recordings: noise and speech mixed) is left out of it. `--cap N` keeps
at most N training clips of each general label (drawn by a hash of the path, so from every corpus
alike), so that speech (16,765 clips) and music (9,749) do not drown ESC-50's 240 per category.
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import sys
from pathlib import Path

from diverse_embed.labels import esc50_categories

KIND_OF_CORPUS = {
    "philharmonia": "music",
    "arabic-commands": "speech",
    "nemo": "speech",
    "wake-words": "speech",
    "precise": "speech",
    "infant-cries": "human",
    "asterisk-prompts": "speech",
}
LEFT_OUT = {("precise", "not-wake-word")}


def general_label(corpus: str, label: str, esc50: dict[str, str]) -> str | None:
    if (corpus, label) in LEFT_OUT:
        return None
    return esc50[label] if corpus == "esc50" else KIND_OF_CORPUS.get(corpus)


def capped(rows: list[dict], cap: int | None) -> list[dict]:
    """At most `cap` training rows per label (the lowest hashes of their paths); other splits whole."""
    if cap is None:
        return rows
    order = sorted(range(len(rows)), key=lambda i: hashlib.sha1(rows[i]["path"].encode()).hexdigest())
    kept, seen = set(), collections.Counter()
    for i in order:
        label, training = rows[i]["labels"], rows[i]["split"] == "train"
        if training and seen[label] == cap:
            continue
        seen[label] += training
        kept.add(i)
    return [row for i, row in enumerate(rows) if i in kept]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("esc50", type=Path, help="ESC-50 folder (meta/esc50.csv)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--cap", type=int, help="at most this many training clips of each general label")
    args = parser.parse_args(argv)
    manifest, output = args.manifest, args.output
    categories = esc50_categories(args.esc50 / "meta" / "esc50.csv")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    general = capped(
        [
            {**row, "labels": found, "corpus": "general"}
            for row in rows
            if (found := general_label(row["corpus"], row["labels"], categories))
        ],
        args.cap,
    )
    with open(output, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "labels", "split", "corpus"])
        writer.writeheader()
        writer.writerows(rows + general)
    print(f"{output}: {len(rows)} clips, and {len(general)} of them again as corpus 'general'", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
