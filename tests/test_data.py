"""Labelled data: FSD-50K's layout, manifests, multi-hot targets, the chunk dataset's augmentation."""

from types import SimpleNamespace

import numpy as np
import pytest

from diverse_embed.config import DiverseEmbedConfig
from diverse_embed.datasets import Clip, read_fsd50k, read_manifest
from diverse_embed.errors import DataError
from diverse_embed.labels import multi_hot
from diverse_embed.training.config import DataConfig
from diverse_embed.training.data import ChunkDataset, read_dataset


def test_reads_the_official_layout(fsd50k):
    dataset = read_fsd50k(fsd50k)
    assert dataset.vocabulary == ["Bark", "Keyboard_(musical)", "Rain"]
    assert '"Bark,Rain","/m/05tny_,/m/06mb1"' in (fsd50k / "FSD50K.ground_truth" / "dev.csv").read_text()
    assert [len([c for c in dataset.clips if c.split == s]) for s in ("train", "val", "eval")] == [15, 5, 10]
    assert dataset.clips[3].labels == [0, 2] and dataset.clips[1].labels == [1]


def test_manifest_rules(tmp_path):
    (tmp_path / "clips").mkdir()
    manifest = tmp_path / "labels.csv"
    manifest.write_text('path,labels,split\na.wav,"dog;bark",train\nsub/b.wav,rain,test\n')
    dataset = read_manifest(manifest, tmp_path / "clips")
    assert dataset.vocabulary == ["bark", "dog", "rain"] and dataset.clips[0].labels == [1, 0]
    manifest.write_text("path,labels\n../outside.wav,dog\n")
    with pytest.raises(ValueError, match="outside the audio root"):
        read_manifest(manifest, tmp_path / "clips")
    assert read_manifest(manifest, tmp_path / "clips", allow_outside_root=True).clips[0].split == "train"


def test_multi_hot_and_targets():
    np.testing.assert_array_equal(multi_hot([[0, 2], [], [1]], 3), [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    cache = SimpleNamespace(load=lambda path: np.zeros(2500, np.int16))
    dataset = ChunkDataset(
        [Clip("a", [0], "train"), Clip("b", [1, 2], "train")], cache, 3, DiverseEmbedConfig(sample_rate=1000)
    )
    assert dataset.chunk_targets().tolist() == [[1, 0, 0]] * 3 + [[0, 1, 1]] * 3
    assert dataset.clip_targets().tolist() == [[1, 0, 0], [0, 1, 1]]
    assert dataset[4][1].tolist() == [0, 1, 1]


def test_missing_settings_are_data_errors():
    with pytest.raises(DataError, match="needs --data-root"):
        read_dataset(DataConfig(dataset="fsd50k"))
    with pytest.raises(DataError, match="needs --manifest"):
        read_dataset(DataConfig(dataset="csv"))


def test_crop_jitter_and_silent_chunk_filter():
    rate = 1000
    loud = np.arange(1, 3 * rate + 1, dtype=np.int16)  # a ramp: each sample says where it came from
    quiet = np.concatenate([np.full(rate, 3000, np.int16), np.zeros(2 * rate, np.int16)])  # 1 s of sound, 2 s silence
    audio = {"loud": loud, "quiet": quiet}
    cache = SimpleNamespace(load=lambda path: audio[path])
    clips = [Clip("loud", [0], "train"), Clip("quiet", [1], "train")]

    kept = ChunkDataset(clips, cache, 2, DiverseEmbedConfig(sample_rate=1000), min_peak_db=-40)
    assert kept.index.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]  # quiet's silent seconds are left out
    every = ChunkDataset(clips, cache, 2, DiverseEmbedConfig(sample_rate=1000))
    assert len(every) == 6

    jittered = ChunkDataset(clips, cache, 2, DiverseEmbedConfig(sample_rate=1000), crop_jitter=True, seed=1)
    starts = {}
    for epoch in range(4):
        jittered.set_epoch(epoch)
        chunk = jittered[1][0].numpy() * 32767  # loud's second chunk
        start = int(round(chunk[0])) - 1
        assert abs(start - rate) <= rate // 2 and 0 <= start <= 2 * rate  # moved at most half a hop, inside the clip
        np.testing.assert_allclose(chunk, np.arange(start + 1, start + rate + 1), atol=0.01)
        starts[epoch] = start
        assert int(round(jittered[1][0][0].item() * 32767)) - 1 == start  # same (epoch, item), same crop
    assert len(set(starts.values())) > 1
    fixed = jittered.without_augmentation()
    assert int(round(fixed[1][0][0].item() * 32767)) == rate + 1 and jittered.crop_jitter


def test_a_corpus_column_gives_each_corpus_its_own_labels(tmp_path):
    from diverse_embed.labels import label_corpora

    manifest = tmp_path / "mixed.csv"
    manifest.write_text(
        "path,labels,split,corpus\na.wav,dog,train,esc50\nb.wav,dog,train,animals\nc.wav,cat,val,animals\n"
    )
    dataset = read_manifest(manifest)
    assert dataset.vocabulary == ["animals/cat", "animals/dog", "esc50/dog"]  # two dogs: two label spaces
    assert [c.labels for c in dataset.clips] == [[2], [1], [0]] and dataset.clips[1].corpus == "animals"
    assert label_corpora(dataset.vocabulary) == ["animals", "animals", "esc50"]
    assert label_corpora(["dog", "cat"]) is None
    manifest.write_text("path,labels,corpus\na.wav,dog,esc50\nb.wav,dog,\n")
    with pytest.raises(ValueError, match="corpus column must name a corpus on every line"):
        read_manifest(manifest)


def test_balanced_epochs_give_every_corpus_its_share_of_every_batch():
    from diverse_embed.training.data import balanced_order

    sizes = {"big": 60, "small": 3, "medium": 10}  # one 1-chunk clip each
    clips = [Clip(f"{name}{i}", [0], "train", name) for name, n in sizes.items() for i in range(n)]
    cache = SimpleNamespace(load=lambda path: np.zeros(1000, np.int16))
    dataset = ChunkDataset(clips, cache, 1, DiverseEmbedConfig(sample_rate=1000))
    order = balanced_order(dataset, 48, seed=0, epoch=0)
    corpus = np.array([dataset.clips[dataset.index[i, 0]].corpus for i in order])
    assert len(order) == 48
    for batch in corpus.reshape(6, 8):  # 48 chunks, 3 corpora: every batch of 8 holds 2-3 of each
        assert all(2 <= (batch == name).sum() <= 3 for name in sizes)
    big = order[corpus == "big"]
    assert len(set(big.tolist())) == len(big) == 16  # the big corpus: no repeats within an epoch
    assert sorted(set(order[corpus == "small"].tolist())) == [60, 61, 62]  # the small one repeats
    np.testing.assert_array_equal(order, balanced_order(dataset, 48, seed=0, epoch=0))
    assert not np.array_equal(order, balanced_order(dataset, 48, seed=0, epoch=1))
    weighted = balanced_order(dataset, 40, seed=0, epoch=0, weights={"big": 2, "small": 1, "medium": 1})
    assert sum(dataset.clips[dataset.index[i, 0]].corpus == "big" for i in weighted) == 20
    with pytest.raises(DataError, match="not in the training data"):
        balanced_order(dataset, 40, seed=0, epoch=0, weights={"esc50": 2})
