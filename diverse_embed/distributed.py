"""Rank, world size and device under torchrun (one process without it), and the few collectives used."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


class Runtime:
    """Rank, world size and device; a process group under torchrun (NCCL on GPUs, gloo on CPU).

    Use as a context manager, so that every rank leaves the group together at the end: a rank that
    exits while another still waits in a collective makes gloo fail with "Connection closed by peer".
    """

    def __init__(self, device: str | None = None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.owns_group = self.world > 1 and not dist.is_initialized()
        if self.owns_group:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    def __enter__(self) -> "Runtime":
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
