"""Run the MIP selector on synthetic vectors, in one process or under torchrun (the ranks split the buckets).

    torchrun --nproc_per_node 2 tests/scripts/select_tiny.py OUT.npy
"""

import os
import sys

import numpy as np
import torch.distributed as dist

from hf_prune.selection import Budget, SelectionInputs, get_selector


def main() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    vectors = rng.normal(size=(300, 6))
    inputs = SelectionInputs(labels=labels, vectors=vectors, seed=1)
    out = get_selector("mip", bucket_size=50, solve="always")(inputs, Budget(n_keep=140))
    if not dist.is_initialized() or dist.get_rank() == 0:
        np.save(sys.argv[1], out.kept)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
