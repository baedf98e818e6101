import pytest
import torch

# Denormal floats (values below ~1e-38, e.g. in Adam's moments of weights that stopped moving)
# run some CPU kernels 10x slower; none of the tests' results depends on them.
torch.set_flush_denormal(True)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def cuda_only():
    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present here")
