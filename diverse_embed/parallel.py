"""How work is spread over the machine's cores: one plan for embedding, decoding and training.

The model is many small operations. Run on several OpenMP threads, each operation waits for its
slowest thread, and a waiting thread spins: next to any other busy process that costs many times
the work (benchmarks/results/speed.md). So on CPU the plan runs every operation on one thread and
gets its parallelism from Python threads instead, each embedding its own slice of a batch (torch releases
the GIL inside operations): a busy neighbour then costs a share of a core, not a spin. Files are
decoded by threads too (libsndfile and torch release the GIL), ahead of the model, so decoding
neither waits for the model nor adds processes of its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

# 1-s chunks per forward pass unless told: on CPU 64 was faster than 32 and 128 no faster
# (README, "Size and speed").
DEFAULT_BATCH_SIZE = 64
COMMIT_EVERY = 32  # files an index embeds between commits: an interrupted build loses at most these
# What one forward pass may hold, whatever batch size is asked for (--batch-size 100000 on a 20-min
# file once took 2 GB): the default model's chunks need about 2 MB each, so 64 fit many times.
WORKING_SET_BYTES = 256 << 20


def chunks_in_memory(floats_per_chunk: int) -> int:
    """How many chunks the forward passes in flight may hold together (`floats_per_chunk`:
    DiverseEmbedConfig.size_estimate's): every batch size asked for is capped by it."""
    return max(1, WORKING_SET_BYTES // (4 * max(1, floats_per_chunk)))


@dataclass(frozen=True)
class Plan:
    compute_threads: int  # Python threads embedding side by side, each its own slice, one op thread each
    decode_threads: int  # threads decoding and resampling files ahead of the model
    train_threads: int  # intra-op threads of a training step (one step cannot be sliced like embedding)
    loader_workers: int  # DataLoader processes in training and evaluation


def available_cores() -> int:
    """CPUs this process may use (its affinity mask, as taskset and containers set it), capped by
    OMP_NUM_THREADS when set, and shared out between the processes of a torchrun job."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        cores = min(cores, max(1, int(os.environ["OMP_NUM_THREADS"])))
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, cores // max(1, local_processes))


def plan(device: str = "cpu", cores: int | None = None) -> Plan:
    """The plan for `device` ("cpu", "cuda", "cuda:N") on `cores` CPUs (default: `available_cores()`)."""
    cores = cores or available_cores()
    if str(device).startswith("cpu"):
        # Training's loader reads cached 16-kHz arrays: cheap next to a training step, so on a
        # small machine it stays in the training process rather than taking a core from it.
        return Plan(
            compute_threads=cores,
            decode_threads=max(1, cores // 4),
            train_threads=cores,
            loader_workers=0 if cores <= 4 else cores // 4,
        )
    # An accelerator: one stream of large batches; the CPU's cores decode and load for it.
    helpers = max(1, min(8, cores - 1))
    return Plan(
        compute_threads=1, decode_threads=helpers, train_threads=max(1, cores - helpers), loader_workers=helpers
    )


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch operations on `count` intra-op threads inside the block; the previous setting after."""
    import torch

    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
