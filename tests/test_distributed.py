"""Runtime without torchrun: one rank, collectives that do nothing; two ranks are run for real by
the torchrun tests in test_index.py and test_train.py."""

import torch

from diverse_embed.distributed import Runtime


def test_one_process_is_rank_zero_of_one(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with Runtime("cpu") as rt:
        assert (rt.rank, rt.world, rt.main, rt.device) == (0, 1, True, torch.device("cpu"))
        rt.barrier()
        assert rt.gather({"a": 1}) == [{"a": 1}]
    assert not torch.distributed.is_initialized()
