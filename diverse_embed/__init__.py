"""diverse-embed: audio embeddings from four small transformers over diverse features."""

import importlib

__version__ = "0.2.0"

# name -> the module that defines it. Loaded on first use, so that `import diverse_embed.cli`
# (and `diverse-embed --help`) does not pay for importing torch.
_EXPORTS = {
    "AudioLoadError": "audio",
    "load_audio": "audio",
    "CheckpointError": "checkpoint",
    "bundled_models": "checkpoint",
    "BRANCHES": "config",
    "DEFAULT_MODEL": "config",
    "SAMPLE_RATE": "config",
    "DiverseEmbedConfig": "config",
    "EmbeddingOutput": "embed",
    "DiverseEmbedder": "model",
    "resolve_model": "resolve",
    "untrained_model": "resolve",
    "AudioIndex": "search.index",
    "AudioIndexError": "search.store",
    "Hit": "search.index",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
