#!/usr/bin/python3
"""The peer for PixelRNN: the same three networks in PyTorch eager, side by side with gentrain.

Mirrors models/pixelrnn (masks A/B, Row LSTM with 1 x k input-to-state and k-tap state
convolutions, Diagonal BiLSTM with skew by reshape and the right-to-left output shifted down a
row, PixelCNN residual blocks, two 1 x 1 output layers, sigmoid outputs), the loss (per-image
BCE-with-logits sum, mean over the batch) and Adam. Data: binarized Fashion-MNIST (threshold 128)
in memory. Prints training images/s after a warm-up.

  python3 launch/bench/pixelrnn_pytorch.py --variant diagonal_bilstm --threads 1 --batch 16 --steps 10

With --train-steps N it trains N steps of a global batch instead (DDP over gloo with --ranks R,
which starts R processes on this machine; each epoch a seeded shuffle sharded over the ranks; Adam with the same optional linear
decay as optim.<name>.decay), then prints the exact test NLL over the whole test split:

  python3 launch/bench/pixelrnn_pytorch.py --ranks 2 --variant pixelcnn --batch 32 \
      --train-steps 1000 --lr 1e-3
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_timing import set_threads, time_steps


def conv_mask(out, inp, kh, kw, mask_a):
    # One image channel: no channel groups. Rows above and the centre row left of the centre see
    # everything; the centre itself only for mask B.
    m = torch.zeros(out, inp, kh, kw)
    m[:, :, : kh // 2, :] = 1
    m[:, :, kh // 2, : kw // 2] = 1
    if not mask_a:
        m[:, :, kh // 2, kw // 2] = 1
    return m


class MaskedConv(nn.Conv2d):
    def __init__(self, inp, out, kh, kw, mask_a=False):
        super().__init__(inp, out, (kh, kw), padding=(kh // 2, kw // 2))
        self.register_buffer("mask", conv_mask(out, inp, kh, kw, mask_a))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def lstm_step(gates, cell):
    h = gates.shape[-1] // 4
    sig = torch.sigmoid(gates[..., : 3 * h])
    c = sig[..., h : 2 * h] * cell + sig[..., 2 * h : 3 * h] * torch.tanh(gates[..., 3 * h :])
    return sig[..., :h] * torch.tanh(c), c


def skew(x):
    b, f, h, w = x.shape
    flat = F.pad(x, (0, h)).reshape(b, f, h * (w + h))
    return flat[:, :, : h * (w + h - 1)].reshape(b, f, h, w + h - 1)


def unskew(x, width):
    b, f, h, cols = x.shape
    flat = F.pad(x.reshape(b, f, h * cols), (0, h))
    return flat.reshape(b, f, h, cols + 1)[..., :width]


class RowLstm(nn.Module):
    def __init__(self, inp, hidden, k):
        super().__init__()
        self.hidden, self.k = hidden, k
        self.input_to_state = MaskedConv(inp, 4 * hidden, 1, k)
        self.state = nn.Linear(k * hidden, 4 * hidden)

    def forward(self, x):
        b, _, height, width = x.shape
        inputs = self.input_to_state(x).permute(2, 0, 3, 1).contiguous().unbind(0)
        h = x.new_zeros(b, width, self.hidden)
        c = h
        rows = []
        for r in range(height):
            p = F.pad(h, (0, 0, self.k // 2, self.k // 2))
            taps = torch.cat([p[:, t : t + width] for t in range(self.k)], 2)
            h, c = lstm_step(inputs[r] + self.state(taps), c)
            rows.append(h)
        return torch.stack(rows, 0).permute(1, 3, 0, 2)


class DiagonalLstm(nn.Module):
    def __init__(self, inp, hidden):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv(inp, 4 * hidden, 1, 1)
        self.state = nn.Linear(2 * hidden, 4 * hidden)

    def forward(self, x):
        b, _, height, width = x.shape
        inputs = skew(self.input_to_state(x)).permute(3, 0, 2, 1).contiguous().unbind(0)
        h = x.new_zeros(b, height, self.hidden)
        c = h
        cols = []
        for j in range(width + height - 1):
            lo, hi = max(0, j - width + 1), min(height - 1, j)
            above = F.pad(h, (0, 0, 1, 0))[:, lo : hi + 1]
            gates = inputs[j][:, lo : hi + 1] + self.state(torch.cat([above, h[:, lo : hi + 1]], 2))
            hn, cn = lstm_step(gates, c[:, lo : hi + 1])
            h = F.pad(hn, (0, 0, lo, height - 1 - hi))
            c = F.pad(cn, (0, 0, lo, height - 1 - hi))
            cols.append(h)
        return unskew(torch.stack(cols, 0).permute(1, 3, 2, 0), width)


class DiagonalBiLstm(nn.Module):
    def __init__(self, inp, hidden):
        super().__init__()
        self.left_to_right = DiagonalLstm(inp, hidden)
        self.right_to_left = DiagonalLstm(inp, hidden)

    def forward(self, x):
        right = self.right_to_left(x.flip(3)).flip(3)
        return self.left_to_right(x) + F.pad(right, (0, 0, 1, 0))[:, :, : x.shape[2]]


class Block(nn.Module):
    def __init__(self, variant, hidden, k):
        super().__init__()
        self.variant = variant
        if variant == "pixelcnn":
            self.down = MaskedConv(2 * hidden, hidden, 1, 1)
            self.conv = MaskedConv(hidden, hidden, 3, 3)
        else:
            self.lstm = RowLstm(2 * hidden, hidden, k) if variant == "row_lstm" else DiagonalBiLstm(2 * hidden, hidden)
        self.up = MaskedConv(hidden, 2 * hidden, 1, 1)

    def forward(self, x):
        if self.variant == "pixelcnn":
            y = self.conv(F.relu(self.down(F.relu(x))))
            return x + self.up(F.relu(y))
        return x + self.up(self.lstm(x))


class PixelNet(nn.Module):
    def __init__(self, variant, layers=7, hidden=16, out_hidden=32, k=3):
        super().__init__()
        self.first = MaskedConv(1, 2 * hidden, 7, 7, mask_a=True)
        self.layers = nn.ModuleList(Block(variant, hidden, k) for _ in range(layers))
        self.out1 = MaskedConv(2 * hidden, out_hidden, 1, 1)
        self.out2 = MaskedConv(out_hidden, 1, 1, 1)

    def forward(self, x):
        x = self.first(x)
        for layer in self.layers:
            x = layer(x)
        return self.out2(F.relu(self.out1(F.relu(x))))


def load_binarized(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[4:8], "big")
    pixels = np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, 28, 28)
    return torch.from_numpy((pixels >= 128).astype(np.float32))  # as --binarize threshold:128


def nll_per_image(net, x):
    return F.binary_cross_entropy_with_logits(net(x), x, reduction="none").flatten(1).sum(1)


def train_and_test(args):
    """N steps of a global batch on every rank (DDP), then the test NLL over the whole test split."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    if args.batch % world:
        raise SystemExit(f"--batch {args.batch} does not split over {world} ranks")
    per_rank = args.batch // world
    images = load_binarized(args.idx)
    test = load_binarized(args.test_idx)
    torch.manual_seed(args.seed)  # every rank the same initial weights, as DDP also broadcasts
    net = PixelNet(args.variant)
    model = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    begin = int(args.decay_start * args.train_steps)
    # The rate of the step after k completed ones: held, then linear to zero (LrSchedule::at).
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 1.0 if args.decay != "linear" or k < begin
        else max(0.0, (args.train_steps - k) / (args.train_steps - begin)))
    steps_per_epoch = len(images) // args.batch
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    for k in range(args.train_steps):
        epoch, within = divmod(k, steps_per_epoch)
        if within == 0:
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed + epoch))
        index = order[within * args.batch + rank * per_rank :][:per_rank]
        x = images[index]
        opt.zero_grad(set_to_none=True)
        loss = nll_per_image(model, x).mean()
        loss.backward()
        opt.step()
        schedule.step()
        if rank == 0 and (k + 1) % 100 == 0:
            print(f"step {k + 1}/{args.train_steps} nll {loss.item():.3f}", flush=True)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    total = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        mine = test[rank::world]
        for first in range(0, len(mine), 500):
            total[0] += nll_per_image(net, mine[first : first + 500]).double().sum()
        total[1] = len(mine)
    if world > 1:
        dist.all_reduce(total)
    if rank == 0:
        print(f"pytorch {args.variant}: {world} rank(s), batch {args.batch}, {args.train_steps} steps in "
              f"{seconds:.1f} s ({args.train_steps * args.batch / seconds:.1f} images/s); "
              f"test nll {total[0] / total[1]:.3f} nats over {int(total[1])} images")
        print(f"RESULT train_seconds={seconds:.2f} test_nll={total[0] / total[1]:.4f}")
    if world > 1:
        dist.destroy_process_group()


def spawn(ranks):
    """This script again as `ranks` processes of one gloo group (torchrun's environment)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(ranks))
    procs = [subprocess.Popen([sys.executable] + sys.argv, env=dict(env, RANK=str(r)))
             for r in range(ranks)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a rank failed: exit codes {codes}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="diagonal_bilstm", choices=["diagonal_bilstm", "row_lstm", "pixelcnn"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--idx", default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    ap.add_argument("--test-idx", default="/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--train-steps", type=int, default=0, help="train this many steps, then test")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--decay", default="none", choices=["none", "linear"])
    ap.add_argument("--decay-start", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ranks", type=int, default=1, help="processes for --train-steps (gloo DDP)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the speed run only)")
    ap.add_argument("--channels-last", action="store_true",
                    help="channels-last memory format for the network and its input (speed run)")
    args = ap.parse_args()
    if args.ranks > 1 and "RANK" not in os.environ:
        return spawn(args.ranks)
    set_threads(args.threads)
    if args.train_steps:
        return train_and_test(args)
    torch.manual_seed(1234)
    images = load_binarized(args.idx)
    n = len(images)
    device = torch.device(args.device)
    images = images.to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = PixelNet(args.variant).to(device, memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(n, generator=g).to(device)

    def step(k):
        x = images[order[(k * args.batch) % (n - args.batch):][: args.batch]].contiguous(
            memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        loss = nll_per_image(net, x).mean()
        loss.backward()
        opt.step()
        return loss.detach()  # no .item() per step: it would wait for the GPU every step

    seconds, loss = time_steps(step, args.warmup, args.steps, device)
    rate = args.steps * args.batch / seconds
    print(f"pytorch {args.variant}: batch {args.batch}, {args.threads} thread(s), {args.steps} steps"
          f"{', channels-last' if args.channels_last else ''}: "
          f"{rate:.1f} images/s, {1000 * seconds / args.steps:.1f} ms/step, last nll {float(loss):.2f}")
    print(f"RESULT images_per_s={rate:.2f}")


if __name__ == "__main__":
    main()
