import pytest
import torch

# Denormal floats (values below ~1e-38, e.g. in Adam's moments of weights that stopped moving)
# run some CPU kernels 10x slower; none of the tests' results depends on them.
torch.set_flush_denormal(True)

# The suite must pass beside other load. torch's OpenMP threads (one per core by default) stall
# for whole scheduler slices whenever another process holds a core: 2026-12-04, on the 2-core
# VM beside one busy process, six test_learning tests took 35 s on one thread and did not end
# in 400 s on two (a CI run beside one fine-tuning took 58 min instead of ~20). The nodes the
# tests start run one thread each already (config/nodes.yaml's cpu_threads).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def cuda_only():
    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present here")
