"""What the PyTorch peers (launch/bench/*_pytorch.py) share: timing their training steps."""
import time

import torch


def time_steps(step, warmup, steps, device):
    """Runs step(k) for k < warmup untimed, then for the next `steps` k timed, waiting for the
    GPU before and after the timed stretch (a CUDA device). Returns (seconds, the last value
    step returned)."""
    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    for k in range(warmup):
        step(k)
    sync()
    start = time.perf_counter()
    last = None
    for k in range(steps):
        last = step(warmup + k)
    sync()
    return time.perf_counter() - start, last
