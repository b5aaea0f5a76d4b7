"""Loading and saving weights: strict safetensors, the bundled checkpoints, the Hub mixin's hooks.

model.py binds these to DiverseEmbedder (`from_pretrained`, `save_pretrained`); they get the class
as an argument, so this module never imports the network back. Loading is always strict:
huggingface_hub's mixin would otherwise load with strict=False and leave random weights on a key
mismatch. Turning any name into a model is resolve.py's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import huggingface_hub
import safetensors.torch
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from torch import nn

from . import __version__
from .config import DEFAULT_MODEL, DiverseEmbedConfig
from .errors import CheckpointError
from .labels import label_corpora

SAFETENSORS_FILE = "model.safetensors"
# Checkpoints that ship inside the package (diverse_embed/pretrained/<name>/), loadable by name
# with no network; config.DEFAULT_MODEL is one of them.
BUNDLED_DIR = Path(__file__).parent / "pretrained"


class NoConfigError(CheckpointError):
    """The Hub mixin found no config.json for a model id (not in the cache, or not in the repo)."""


def bundled_models() -> dict[str, Path]:
    """Name -> folder of every checkpoint shipped with the package."""
    if not BUNDLED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_DIR.iterdir()) if (p / "config.json").is_file()}


def read_config(path: str | os.PathLike) -> DiverseEmbedConfig:
    """A config.json, or CheckpointError naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: no {path.name} in this folder, so the model's shape is unknown")
    try:
        return DiverseEmbedConfig.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a config (JSON nested too deeply)") from None
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from None


def from_pretrained(cls, pretrained_model_name_or_path: str | Path = DEFAULT_MODEL, **kwargs) -> nn.Module:
    """Load a bundled checkpoint by name (see `bundled_models()`; default: DEFAULT_MODEL), a
    `save_pretrained` folder, or a Hugging Face Hub id.

    Keyword arguments as in huggingface_hub: revision, cache_dir, local_files_only, token,
    force_download, map_location. Loading is strict (see `load_weights`).
    """
    model = _load(cls, str(pretrained_model_name_or_path), **kwargs)
    # How to load it again, as `model.name_or_path`: the bundled name, the folder made absolute, the Hub id.
    name = str(pretrained_model_name_or_path)
    model.name_or_path = str(Path(name).resolve()) if os.path.isdir(name) else name
    return model


def _load(cls, name: str, **kwargs) -> nn.Module:
    bundled = bundled_models()
    if name in bundled and not os.path.exists(name):  # a local folder of that name wins
        name = str(bundled[name])
    if os.path.isfile(name):
        raise CheckpointError(f"{name}: give the folder that holds config.json and {SAFETENSORS_FILE}, not a file")
    if os.path.isdir(name):
        return load_pretrained(
            cls,
            model_id=name,
            config=read_config(Path(name) / "config.json"),
            map_location=kwargs.get("map_location", "cpu"),
        )
    try:
        if not kwargs.get("force_download"):
            try:  # the local Hub cache first: no network, and no retries when there is none
                return PyTorchModelHubMixin.from_pretrained.__func__(cls, name, **{**kwargs, "local_files_only": True})
            except (
                LocalEntryNotFoundError,
                NoConfigError,
            ):  # huggingface_hub < 1.0 passes no config when it is not cached
                if kwargs.get("local_files_only") or huggingface_hub.constants.HF_HUB_OFFLINE:
                    raise
        _check_on_hub(name, kwargs.get("revision"), kwargs.get("token"))
        return PyTorchModelHubMixin.from_pretrained.__func__(cls, name, **kwargs)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{name}: config.json is not valid JSON ({err})") from None
    except (HFValidationError, HfHubHTTPError, LocalEntryNotFoundError, NoConfigError, OSError) as err:
        known = ", ".join(bundled) or "none"
        raise CheckpointError(
            f"{name}: no such model folder, not a bundled model ({known}), and not loadable "
            f"from the Hugging Face Hub ({type(err).__name__}: {_first_line(err)})"
        ) from None


def load_pretrained(
    cls,
    *,
    model_id: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    map_location: str = "cpu",
    strict: bool = True,
    config: DiverseEmbedConfig | dict | None = None,
    **unused,
) -> nn.Module:
    """The mixin's `_from_pretrained` hook, replaced: it would load non-strictly, print, and fall
    back to pickle. `strict` is accepted for compatibility and ignored: loading is always strict."""
    if config is None:
        raise NoConfigError(f"{model_id}: no config.json found, so the model's shape is unknown")
    try:
        model = cls(config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{model_id}: config.json: {err}") from None
    if os.path.isdir(model_id):
        model_file = Path(model_id) / SAFETENSORS_FILE
        if not model_file.is_file():
            raise CheckpointError(
                f"{model_id}: no {SAFETENSORS_FILE} in this folder (only safetensors weights are loaded)"
            )
    else:
        model_file = hf_hub_download(
            repo_id=model_id,
            filename=SAFETENSORS_FILE,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
    load_weights(model, model_file)
    return model.to(map_location).eval()


def model_card(model: nn.Module, base_model: str | None = None, title: str | None = None, **unused) -> ModelCard:
    """The card `save_pretrained` writes as README.md: a bundled model saved unchanged gets its own
    card; any other gets one that says what it is, what it was trained from (`base_model`, passed
    as model_card_kwargs={"base_model": NAME}; `train --init-from` passes it), its labels and its
    licence, inherited from the base model's card (the bundled ones are CC BY-NC-SA 4.0)."""
    name = model.name_or_path
    if name in bundled_models() and _unchanged(model, name):
        return ModelCard((bundled_models()[name] / "README.md").read_text())
    source = base_model or name  # what it was trained or loaded from
    licence = _card_licence(source) if source else None  # as the Hub names it: cc-by-nc-sa-4.0
    labels = model.config.label_names()
    corpora = label_corpora(labels)
    if corpora:  # one softmax per corpus: name the corpora
        shown = ", ".join(f"{corpus} ({corpora.count(corpus)})" for corpus in sorted(set(corpora)))
    else:
        shown = ", ".join(f"`{label}`" for label in labels[:24]) + (
            f" and {len(labels) - 24} more" if len(labels) > 24 else ""
        )
    origin = f"Fine-tuned from `{base_model}`" if base_model else f"Saved from `{name}`" if name else "Made"
    terms = (
        f"**Licence: {LICENCE_NAMES.get(licence, licence)}**, inherited from `{source}` (its card names the data it was trained on)."
        if licence
        else "**Licence: not stated.** Weights follow the terms of the data they were trained on; set `license` above."
    )
    text = f"""---
license: {licence or "other"}
library_name: diverse-embed
pipeline_tag: audio-classification
tags: [audio, audio-embedding, audio-classification, diverse-embed]
---

# {title or (Path(name).name if name else "diverse-embed model")}

A diverse-embed model: four feature branches ({", ".join(model.config.branches)}), each a small
transformer over 1-s chunks of {model.config.sample_rate} Hz audio, concatenated into a
{model.embedding_dim}-d embedding, and a linear head over {len(labels) or model.config.num_labels} labels.
{origin} with diverse-embed {__version__}.

Labels{" by corpus, each with its own softmax" if corpora else ""}: {shown or "none named (the head was not trained on named classes)"}.

```python
from diverse_embed import DiverseEmbedder, load_audio

model = DiverseEmbedder.from_pretrained("THIS_FOLDER_OR_HUB_ID")
out = model.embed(load_audio("clip.wav"), sample_rate=16000)   # out.embedding: ({model.embedding_dim},)
model.tag(load_audio("clip.wav"), sample_rate=16000)            # the head's best labels
```

{terms}
"""
    return ModelCard(text)


def _unchanged(model: nn.Module, name: str) -> bool:
    """Whether `model` still holds the bundled checkpoint `name`'s weights and config."""
    bundled = type(model).from_pretrained(name)
    return bundled.fingerprint_0_1() == model.fingerprint_0_1()  # 0.1's kind weighs the head too


def _card_licence(name: str) -> str | None:
    """The licence a model card names for `name`: a bundled model's, or a local folder's README.md."""
    folder = bundled_models().get(name) or Path(name)
    card = folder / "README.md"
    if not card.is_file():
        return None
    return ModelCard(card.read_text()).data.license


LICENCE_NAMES = {"cc-by-nc-sa-4.0": "CC BY-NC-SA 4.0", "cc-by-4.0": "CC BY 4.0", "apache-2.0": "Apache-2.0"}


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, *, float16: bool | None = None, **kwargs):
    """`model.save_pretrained(FOLDER)`: config.json, model.safetensors and README.md, the model card
    (see `model_card`). float16 stores the weights in half precision (half the size, loaded back as
    float32); by default they are stored as they were loaded: float16 for a bundled model, else
    float32. Other keyword arguments as in huggingface_hub (`model_card_kwargs`, `push_to_hub`...)."""
    model._save_float16 = model.loaded_float16 if float16 is None else float16
    kwargs["model_card_kwargs"] = {"title": Path(save_directory).name, **(kwargs.get("model_card_kwargs") or {})}
    try:
        return PyTorchModelHubMixin.save_pretrained(model, save_directory, **kwargs)
    finally:
        del model._save_float16


def write_weights(model: nn.Module, save_directory: Path) -> None:
    """The mixin's `_save_pretrained` hook: config.json and model.safetensors."""
    save_directory = Path(save_directory)
    half = getattr(model, "_save_float16", False)
    # Floating tensors only: integer counters (batch-norm's num_batches_tracked) keep their type.
    tensors = {
        name: (t.half() if half and t.is_floating_point() else t).detach().contiguous()
        for name, t in model.state_dict().items()
    }
    # written as any file is (mode from the umask): safetensors' save_file makes it 0600, unreadable to others
    (save_directory / SAFETENSORS_FILE).write_bytes(safetensors.torch.save(tensors, metadata={"format": "pt"}))
    (save_directory / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True))


def load_weights(model: nn.Module, model_file: str | os.PathLike) -> None:
    """Load safetensors weights strictly: every key present, none extra, every shape equal.

    Tensors stored in another float precision (e.g. float16) are cast to the model's.
    """
    try:
        state = safetensors.torch.load_file(str(model_file))
    except (OSError, safetensors.SafetensorError) as err:
        raise CheckpointError(f"{model_file}: cannot read safetensors weights ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(state) & set(expected))
        if state[key].shape != expected[key].shape
    ]
    # A float weight stored as integers (or complex) loads as garbage without a word: zero vectors.
    wrong_kind = [
        f"{key}: {state[key].dtype} where the model holds {expected[key].dtype}"
        for key in sorted(set(state) & set(expected))
        if state[key].is_floating_point() != expected[key].is_floating_point() or state[key].is_complex()
    ]
    problems = []
    if wrong_kind:
        problems.append(f"wrong kind of numbers {_short(wrong_kind)}")
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch {_short(mismatched)}")
    if problems:
        raise CheckpointError(
            f"{model_file} does not match the model its config.json describes: " + "; ".join(problems)
        )
    not_finite = [key for key in sorted(state) if state[key].is_floating_point() and not state[key].isfinite().all()]
    if not_finite:
        raise CheckpointError(f"{model_file}: damaged weights, NaN or infinite values in {_short(not_finite)}")
    model.loaded_float16 = any(value.dtype == torch.float16 for value in state.values())  # saved back as such
    state = {key: value.to(expected[key].dtype) for key, value in state.items()}
    model.load_state_dict(state, strict=True)


def _check_on_hub(name: str, revision: str | None, token: str | bool | None) -> None:
    """One quick look before downloading: huggingface_hub retries an unreachable host for ~30 s."""
    try:
        huggingface_hub.HfApi().model_info(name, revision=revision, token=token, timeout=10)
    except HfHubHTTPError:
        raise
    except Exception as err:  # whatever the HTTP client raises for no network, no host, a timeout
        raise LocalEntryNotFoundError(
            f"not in the local cache, and the Hub is not reachable ({type(err).__name__})"  # its text: urllib3's retries
        ) from None


def _short(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... {len(items) - limit} more' if len(items) > limit else ''}]"


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0]
