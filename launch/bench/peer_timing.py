"""What the PyTorch peers (launch/bench/*_pytorch.py) share: their thread count, timing their
training steps, and a per-operator profile of a few more (PEER_PROFILE=N steps, after the timed
ones), printed as `gentrain bench train --profile N` prints its own (launch/OpProfile.h)."""
import ctypes
import os
import time

import torch


def set_threads(n):
    """torch.set_num_threads(n), and OpenBLAS's thread pool, which ignores it: with Debian's
    pthread OpenBLAS a peer at "1 thread" ran its matrix products on every core (the VAE's at
    14,400 images/s on one core, 16,500 on two). gentrain sets both (setComputeThreads in
    framework/runtime/Runtime.cpp); so does the peer, or the ratio is against more cores."""
    torch.set_num_threads(n)
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "openblas" in line or "libblas" in line}
    for path in sorted(paths):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        setter(ctypes.c_int(n))


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
    seconds = time.perf_counter() - start
    profile_steps = int(os.environ.get("PEER_PROFILE", "0"))
    if profile_steps > 0:
        profile(step, warmup + steps, profile_steps, sync, seconds * 1000 / max(steps, 1))
    return seconds, last


def profile(step, first, steps, sync, unrecorded_ms, top=15):
    """Runs `steps` more steps under torch.profiler and prints the top operators by self CPU
    time: calls and ms per step, share of all recorded self time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    start = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for k in range(steps):
            step(first + k)
        sync()
    recorded_ms = (time.perf_counter() - start) * 1000 / steps
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    print(f"PROFILE pytorch, {steps} steps, {recorded_ms:.3f} ms/step while recorded "
          f"({unrecorded_ms:.3f} without the profile):")
    print(f"{'operator (self time)':44s} {'calls/step':>10s} {'ms/step':>12s} {'share':>7s}")
    for e in rows[:top]:
        print(f"{e.key[:44]:44s} {e.count / steps:10.1f} {e.self_cpu_time_total / 1000 / steps:12.3f} "
              f"{100 * e.self_cpu_time_total / total:6.1f}%")
    print(f"{'all recorded operators':44s} {'':10s} {total / 1000 / steps:12.3f} {100.0:6.1f}%")
