"""Give a model the labels of one more corpus, taken from another run's head on the same branches.

    python scripts/add_corpus_head.py BASE RUN CORPUS OUTPUT

BASE and RUN are models with the same branches (the same fingerprint: RUN was trained with
`--init-from BASE`, branches frozen); RUN's head knows CORPUS's labels. OUTPUT gets BASE's head rows
as they are (each corpus has its own softmax, so another corpus's rows change none of its scores)
and RUN's rows for CORPUS. scripts/train_default.sh uses it to add the general labels (speech,
music, animal, ...) to the default without retraining the heads it had.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from diverse_embed import DiverseEmbedder
from diverse_embed.labels import label_corpora


def with_corpus(base: DiverseEmbedder, run: DiverseEmbedder, corpus: str) -> DiverseEmbedder:
    if base.fingerprint() != run.fingerprint():
        raise SystemExit("error: the two models' branches differ (another fingerprint): their heads read other vectors")
    base_labels, run_labels = base.config.label_names(), run.config.label_names()
    added = [label for label, name in zip(run_labels, label_corpora(run_labels)) if name == corpus]
    if not added:
        raise SystemExit(f"error: {corpus!r} is not a corpus of the second model's labels")
    if corpus in set(label_corpora(base_labels)):
        raise SystemExit(f"error: the first model has corpus {corpus!r} already")
    labels = sorted(base_labels + added)  # the order a manifest's vocabulary has
    config = dataclasses.replace(base.config, num_labels=len(labels), id2label=dict(enumerate(labels)))
    model = DiverseEmbedder(config).eval()
    model.branches.load_state_dict(base.branches.state_dict())
    source = {
        **{label: (base, i) for i, label in enumerate(base_labels)},
        **{label: (run, run_labels.index(label)) for label in added},
    }
    with torch.no_grad():
        for row, label in enumerate(labels):
            owner, i = source[label]
            model.head.weight[row] = owner.head.weight[i]
            model.head.bias[row] = owner.head.bias[i]
    return model


def main(argv: list[str]) -> int:
    base_name, run_name, corpus, output = argv
    model = with_corpus(DiverseEmbedder.from_pretrained(base_name), DiverseEmbedder.from_pretrained(run_name), corpus)
    model.save_pretrained(output, float16=False)
    print(f"{output}: {model.config.num_labels} labels, corpus {corpus!r} from {run_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
