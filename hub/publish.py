"""Push the bundled checkpoint to the Hugging Face Hub, after checking the folder.

    python hub/publish.py --repo-id YOUR_NAME/diverse-embed-multi-v4 [--private] [--dry-run]

This folder (hub/) is exactly what lands in the Hub repository: config.json, model.safetensors
(links to the copy shipped in the package, so the two cannot drift apart) and README.md (a link
to the default's card, diverse_embed/pretrained/diverse-embed-multi-v4/README.md, with the Hub's YAML metadata). Every run first validates it,
offline: the files are there and nothing else, the card's metadata has license, tags, datasets
and metrics, config.json names its labels, and the weights load strictly into the model and give
finite embeddings. `--dry-run` stops there (no network, no token needed); without it the script
creates the repository if needed and uploads the files in one commit. Log in first with
`hf auth login` or set HF_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HUB_DIR = Path(__file__).resolve().parent
FILES = ("README.md", "config.json", "model.safetensors")
REQUIRED_METADATA = ("license", "tags", "datasets", "metrics")


class PublishError(ValueError):
    pass


def validate(folder: Path, repo_id: str) -> list[str]:
    """Check everything that can be checked offline; returns lines describing what was checked."""
    from huggingface_hub import ModelCard
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from diverse_embed import DiverseEmbedder

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PublishError(f"--repo-id {repo_id!r} is not a valid repository id: {err}") from None
    if "/" not in repo_id:
        raise PublishError(f"--repo-id {repo_id!r}: give it as owner/name")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise PublishError(f"{folder}: missing {', '.join(missing)}")
    extra = sorted(
        p.name
        for p in folder.iterdir()
        if p.name not in FILES
        and p.name != Path(__file__).name
        and not p.name.startswith(".")
        and p.name != "__pycache__"
    )
    if extra:
        raise PublishError(f"{folder}: files that should not be published: {', '.join(extra)}")

    card = ModelCard.load(folder / "README.md")
    metadata = card.data.to_dict()
    absent = [key for key in REQUIRED_METADATA if not metadata.get(key)]
    if absent:
        raise PublishError(f"{folder / 'README.md'}: the YAML metadata lacks {', '.join(absent)}")

    config = json.loads((folder / "config.json").read_text())
    labels = config.get("id2label") or {}
    if len(labels) != config.get("num_labels"):
        raise PublishError(
            f"{folder / 'config.json'}: id2label has {len(labels)} names for {config.get('num_labels')} labels"
        )

    model = DiverseEmbedder.from_pretrained(folder)  # strict: any key or shape mismatch raises
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1  # 1 s
    output = model.embed(noise, sample_rate=16000)
    if not bool(np.isfinite(output.embedding).all()) or output.logits.shape != (config["num_labels"],):
        raise PublishError(f"{folder}: the model's outputs are not finite or have the wrong shape")
    return [
        f"repo id {repo_id}: valid",
        f"files: {', '.join(FILES)} ({(folder / 'model.safetensors').stat().st_size / 1e6:.1f} MB of weights)",
        "card metadata: " + ", ".join(f"{k}={metadata[k]}" for k in REQUIRED_METADATA),
        f"config: {config['num_labels']} labels, branches {', '.join(config['branches'])}",
        f"weights load strictly; {model.num_parameters()['total']:,} parameters; fingerprint {model.fingerprint()}",
    ]


def publish(folder: Path, repo_id: str, private: bool, token: str | None, message: str) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    # The links are resolved here, so the Hub gets the files' contents.
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str((folder / name).resolve())) for name in FILES
    ]
    info = api.create_commit(repo_id, operations, commit_message=message, repo_type="model")
    return info.commit_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo-id", required=True, help="owner/name of the Hub model repository")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry-run", action="store_true", help="validate only; no network")
    parser.add_argument("--folder", type=Path, default=HUB_DIR, help="the folder to publish (default: hub/)")
    parser.add_argument("--token", help="Hub token (default: the logged-in one or HF_TOKEN)")
    parser.add_argument("--message", default="Upload diverse-embed checkpoint", help="commit message")
    args = parser.parse_args(argv)
    from diverse_embed import CheckpointError

    try:
        checked = validate(args.folder, args.repo_id)
    except (PublishError, CheckpointError, ValueError, OSError) as err:  # ValueError: bad JSON or YAML
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in checked:
        print(f"ok  {line}")
    if args.dry_run:
        print("dry run: nothing uploaded")
        return 0
    url = publish(args.folder, args.repo_id, args.private, args.token, args.message)
    print(f"published {args.repo_id}{' (private)' if args.private else ''}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
