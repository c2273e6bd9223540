import pytest
import torch

from nasrec.data import SyntheticConfig, generate_synthetic


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine
    two spinning torch threads slow every step down many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """3000 rows, small cardinalities: enough for shapes, training smoke and scoring."""
    cfg = SyntheticConfig(rows=3000, max_cardinality=200, chunk_rows=1024, seed=7)
    return generate_synthetic(cfg, tmp_path_factory.mktemp("data") / "syn")
