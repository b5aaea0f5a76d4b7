"""The `diverse-embed` command line. Library modules log; this module decides what the user sees."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .audio import AudioLoadError, find_audio_files
from .model import CheckpointError, DiverseEmbedConfig, DiverseEmbedder

LOG = logging.getLogger("diverse_embed")


def load_model(model: str | None, quiet: bool = False) -> tuple[DiverseEmbedder, str]:
    """The model named by --model (a from_pretrained folder or Hub id), or the default.

    Returns the model and a name for it to record next to embeddings.
    """
    if model:
        return DiverseEmbedder.from_pretrained(model), model
    # No trained checkpoint ships yet: say so rather than pretend.
    if not quiet:
        print("note: no --model given and no trained checkpoint is bundled yet; "
              "using an UNTRAINED model (random weights, seed 0): embeddings are not meaningful.", file=sys.stderr)
    torch.manual_seed(0)
    return DiverseEmbedder(DiverseEmbedConfig()).eval(), "untrained-seed0"


def run_embed(args: argparse.Namespace) -> int:
    paths = find_audio_files(args.inputs)
    if not paths:
        print("error: no audio files found in " + " ".join(args.inputs), file=sys.stderr)
        return 2
    model, model_name = load_model(args.model, args.quiet)
    embedded, rows, skipped = [], [], []
    for path, output in model.iter_embed_files(paths, args.batch_size, args.num_workers, progress=not args.quiet):
        if isinstance(output, AudioLoadError):
            skipped.append(output)
            print(f"skipped {output}", file=sys.stderr)
            continue
        embedded.append(str(path))
        rows.append(output.embedding)
    embeddings = np.stack(rows) if rows else np.zeros((0, model.embedding_dim), dtype=np.float32)
    output_path = Path(args.output)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        output_path,
        embeddings=embeddings,  # (N, embedding_dim) float32, L2-normalised
        paths=np.array(embedded),
        model=np.array(model_name),
        config_fingerprint=np.array(model.config.fingerprint()),
    )
    print(f"embedded {len(embedded)} file(s) into {output_path} {embeddings.shape}"
          + (f"; skipped {len(skipped)} unreadable file(s)" if skipped else ""))
    return 0 if embedded else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diverse-embed", description=__doc__)
    parser.add_argument("--version", action="version", version=f"diverse-embed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    embed = commands.add_parser("embed", help="embed audio files into an .npz of L2-normalised vectors")
    embed.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    embed.add_argument("--output", "-o", required=True, help="where to write the .npz (embeddings, paths)")
    embed.add_argument("--model", help="a from_pretrained folder or Hugging Face Hub id (default: the bundled model)")
    embed.add_argument("--batch-size", type=int, default=32, help="1-s chunks per forward pass (default 32)")
    embed.add_argument("--num-workers", type=int, default=2, help="processes decoding audio (default 2)")
    embed.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notes")
    embed.set_defaults(run=run_embed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if getattr(args, "quiet", False) else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    try:
        return args.run(args)
    except (AudioLoadError, CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
