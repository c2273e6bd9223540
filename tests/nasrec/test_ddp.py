"""Two CPU processes on gloo follow the one-process run with the same global batch."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nasrec.data import Dataset
from nasrec.train import TrainConfig, build_supernet, train_supernet

CFG = TrainConfig(steps=4, batch_size=64, full_path_fraction=0.0, seed=5)


def _worker(rank, path, init_file, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        ds = Dataset(path)
        sn = build_supernet(ds.schema, "small", seed=5)
        hist = train_supernet(sn, ds.split("train"), CFG)
        if rank == 0:
            torch.save({"state": sn.state_dict(), "losses": hist["train_losses"]}, out)
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_matches_one_process(tiny_data, tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(str(tiny_data.path), str(tmp_path / "init"), str(out)), nprocs=2)
    two = torch.load(out)
    sn = build_supernet(tiny_data.schema, "small", seed=5)
    one = train_supernet(sn, tiny_data.split("train"), CFG)
    torch.testing.assert_close(two["losses"], one["train_losses"], rtol=1e-4, atol=1e-5)
    for name, value in sn.state_dict().items():
        torch.testing.assert_close(two["state"][name], value, rtol=1e-4, atol=1e-5)
