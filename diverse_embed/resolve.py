"""One resolver: how the command line, the HEAR API and the benchmarks turn a name into a model.

A name is a bundled checkpoint (`checkpoint.bundled_models()`), a `save_pretrained` folder, a
`.safetensors` file with its config.json beside it, a Hugging Face Hub id, or `untrained-seed0`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import load_weights, read_config
from .config import DEFAULT_MODEL, UNTRAINED, DiverseEmbedConfig
from .errors import CheckpointError
from .model import DiverseEmbedder


def resolve_model(name: str | os.PathLike | None = None, **kwargs) -> tuple[DiverseEmbedder, str]:
    """The model a user named, and the name to record next to its vectors (a path made absolute).

    None means DEFAULT_MODEL. Keyword arguments go to `from_pretrained` (revision, cache_dir, ...).
    """
    if name is not None and not str(name).strip():  # an unset shell variable, say: never silently the default
        raise CheckpointError(
            "the model name is empty: name a bundled model, a folder or a Hub id, or leave it out "
            f"for the default ({DEFAULT_MODEL})"
        )
    name = str(name or DEFAULT_MODEL)
    if name == UNTRAINED:
        model = untrained_model(seed=0)
    elif name.endswith(".safetensors") and os.path.isfile(name):
        model = DiverseEmbedder(read_config(Path(name).with_name("config.json")))
        load_weights(model, name)
        model.eval().name_or_path = str(Path(name).resolve())
    else:
        model = DiverseEmbedder.from_pretrained(name, **kwargs)
    return model, model.name_or_path


def untrained_model(seed: int = 0) -> DiverseEmbedder:
    """The default-size model with random weights drawn from `seed`, in eval mode: the same weights
    every time (so indexes built with it stay searchable), without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DiverseEmbedder(DiverseEmbedConfig()).eval()
    model.name_or_path = UNTRAINED if seed == 0 else None  # only seed 0 has a name to load it by
    return model
