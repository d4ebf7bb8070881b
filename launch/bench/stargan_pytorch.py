#!/usr/bin/python3
"""The peer for StarGAN: the same networks and training iteration in PyTorch eager.

Mirrors models/stargan (and the official model.py / solver.py): the generator with tiled target
labels, conv 7x7, two stride-2 downsamplings, residual blocks, two transposed convolutions, conv
7x7 and tanh, affine instance norm; the PatchGAN critic with leaky ReLU 0.01 and its
real/fake and domain heads. Per iteration a critic step (WGAN-GP, lambda_gp 10, softmax domain
loss, lambda_cls 1), and every n_critic-th iteration a generator step (adversarial, domain, and
cycle L1 with lambda_rec 10) with the critic frozen; Adam 1e-4 (0.5, 0.999). Targets permute the
batch's labels.

Images are random values in [-1, 1] with random one-hot domains (what an iteration computes does
not depend on them); gentrain's side reads the real coloured Fashion-MNIST. Prints training
images/s (images per iteration) after a warm-up:

  python3 launch/bench/stargan_pytorch.py --batch 16 --threads 1 --steps 20
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_timing import set_threads, time_steps


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.InstanceNorm2d(c, affine=True), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.InstanceNorm2d(c, affine=True))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, channels, domains, conv_dim, blocks):
        super().__init__()
        layers = [nn.Conv2d(channels + domains, conv_dim, 7, 1, 3, bias=False),
                  nn.InstanceNorm2d(conv_dim, affine=True), nn.ReLU()]
        c = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.InstanceNorm2d(2 * c, affine=True), nn.ReLU()]
            c *= 2
        layers += [Residual(c) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                       nn.InstanceNorm2d(c // 2, affine=True), nn.ReLU()]
            c //= 2
        layers += [nn.Conv2d(c, channels, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x, c):
        c = c.view(c.size(0), c.size(1), 1, 1).expand(-1, -1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c], 1))


class Discriminator(nn.Module):
    def __init__(self, channels, size, domains, conv_dim, layers):
        super().__init__()
        mods, c = [], channels
        for k in range(layers):
            out = conv_dim if k == 0 else 2 * c
            mods += [nn.Conv2d(c, out, 4, 2, 1), nn.LeakyReLU(0.01)]
            c = out
        self.main = nn.Sequential(*mods)
        self.source = nn.Conv2d(c, 1, 3, 1, 1, bias=False)
        self.classes = nn.Conv2d(c, domains, size >> layers, bias=False)

    def forward(self, x):
        h = self.main(x)
        return self.source(h), self.classes(h).view(h.size(0), -1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--domains", type=int, default=5)
    ap.add_argument("--g-conv-dim", type=int, default=32)
    ap.add_argument("--g-blocks", type=int, default=6)
    ap.add_argument("--d-conv-dim", type=int, default=32)
    ap.add_argument("--d-layers", type=int, default=4)
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels-last", action="store_true",
                    help="channels-last memory format for the networks and their inputs")
    args = ap.parse_args()
    set_threads(args.threads)
    torch.manual_seed(2018)
    dev = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    g = Generator(3, args.domains, args.g_conv_dim, args.g_blocks).to(dev, memory_format=fmt)
    d = Discriminator(3, args.size, args.domains, args.d_conv_dim, args.d_layers).to(
        dev, memory_format=fmt)
    g_opt = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.999))
    b = args.batch
    pool = (torch.rand(64 * b, 3, args.size, args.size, device=dev) * 2 - 1).contiguous(
        memory_format=fmt)
    pool_labels = F.one_hot(torch.randint(args.domains, (64 * b,)), args.domains).float().to(dev)

    def step(k):
        start = (k * b) % (len(pool) - b)
        x, c_org = pool[start:start + b], pool_labels[start:start + b]
        c_trg = c_org[torch.randperm(b, device=dev)]
        d_opt.zero_grad(set_to_none=True)
        src, cls = d(x)
        d_real, d_cls = -src.mean(), F.cross_entropy(cls, c_org.argmax(1))
        with torch.no_grad():
            fake = g(x, c_trg)
        d_fake = d(fake)[0].mean()
        alpha = torch.rand(b, 1, 1, 1, device=dev)
        x_hat = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(d(x_hat)[0].sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).norm(2, 1) - 1) ** 2).mean()
        d_loss = d_real + d_fake + d_cls + 10 * gp
        d_loss.backward()
        d_opt.step()
        if (k + 1) % args.n_critic == 0:
            g_opt.zero_grad(set_to_none=True)
            d.requires_grad_(False)
            fake = g(x, c_trg)
            src, cls = d(fake)
            rec = g(fake, c_org)
            g_loss = -src.mean() + 10 * (x - rec).abs().mean() + F.cross_entropy(cls, c_trg.argmax(1))
            g_loss.backward()
            d.requires_grad_(True)
            g_opt.step()
        return d_loss.detach()

    seconds, loss = time_steps(step, args.warmup, args.steps, dev)
    rate = args.steps * b / seconds
    print(f"pytorch stargan: batch {b}, {args.threads} thread(s), {args.steps} iterations"
          f"{', channels-last' if args.channels_last else ''}: "
          f"{rate:.1f} images/s, {1000 * seconds / args.steps:.1f} ms/iteration, last d_loss {float(loss):.3f}")
    print(f"RESULT images_per_s={rate:.2f}")


if __name__ == "__main__":
    main()
