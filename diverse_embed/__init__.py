"""diverse-embed: audio embeddings from four small transformers over diverse features."""

from .audio import SAMPLE_RATE, AudioLoadError, load_audio
from .model import (BRANCHES, DEFAULT_MODEL, CheckpointError, DiverseEmbedConfig, DiverseEmbedder, EmbeddingOutput,
                    bundled_models)

__version__ = "0.1.0"

__all__ = [
    "AudioLoadError",
    "BRANCHES",
    "CheckpointError",
    "DEFAULT_MODEL",
    "DiverseEmbedConfig",
    "DiverseEmbedder",
    "EmbeddingOutput",
    "SAMPLE_RATE",
    "bundled_models",
    "load_audio",
    "__version__",
]
