"""Embed a folder of sounds, group similar ones, and draw a 2-D map of the collection.

python examples/embed_and_cluster.py path/to/sounds --clusters 5 --output map.png
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw to a file, no screen needed
import matplotlib.pyplot as plt
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from diverse_embed import DEFAULT_MODEL, DiverseEmbedder
from diverse_embed.files import find_audio_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--output", default="sound-map.png")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundled name, from_pretrained folder or Hub id (default {DEFAULT_MODEL})",
    )
    args = parser.parse_args()

    model = DiverseEmbedder.from_pretrained(args.model)
    paths = find_audio_files([args.folder])
    embeddings = model.embed_files(paths)  # (n_files, 256), L2-normalised

    groups = KMeans(n_clusters=min(args.clusters, len(paths)), n_init=10, random_state=0).fit_predict(embeddings)
    for group in sorted(set(groups)):
        members = [p.name for p, g in zip(paths, groups) if g == group]
        print(f"group {group}: {', '.join(members)}")

    xy = PCA(n_components=2, random_state=0).fit_transform(embeddings)  # (n_files, 2)
    figure, axes = plt.subplots(figsize=(8, 6))
    axes.scatter(xy[:, 0], xy[:, 1], c=groups, cmap="tab10", s=40)
    for (x, y), path in zip(xy, paths):
        axes.annotate(Path(path).stem, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_title(f"{len(paths)} sounds, {len(set(groups))} groups (PCA of diverse-embed vectors)")
    figure.tight_layout()
    figure.savefig(args.output, dpi=120)
    print(f"map written to {args.output}")


if __name__ == "__main__":
    main()
