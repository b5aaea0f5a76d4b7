"""Index a folder of sounds, then find the ones most like a query sound.

    python examples/search_collection.py path/to/sounds path/to/query.wav [--index my-index] [-k 5]

Re-running it reuses the index folder: files already in it are not embedded again.
"""

import argparse

from diverse_embed import DEFAULT_MODEL, AudioIndex, AudioIndexError, DiverseEmbedder
from diverse_embed.files import find_audio_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the sounds to search")
    parser.add_argument("query", help="a sound to search by")
    parser.add_argument("--index", default="sound-index", help="index folder (created if missing)")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundled name, from_pretrained folder or Hub id (default {DEFAULT_MODEL})",
    )
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()

    model, name = DiverseEmbedder.from_pretrained(args.model), args.model
    try:
        index = AudioIndex(args.index)
    except AudioIndexError:  # no index there yet
        index = AudioIndex.create(args.index, model, name, segments=True)
    index.add(find_audio_files([args.folder]), model)
    index.build()

    for hit in index.search_file(args.query, model, k=args.k):
        where = "" if hit.start is None else f" at {hit.start:.0f}-{hit.end:.0f} s"
        print(f"{hit.rank}. {hit.score:.3f}  {hit.path}{where}")


if __name__ == "__main__":
    main()
