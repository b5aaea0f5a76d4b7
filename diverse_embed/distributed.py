"""Rank, world size and device under torchrun (one process without it), and the few collectives used."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .errors import CommandError


class Runtime:
    """Rank, world size and device; a process group under torchrun (NCCL on GPUs, gloo on CPU).

    Use as a context manager, so that every rank leaves the group together at the end: a rank that
    exits while another still waits in a collective makes gloo fail with "Connection closed by peer".
    """

    def __init__(self, device: str | None = None):
        self.world, self.rank, local = (
            environment_number(name, default, low)
            for name, default, low in [("WORLD_SIZE", 1, 1), ("RANK", 0, 0), ("LOCAL_RANK", 0, 0)]
        )
        if self.rank >= self.world:
            raise CommandError(f"RANK={self.rank} with WORLD_SIZE={self.world}: a rank runs from 0 to WORLD_SIZE - 1")
        if self.world > 1 and not dist.is_initialized():
            unset = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
            if unset:
                raise CommandError(
                    f"WORLD_SIZE={self.world} but {' and '.join(unset)} not set: start several processes "
                    "with torchrun, which sets them, or unset WORLD_SIZE for one process"
                )
        self.device = resolve_device(device, local)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.owns_group = self.world > 1 and not dist.is_initialized()
        if self.owns_group:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close(clean=exc[0] is None)

    def close(self, clean: bool = True) -> None:
        """Leave the process group: after a last barrier when all went well, so no rank leaves early."""
        if self.owns_group and dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()
            self.owns_group = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, value):
        """Every rank's value, in rank order (a list of one value without a process group)."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values


def environment_number(name: str, default: int, lowest: int) -> int:
    """An integer that torchrun sets in the environment, or CommandError saying what is wrong with it."""
    text = os.environ.get(name, "").strip() or str(default)
    if not text.isdigit() or int(text) < lowest:
        raise CommandError(
            f"{name}={os.environ[name]!r} in the environment: expected a whole number of at least {lowest}"
        )
    return int(text)


def resolve_device(name: str | None, local_rank: int = 0) -> torch.device:
    """The device a user named (None: this process's GPU when there is one, else the CPU), or
    CommandError in one line: a name torch does not know, a kind the model does not run on (the
    log-mel's float64 STFT rules out MPS; meta holds no numbers), a GPU this machine lacks."""
    if name is None:
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CommandError(f"--device {name!r}: not a device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise CommandError(f"--device {name!r}: the model runs on cpu or cuda only")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no NVIDIA GPU or driver found"
            raise CommandError(f"--device {name!r}: CUDA is not available here ({build}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CommandError(
                f"--device {name!r}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
    return device
