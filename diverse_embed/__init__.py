"""diverse-embed: audio embeddings from four small transformers over diverse features."""

from .audio import SAMPLE_RATE, AudioLoadError, load_audio
from .model import BRANCHES, CheckpointError, DiverseEmbedConfig, DiverseEmbedder, EmbeddingOutput

__version__ = "0.1.0"

__all__ = [
    "AudioLoadError",
    "BRANCHES",
    "CheckpointError",
    "DiverseEmbedConfig",
    "DiverseEmbedder",
    "EmbeddingOutput",
    "SAMPLE_RATE",
    "load_audio",
    "__version__",
]
