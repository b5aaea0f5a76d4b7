"""DiverseEmbedConfig: every number of the model, saved as config.json next to the weights, and the
one chunking rule that cuts a clip into the chunks the model sees.

The front-end settings are grouped per branch (`config.pitch.n_fft`, `config.timbre.n_mfcc`, ...);
the transformer's shape is shared by all four branches. This module imports nothing heavy, so
the command line can show these defaults without loading torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .options import option

SAMPLE_RATE = 16000  # everything downstream of decoding is mono at this rate
BRANCHES = ("pitch", "timbre", "waveform", "neuralogram")
# The checkpoint that ships inside the package (checkpoint.bundled_models), used unless told.
DEFAULT_MODEL = "diverse-embed-multi-v4"
UNTRAINED = "untrained-seed0"  # fixed random weights, for checking the plumbing
# The networks' float format when embedding (precision.py): float32, or bfloat16 where native.
PRECISIONS = ("float32", "bfloat16", "auto")


@dataclass
class PitchConfig:
    """Binary spectral peaks on a linear STFT axis (features.SpectralPeaks)."""

    n_fft: int = 2048  # 128 ms window: 7.8 Hz bins
    fmin_hz: float = 50.0  # lowest kept bin
    fmax_hz: float = 4000.0  # highest kept bin
    max_peaks: int = 8  # at most this many peaks per frame
    threshold_db: float = -30.0  # a peak is within this of the frame's loudest bin
    floor_dbfs: float = -70.0  # and above this absolute level


@dataclass
class TimbreConfig:
    """MFCCs per frame (features.MFCCFrames)."""

    n_mfcc: int = 12  # coefficients per frame
    window_ms: float = 50.0  # STFT window: two frame steps, so consecutive windows overlap by half
    n_mels: int = 40  # mel bands before the DCT


@dataclass
class WaveformConfig:
    """Raw waveform patches (features.WaveformPatches)."""

    patch_ms: float = 25.0  # 400 samples at 16 kHz


@dataclass
class NeuralogramConfig:
    """YAMNet-style log-mel (features.LogMel) into a MobileNet v1 (neuralogram.py)."""

    mel_bins: int = 64
    window_ms: float = 50.0  # two frame steps, as for the MFCCs
    fmin_hz: float = 125.0
    fmax_hz: float = 7500.0
    mobilenet_width: float = 1.0  # channel multiplier; 1.0 gives 1024-d activations
    mobilenet_time_stride: int = 16  # one 1024-d vector every 16 log-mel frames (400 ms at 25-ms frames)
    # Audio the MobileNet also hears on each side of the chunk (zeros past the clip); the chunk's own
    # tokens, the central ones, go on to the transformer. 0: the chunk alone (every model before 0.3).
    context_seconds: float = 0.0
    # When embedding, the MobileNet runs once over each block of this many consecutive chunks (with
    # the context on both sides) and each chunk reads its tokens from there, where its own window's
    # would be: a clip up to this long is heard whole, at about the cost of one window per chunk.
    # 1: a window per chunk, as in training (every model before 0.3). model.DiverseEmbedder.block_tokens.
    block_chunks: int = 1


# Fields added since 0.2 whose default keeps the older behaviour: (group, name, default). config.json
# leaves them out at their default, so older versions still read it and fingerprints stay the same.
ADDED_FIELDS = [("neuralogram", "context_seconds", 0.0), ("neuralogram", "block_chunks", 1)]

PROBLEM_TYPES = (None, "single_label_classification", "multi_label_classification")
# Config fields that do not change a single vector (the head's): the fingerprint leaves them out,
# so a new head or its labels do not orphan the indexes built with the branches.
NOT_FINGERPRINTED = ("problem_type", "num_labels", "id2label")

SUBCONFIGS = {
    "pitch": PitchConfig,
    "timbre": TimbreConfig,
    "waveform": WaveformConfig,
    "neuralogram": NeuralogramConfig,
}

# config.json of diverse-embed 0.1.0 kept the front-end settings flat; they still load.
FLAT_NAMES = {
    **{
        f"pitch_{name}": ("pitch", name)
        for name in ("n_fft", "fmin_hz", "fmax_hz", "max_peaks", "threshold_db", "floor_dbfs")
    },
    "n_mfcc": ("timbre", "n_mfcc"),
    "mfcc_window_ms": ("timbre", "window_ms"),
    "mfcc_n_mels": ("timbre", "n_mels"),
    "waveform_patch_ms": ("waveform", "patch_ms"),
    "mel_bins": ("neuralogram", "mel_bins"),
    "mel_window_ms": ("neuralogram", "window_ms"),
    "mel_fmin_hz": ("neuralogram", "fmin_hz"),
    "mel_fmax_hz": ("neuralogram", "fmax_hz"),
    "mobilenet_width": ("neuralogram", "mobilenet_width"),
    "mobilenet_time_stride": ("neuralogram", "mobilenet_time_stride"),
}


@dataclass
class DiverseEmbedConfig:
    """The model's shape. `from_dict(to_dict())` gives the same config back."""

    branches: list[str] = option(help="which branches to build, in order", factory=lambda: list(BRANCHES))
    num_labels: int = 200  # classes of the linear head (FSD-50K has 200)
    id2label: dict[int, str] | None = None  # class index -> name; None means "LABEL_<i>"
    # How the head's logits become scores, in Hugging Face's words: "single_label_classification"
    # (softmax: trained with one label per clip) or "multi_label_classification" (sigmoid); None: unknown.
    problem_type: str | None = None

    # Audio and chunking
    sample_rate: int = option(SAMPLE_RATE, "input is resampled to this (Hz)")
    chunk_seconds: float = option(1.0, "each branch sees one chunk of this length")
    hop_seconds: float = option(1.0, "step between chunks when embedding a clip")
    min_final_chunk_seconds: float = option(0.1, "a shorter leftover at the end of a clip is dropped, not padded")
    # The waveform patch length, so every transformer sees about 40 frames a chunk (README, "Design choices").
    frame_hop_ms: float = option(25.0, "frame step of the spectral front ends (pitch, timbre, log-mel)")

    # Transformer, the same shape in every branch
    d_model: int = option(64, "transformer width; each branch embedding has this size")
    n_layers: int = option(6, "encoder blocks per branch")
    n_heads: int = option(12, "attention heads")
    head_dim: int = option(8, "width of one attention head (Keras-style key_dim: 64 is not divisible by 12)")
    ff_dim: int = option(128, "hidden width of the feed-forward layer")
    dropout: float = option(0.1, "dropout in attention and feed-forward, training only")

    # Front ends, one group per branch
    pitch: PitchConfig = field(default_factory=PitchConfig)
    timbre: TimbreConfig = field(default_factory=TimbreConfig)
    waveform: WaveformConfig = field(default_factory=WaveformConfig)
    neuralogram: NeuralogramConfig = field(default_factory=NeuralogramConfig)

    def __post_init__(self):
        if not isinstance(self.branches, list) or not all(isinstance(name, str) for name in self.branches):
            raise ValueError(f"branches must be a list of names among {BRANCHES}, got {self.branches!r}")
        unknown = [name for name in self.branches if name not in BRANCHES]
        if unknown or not self.branches or len(set(self.branches)) != len(self.branches):
            raise ValueError(f"branches must be distinct names among {BRANCHES}, got {self.branches}")
        for name, kind in SUBCONFIGS.items():  # as read from JSON: a dict per branch
            if isinstance(getattr(self, name), dict):
                setattr(self, name, _strict(kind, getattr(self, name), f"{name}."))
            if not isinstance(getattr(self, name), kind):
                raise ValueError(
                    f"{name} must be a JSON object of {kind.__name__}'s fields, got {getattr(self, name)!r}"
                )
        check_ranges(self)
        if self.id2label is not None:
            if not isinstance(self.id2label, dict):
                raise ValueError(f"id2label must map class indices to names, got {type(self.id2label).__name__}")
            # JSON turns integer keys into strings; bring them back.
            self.id2label = {int(index): str(label) for index, label in self.id2label.items()}
            if sorted(self.id2label) != list(range(self.num_labels)):
                raise ValueError(
                    f"id2label must name classes 0..{self.num_labels - 1}, got {len(self.id2label)} entries"
                )
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")
        if self.chunk_samples % self.waveform_patch_samples:
            raise ValueError("chunk_seconds must hold a whole number of waveform patches")
        for group in ("pitch", "neuralogram"):
            band = getattr(self, group)
            if not band.fmin_hz < band.fmax_hz:
                raise ValueError(
                    f"{group}.fmin_hz must be below {group}.fmax_hz, got {band.fmin_hz} and {band.fmax_hz}"
                )
        if self.timbre.n_mfcc > self.timbre.n_mels:
            raise ValueError(f"timbre.n_mfcc ({self.timbre.n_mfcc}) cannot exceed timbre.n_mels ({self.timbre.n_mels})")
        if not self.min_final_chunk_seconds <= self.chunk_seconds:
            raise ValueError("min_final_chunk_seconds cannot exceed chunk_seconds")
        if self.block_chunks > 1 and self.hop_samples > self.window_samples:
            raise ValueError(
                f"neuralogram.block_chunks > 1 joins consecutive chunks into blocks: hop_seconds ({self.hop_seconds}) "
                f"cannot exceed a chunk with its context ({self.window_samples / self.sample_rate} s)"
            )
        weights, floats = self.size_estimate()
        if weights > MAX_WEIGHTS or floats > MAX_CHUNK_FLOATS:
            raise ValueError(
                f"this config makes about {weights:,} weights and {floats:,} floats of work per chunk, more "
                f"than {MAX_WEIGHTS:,} and {MAX_CHUNK_FLOATS:,}: not a model of this kind"
            )

    def size_estimate(self) -> tuple[int, int]:
        """About how many weights the network holds and how many floats one chunk's forward pass
        holds at once (its spectra, feature maps and attention scores), from the numbers alone,
        before anything is allocated: what a config could make huge. The default: 4.4 M and 0.5 M."""
        frames = self.chunk_samples // self.frame_hop_samples + 1  # of the centred STFTs
        mel_window = self.samples(self.neuralogram.window_ms)
        bins = {
            "pitch": self.pitch.n_fft // 2 + 1,
            "timbre": self.samples(self.timbre.window_ms) // 2 + 1,
            "neuralogram": (1 << max(0, mel_window - 1).bit_length()) // 2 + 1,
        }
        width = self.neuralogram.mobilenet_width
        pitch_bins = int((self.pitch.fmax_hz - self.pitch.fmin_hz) * self.pitch.n_fft / self.sample_rate) + 2
        patch = self.waveform_patch_samples
        tokens = {
            "pitch": (frames, pitch_bins),
            "timbre": (frames, self.timbre.n_mfcc),
            "waveform": (self.chunk_samples // patch, patch),
            "neuralogram": (frames // self.neuralogram.mobilenet_time_stride + 1, int(1024 * width)),
        }
        window_frames = self.window_samples // self.frame_hop_samples + 1  # what the MobileNet hears
        weights = self.embedding_dim * self.num_labels + self.transformer_weights()
        floats = 0
        for name in self.branches:
            count, features = tokens[name]
            weights += (features + count) * self.d_model
            floats += count * (features + self.n_heads * count + self.ff_dim)  # input, attention scores, feed-forward
        for name in set(self.branches) & set(bins):
            floats += 4 * frames * bins[name]  # a complex spectrum (float64 for the log-mel)
            weights += bins[name] * max(self.timbre.n_mels, self.neuralogram.mel_bins)  # a filter bank
        if "neuralogram" in self.branches:
            weights += int(3.3e6 * width**2)  # the MobileNet
            floats += int(32 * width * window_frames * self.neuralogram.mel_bins)  # its widest feature maps
        return int(weights), int(floats)

    def transformer_weights(self) -> int:
        """About how many weights the branches' transformers hold."""
        attention = 4 * self.d_model * self.n_heads * self.head_dim
        return len(self.branches) * self.n_layers * (attention + 2 * self.d_model * self.ff_dim)

    def samples(self, milliseconds: float) -> int:
        return round(milliseconds * self.sample_rate / 1000)

    @property
    def chunk_samples(self) -> int:
        return round(self.chunk_seconds * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_seconds * self.sample_rate)

    @property
    def min_final_chunk_samples(self) -> int:
        return max(1, round(self.min_final_chunk_seconds * self.sample_rate))

    @property
    def context_samples(self) -> int:
        """Samples of context on each side of a chunk in the model's input (the neuralogram's)."""
        return round(self.neuralogram.context_seconds * self.sample_rate) if "neuralogram" in self.branches else 0

    @property
    def block_chunks(self) -> int:
        """Chunks per MobileNet pass when embedding (neuralogram.block_chunks; 1 without the neuralogram)."""
        return self.neuralogram.block_chunks if "neuralogram" in self.branches else 1

    @property
    def window_samples(self) -> int:
        """Samples of one chunk's input to the model: the chunk with its context on both sides."""
        return self.chunk_samples + 2 * self.context_samples

    def with_context(self, seconds: float) -> DiverseEmbedConfig:
        """This config with neuralogram.context_seconds set (no weight depends on it); ValueError
        when out of range."""
        return dataclasses.replace(self, neuralogram=dataclasses.replace(self.neuralogram, context_seconds=seconds))

    @property
    def frame_hop_samples(self) -> int:
        return self.samples(self.frame_hop_ms)

    @property
    def waveform_patch_samples(self) -> int:
        return self.samples(self.waveform.patch_ms)

    def chunk_spans(self, num_samples: int) -> tuple[list[float], list[float]]:
        """Where each of a clip's `num_chunks` chunks starts and ends, in seconds: a chunk every hop,
        the last one ending with the clip."""
        duration = num_samples / self.sample_rate
        starts = [first / self.sample_rate for first in self.chunk_starts(num_samples)]
        return starts, [min(start + self.chunk_seconds, duration) for start in starts]

    def chunk_starts(self, num_samples: int) -> list[int]:
        """Each of a clip's `num_chunks` chunks' first sample: a chunk every hop_samples."""
        return [k * self.hop_samples for k in range(self.num_chunks(num_samples))]

    def num_chunks(self, num_samples: int) -> int:
        """How many chunks a clip of `num_samples` makes: at least one, every hop_samples; the last
        is zero-padded, and dropped when it would hold fewer than min_final_chunk_samples of audio
        (a 5.00006-s file's last sample, say) unless it is the only one."""
        n = 1 + math.ceil(max(0, num_samples - self.chunk_samples) / self.hop_samples)
        if n > 1 and num_samples - (n - 1) * self.hop_samples < self.min_final_chunk_samples:
            n -= 1
        return n

    @property
    def embedding_dim(self) -> int:
        return self.d_model * len(self.branches)

    def branch_slice(self, name: str) -> slice:
        """Where branch `name`'s d_model columns sit in the fused embedding."""
        start = self.branches.index(name) * self.d_model
        return slice(start, start + self.d_model)

    def branch_columns(self, names: list[str]) -> list[int]:
        """The fused embedding's columns that hold the named branches, in the model's order."""
        return [
            i
            for name in self.branches
            if name in names
            for i in range(self.branch_slice(name).start, self.branch_slice(name).stop)
        ]

    def branch_subsets(self) -> dict[str, list[str]]:
        """The fused set, each branch alone, and each leave-one-out set ("-pitch"): the ablation's systems."""
        found = {"fused": list(self.branches)}
        if len(self.branches) > 1:
            found.update({name: [name] for name in self.branches})
        if len(self.branches) > 2:
            found.update({f"-{name}": [b for b in self.branches if b != name] for name in self.branches})
        return found

    def label_names(self) -> list[str]:
        """The head's class names in index order; empty when the config names none."""
        return [self.id2label[i] for i in range(self.num_labels)] if self.id2label else []

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        for group, name, default in ADDED_FIELDS:  # at their default they are left out, as older files lack them
            if values[group][name] == default:
                del values[group][name]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> DiverseEmbedConfig:
        """Build from a config.json dict; an unknown key is a ValueError, not silently dropped."""
        if not isinstance(values, dict):
            raise ValueError(f"config must be a JSON object, got {type(values).__name__}")
        values = dict(values)
        for flat in [key for key in values if key in FLAT_NAMES]:
            group, name = FLAT_NAMES[flat]
            values[group] = {**values.get(group, {}), name: values.pop(flat)}
        return _strict(cls, values)


def _strict(kind, values: dict, prefix: str = ""):
    if not isinstance(values, dict):
        raise ValueError(f"{prefix or 'config'} must be a JSON object, got {type(values).__name__}")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(kind)})
    if unknown:
        raise ValueError(
            f"config has fields this version of diverse-embed does not know: {[prefix + u for u in unknown]}"
        )
    return kind(**values)


# Every number a config.json may hold: (type, lowest, highest), checked before anything is built, so
# a hostile or mistyped file fails in one line instead of allocating gigabytes. Generous bounds.
RANGES = {
    DiverseEmbedConfig: {
        "num_labels": (int, 1, 100_000),
        "sample_rate": (int, 1000, 384_000),
        "chunk_seconds": (float, 0.05, 60.0),
        "hop_seconds": (float, 0.01, 60.0),
        "min_final_chunk_seconds": (float, 0.0, 60.0),
        "frame_hop_ms": (float, 1.0, 1000.0),
        "d_model": (int, 1, 4096),
        "n_layers": (int, 1, 64),
        "n_heads": (int, 1, 256),
        "head_dim": (int, 1, 1024),
        "ff_dim": (int, 1, 65_536),
        "dropout": (float, 0.0, 0.99),
    },
    PitchConfig: {
        "n_fft": (int, 16, 65_536),
        "fmin_hz": (float, 0.0, 192_000.0),
        "fmax_hz": (float, 1.0, 192_000.0),
        "max_peaks": (int, 1, 4096),
        "threshold_db": (float, -200.0, 0.0),
        "floor_dbfs": (float, -300.0, 0.0),
    },
    TimbreConfig: {"n_mfcc": (int, 1, 512), "window_ms": (float, 1.0, 1000.0), "n_mels": (int, 1, 512)},
    WaveformConfig: {"patch_ms": (float, 1.0, 1000.0)},
    NeuralogramConfig: {
        "mel_bins": (int, 8, 512),
        "window_ms": (float, 1.0, 1000.0),
        "fmin_hz": (float, 0.0, 192_000.0),
        "fmax_hz": (float, 1.0, 192_000.0),
        "mobilenet_width": (float, 0.05, 4.0),
        "mobilenet_time_stride": (int, 1, 256),
        "context_seconds": (float, 0.0, 30.0),
        "block_chunks": (int, 1, 3600),
    },
}
# A config.json's network must fit these (DiverseEmbedConfig.size_estimate; the default: 4.4 M
# weights, 0.5 M floats a chunk): 400 MB of float32 weights, 64 MB a chunk.
MAX_WEIGHTS = 100_000_000
MAX_CHUNK_FLOATS = 16_000_000


def check_ranges(config: DiverseEmbedConfig) -> None:
    """ValueError naming the first field of wrong type or out of range, the branches' groups included."""
    for owner, prefix in [(config, "")] + [(getattr(config, name), f"{name}.") for name in SUBCONFIGS]:
        for name, (kind, low, high) in RANGES[type(owner)].items():
            value = getattr(owner, name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not numeric or (kind is int and not isinstance(value, int)):
                raise ValueError(f"{prefix}{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
            if not low <= value <= high:  # NaN fails this too
                raise ValueError(f"{prefix}{name} must be between {low} and {high}, got {value!r}")
