"""How to spread the work over the cores: the choices `diverse_embed.parallel.plan` was picked from,
each measured idle and next to a busy neighbour (one core kept busy by another process).

    python -m benchmarks.threads            # writes benchmarks/results/threads.{json,md}

Embedding: `model.embed_files` on --files ten-second 44.1-kHz WAV files (the bundled model), in
seconds of audio per second. Training: steps of 64 chunks (forward, backward, AdamW) of the
bundled model's architecture, in chunks per second. Every choice runs in a fresh process (OpenMP
reads its settings when torch loads), the choices taking turns, the median of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .speed import condition, write_wav_files
from .systems import machine, write_results

# name -> (environment, what the child process does before timing)
EMBEDDING = {
    "the plan: a Python thread per core, single-threaded ops, decoding threads": ({}, "plan"),
    "the plan, decoding in the calling thread (--num-workers 0)": ({}, "inline"),
    "one thread": ({}, "one"),
    "OpenMP threads (one per core), decoding in the calling thread": ({}, "openmp"),
    "OpenMP threads, OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, "openmp"),
}
TRAINING = {
    "OpenMP threads (one per core), default waiting (the plan)": {},
    "OpenMP threads, GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OpenMP threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "one thread": {"OMP_NUM_THREADS": "1"},
}

EMBED_CHILD = """
import contextlib, glob, sys, time
import diverse_embed.embed as E
from diverse_embed import resolve_model
from diverse_embed.parallel import plan
mode, folder = sys.argv[1], sys.argv[2]
if mode in ("one", "openmp"):
    E.plan = lambda device: plan(device, cores=1)  # one compute thread
if mode == "openmp":
    E.torch_threads = lambda count: contextlib.nullcontext()  # operations keep torch's threads
model = resolve_model("diverse-embed-esc50")[0]
paths = sorted(glob.glob(folder + "/*.wav"))
workers = 0 if mode in ("inline", "openmp") else None
model.embed_files(paths[:4], num_workers=workers, progress=False)
start = time.perf_counter()
model.embed_files(paths, num_workers=workers, progress=False)
print(time.perf_counter() - start)
"""

TRAIN_CHILD = """
import time, torch
from diverse_embed import DiverseEmbedder
torch.manual_seed(0)
model = DiverseEmbedder().train()
optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
chunks, labels = torch.randn(64, 16000) * 0.1, torch.randint(0, 200, (64,))
def step():
    loss = torch.nn.functional.cross_entropy(model(chunks).logits, labels)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
step(); step()
start = time.perf_counter()
for _ in range(3): step()
print((time.perf_counter() - start) / 3)
"""


def child_seconds(code: str, env: dict, args: list[str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(conditions: list[str], files: int, repeats: int) -> dict:
    report = {"embedding": {}, "training": {}}
    with tempfile.TemporaryDirectory() as folder:
        write_wav_files(Path(folder), files)
        for name in conditions:
            embedding = {choice: [] for choice in EMBEDDING}  # seconds of audio per second, per run
            training = {choice: [] for choice in TRAINING}  # chunks per second, per run
            with condition(name):
                for _ in range(repeats):
                    for choice, (env, mode) in EMBEDDING.items():
                        embedding[choice].append(files * 10 / child_seconds(EMBED_CHILD, env, [mode, folder]))
                    for choice, env in TRAINING.items():
                        training[choice].append(64 / child_seconds(TRAIN_CHILD, env, []))
            for section, runs in (("embedding", embedding), ("training", training)):
                for choice, values in runs.items():
                    report[section].setdefault(choice, {})[name] = statistics.median(values)
            print(name, json.dumps({"embedding": embedding, "training": training}), flush=True)
    return report


def markdown(report: dict) -> str:
    conditions = report["conditions"]
    labels = {"idle": "idle", "busy": "one core busy"}
    head = "| choice | " + " | ".join(labels[c] for c in conditions) + " |"
    rule = "|---|" + "---|" * len(conditions)
    lines = [
        f"# Threads and workers ({report['machine']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Embedding {report['files']} ten-second 44.1-kHz WAV files with `embed_files`, seconds of audio per second:",
        "",
        head,
        rule,
    ]
    lines += [
        f"| {c} | " + " | ".join(f"{v[k]:.0f}" for k in conditions) + " |" for c, v in report["embedding"].items()
    ]
    lines += ["", "Training steps of 64 chunks (forward, backward, AdamW), chunks per second:", "", head, rule]
    lines += [f"| {c} | " + " | ".join(f"{v[k]:.1f}" for k in conditions) + " |" for c, v in report["training"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conditions", default="idle,busy")
    parser.add_argument("--output", default="benchmarks/results/threads", help="path stem for .json and .md")
    args = parser.parse_args(argv)
    conditions = args.conditions.split(",")
    report = {
        "machine": machine(),
        "command": " ".join(["python -m benchmarks.threads", *(argv or sys.argv[1:])]),
        "files": args.files,
        "conditions": conditions,
        **measure(conditions, args.files, args.repeats),
    }
    write_results(args.output, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
