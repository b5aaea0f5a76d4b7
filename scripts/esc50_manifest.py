"""Write a training manifest (path,labels,split) for ESC-50, the folds as splits.

    python scripts/esc50_manifest.py ../shared/data/esc50 > esc50.csv
    diverse-embed train --dataset csv --manifest esc50.csv --audio-root ../shared/data/esc50/audio \
        --train-splits 1,2,3 --val-splits 4 --test-splits 5 --output runs/esc50
"""

import csv
import sys
from pathlib import Path


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/esc50")
    writer = csv.writer(sys.stdout)
    writer.writerow(["path", "labels", "split"])
    with open(root / "meta" / "esc50.csv", newline="") as f:
        for row in csv.DictReader(f):
            writer.writerow([row["filename"], row["category"], row["fold"]])


if __name__ == "__main__":
    main()
