#!/usr/bin/python3
"""The peer gentrain is measured against: the same VAE in PyTorch eager (optionally DDP).

Same network (784-400-20, ReLU, Bernoulli decoder), same loss (per-image BCE-with-logits sum +
KL, mean over the batch), Adam 1e-3, same global batch, same data (Fashion-MNIST binarized at
128, held in memory as float tensors). Prints training images/s after a warm-up.

  python3 launch/bench/vae_pytorch.py --threads 1 --batch 128 --steps 300
  mpirun -np 2 python3 launch/bench/vae_pytorch.py --threads 1   # DDP over gloo
  python3 launch/bench/vae_pytorch.py --device cuda --bf16 --h5 datasets/fashion-mnist-bin128.h5

On a GPU the whole training set and the noise live on the GPU (no host-to-device copies at all:
the most favourable setting for the peer), and bf16 means torch.autocast around forward + loss.
"""
import argparse
import gzip
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_timing import set_threads, time_steps


def load_idx_images(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 1, h, w)


class Vae(nn.Module):
    def __init__(self, hidden=400, latent=20, pixels=784):
        super().__init__()
        self.enc = nn.Linear(pixels, hidden)
        self.mu = nn.Linear(hidden, latent)
        self.log_var = nn.Linear(hidden, latent)
        self.dec1 = nn.Linear(latent, hidden)
        self.dec2 = nn.Linear(hidden, pixels)

    def encode(self, x):
        return F.relu(self.enc(x.flatten(1)))

    def decode(self, z, x):
        return self.dec2(F.relu(self.dec1(z))).view_as(x)

    def forward(self, x, eps):
        h = self.encode(x)
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + eps * (0.5 * log_var).exp()
        logits = self.decode(z, x)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(1)
        return (recon + kl).mean()


class ConvVae(Vae):
    """configs/vae-conv-fashion-mnist.yaml: two stride-2 4x4 convolutions (32, 64 channels), a
    400-wide dense layer, 20 latents; the decoder mirrors it with transposed convolutions."""

    def __init__(self, hidden=400, latent=20, channels=(32, 64), side=28):
        super().__init__(hidden, latent, channels[-1] * (side // 4) ** 2)
        self.side = side // 4
        self.conv1 = nn.Conv2d(1, channels[0], 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 4, stride=2, padding=1)
        self.up1 = nn.ConvTranspose2d(channels[1], channels[0], 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(channels[0], 1, 4, stride=2, padding=1)
        self.fmt = torch.contiguous_format  # --channels-last: torch.channels_last

    def encode(self, x):
        x = x.contiguous(memory_format=self.fmt)
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(self.enc(h.flatten(1)))

    def decode(self, z, x):
        h = F.relu(self.dec2(F.relu(self.dec1(z))))
        h = h.view(x.shape[0], -1, self.side, self.side).contiguous(memory_format=self.fmt)
        return self.up2(F.relu(self.up1(h)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128, help="global batch")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--h5", help="read the training images from a gentrain HDF5 file instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--arch", choices=["mlp", "conv"], default="mlp",
                        help="model.arch: the default MLP or the conv VAE")
    parser.add_argument("--channels-last", action="store_true",
                        help="conv VAE: channels-last memory format for its convolutions")
    args = parser.parse_args()

    set_threads(args.threads)
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world)

    if args.h5:
        import h5py
        with h5py.File(args.h5, "r") as f:
            raw = f["train/images"][:]
        binary = raw >= 128 if raw.max() > 1 else raw >= 1
    else:
        binary = load_idx_images(args.data) >= 128
    device = torch.device(args.device)
    images = torch.from_numpy(binary.astype(np.float32)).to(device)
    torch.manual_seed(0)
    model = (ConvVae() if args.arch == "conv" else Vae()).to(device)
    if args.channels_last:
        if args.arch != "conv":
            raise SystemExit("--channels-last is for --arch conv (the MLP has no convolutions)")
        model = model.to(memory_format=torch.channels_last)
        model.fmt = torch.channels_last
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    local = args.batch // world
    generator = torch.Generator(device=device).manual_seed(1 + rank)

    def step(k):
        index = torch.randint(0, images.shape[0], (local,), generator=generator, device=device)
        x = images[index]
        eps = torch.randn(local, 20, generator=generator, device=device)
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(x, eps)
        loss.backward()
        optimizer.step()
        return loss

    seconds, loss = time_steps(step, args.warmup, args.steps, device)
    if world > 1:
        t = torch.tensor([seconds])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        seconds = t.item()
    if rank == 0:
        rate = args.steps * args.batch / seconds
        print(f"pytorch {torch.__version__} eager{' DDP' if world > 1 else ''}, {device}"
              f"{', bf16' if args.bf16 else ''}: {world} rank(s) x "
              f"{args.threads} thread(s), global batch {args.batch}: {rate:.1f} images/s "
              f"(loss {loss.item():.2f})")
        print(f"RESULT images_per_s={rate:.2f}")


if __name__ == "__main__":
    main()
