#!/usr/bin/python3
"""The peer for Progressive GAN: the same networks and training step in PyTorch eager.

Mirrors models/pgan: equalized-learning-rate convolutions and dense layers (N(0, 1) weights times
gain / sqrt(fan_in) at run time), pixelwise feature normalisation, leaky ReLU 0.2, nearest 2x
upsampling and 2x2 average pooling (by default inside the 3x3 convolutions next to them, as the
official code's fused_scale and gentrain's model.fused_scale: --resample), the minibatch
standard deviation layer (consecutive groups), fade-in of the newest level in both networks and of the real images; per step a WGAN-GP critic
step (lambda 10, drift 0.001) and a generator step with the critic's weights frozen, Adam
(1e-3, betas (0, 0.99)) over the parameters the level uses, and the generator's moving average
(0.999). Feature maps nf(s) = min(fmap_base >> s, fmap_max).

Images are random values in [-1, 1] of the data's shape (what a step computes does not depend on
them); gentrain's side reads the real coloured Fashion-MNIST. Prints training images/s after a
warm-up, at one resolution (stable, or --fading at alpha 0.5):

  python3 launch/bench/pgan_pytorch.py --resolution 32 --batch 32 --threads 1 --steps 10
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_timing import set_threads, time_steps


class EqConv(nn.Module):
    def __init__(self, inp, out, k, gain=math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, inp, k, k))
        self.bias = nn.Parameter(torch.zeros(out))
        self.scale = gain / math.sqrt(inp * k * k)
        self.pad = k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)

    def summed_shifts(self):  # [..., 3, 3] -> [..., 4, 4]: s[k] = w[k - 1] + w[k], both axes
        w = F.pad(self.weight * self.scale, [1, 1, 1, 1])
        w = w[:, :, 1:] + w[:, :, :-1]
        return w[:, :, :, 1:] + w[:, :, :, :-1]

    def up_conv(self, x):  # self(up(x)), the official code's upscale2d_conv2d
        w = self.summed_shifts().flip([2, 3]).transpose(0, 1)
        return F.conv_transpose2d(x, w, self.bias, stride=2, padding=1)

    def conv_down(self, x):  # down(self(x)), the official code's conv2d_downscale2d
        return F.conv2d(x, self.summed_shifts() * 0.25, self.bias, stride=2, padding=1)


class EqLinear(nn.Module):
    def __init__(self, inp, out, gain=math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, inp))
        self.bias = nn.Parameter(torch.zeros(out))
        self.scale = gain / math.sqrt(inp)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x):
    return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def up(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def down(x):
    return F.avg_pool2d(x, 2)


def mbstd(x, group=4):
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.reshape(n // g, g, c, h, w)
    y = torch.sqrt((y - y.mean(1, keepdim=True)).pow(2).mean(1) + 1e-8).mean([1, 2, 3])
    return torch.cat([x, y.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, h, w)], 1)


class Generator(nn.Module):
    def __init__(self, nf, latent, channels, max_level, resample="fused"):
        super().__init__()
        self.nf = nf
        self.resample = resample
        self.dense = EqLinear(latent, nf(1) * 16, math.sqrt(2) / 4)
        self.convs = nn.ModuleList([EqConv(nf(1), nf(1), 3)])
        self.to_rgb = nn.ModuleList([EqConv(nf(1), channels, 1, 1.0)])
        for r in range(3, max_level + 1):
            self.convs.append(EqConv(nf(r - 2), nf(r - 1), 3))
            self.convs.append(EqConv(nf(r - 1), nf(r - 1), 3))
            self.to_rgb.append(EqConv(nf(r - 1), channels, 1, 1.0))

    def forward(self, z, level, alpha):
        x = self.dense(pixel_norm(z)).view(z.shape[0], self.nf(1), 4, 4)
        x = pixel_norm(lrelu(x))
        x = pixel_norm(lrelu(self.convs[0](x)))
        prev = x
        for r in range(3, level + 1):
            prev = x
            conv = self.convs[2 * r - 5]
            x = conv.up_conv(x) if self.resample == "fused" else conv(up(x))
            x = pixel_norm(lrelu(x))
            x = pixel_norm(lrelu(self.convs[2 * r - 4](x)))
        img = self.to_rgb[level - 2](x)
        if level == 2 or alpha >= 1:
            return img
        before = up(self.to_rgb[level - 3](prev))
        return before + alpha * (img - before)

    def active(self, level, fading):
        ps = list(self.dense.parameters())
        for k in range((1 if level == 2 else 2 * level - 3)):
            ps += list(self.convs[k].parameters())
        ps += list(self.to_rgb[level - 2].parameters())
        if fading and level > 2:
            ps += list(self.to_rgb[level - 3].parameters())
        return ps


class Discriminator(nn.Module):
    def __init__(self, nf, channels, max_level, group=4, resample="fused"):
        super().__init__()
        self.group = group
        self.resample = resample
        self.from_rgb = nn.ModuleList([EqConv(channels, nf(1), 1)])
        self.convs = nn.ModuleList([EqConv(nf(1) + 1, nf(1), 3)])
        for r in range(3, max_level + 1):
            self.from_rgb.append(EqConv(channels, nf(r - 1), 1))
            self.convs.append(EqConv(nf(r - 1), nf(r - 1), 3))
            self.convs.append(EqConv(nf(r - 1), nf(r - 2), 3))
        self.dense = EqLinear(nf(1) * 16, nf(0))
        self.out = EqLinear(nf(0), 1, 1.0)

    def forward(self, img, level, alpha):
        x = lrelu(self.from_rgb[level - 2](img))
        for r in range(level, 2, -1):
            x = lrelu(self.convs[2 * r - 5](x))
            conv = self.convs[2 * r - 4]
            if self.resample == "fused":
                x = lrelu(conv.conv_down(x))
            elif self.resample == "split":
                x = lrelu(down(conv(x)))
            else:
                x = down(lrelu(conv(x)))
            if r == level and alpha < 1:
                before = lrelu(self.from_rgb[level - 3](down(img)))
                x = before + alpha * (x - before)
        x = lrelu(self.convs[0](mbstd(x, self.group)))
        x = lrelu(self.dense(x.flatten(1)))
        return self.out(x).squeeze(1)

    def active(self, level, fading):
        ps = list(self.from_rgb[level - 2].parameters())
        if fading and level > 2:
            ps += list(self.from_rgb[level - 3].parameters())
        for k in range((1 if level == 2 else 2 * level - 3)):
            ps += list(self.convs[k].parameters())
        return ps + list(self.dense.parameters()) + list(self.out.parameters())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=32, help="the level trained (4, 8, 16, 32)")
    ap.add_argument("--max-resolution", type=int, default=32, help="the networks' final resolution")
    ap.add_argument("--fading", action="store_true", help="fade the level in (alpha 0.5)")
    ap.add_argument("--fmap-base", type=int, default=512)
    ap.add_argument("--fmap-max", type=int, default=128)
    ap.add_argument("--latent", type=int, default=128)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels-last", action="store_true",
                    help="channels-last memory format for the networks and their inputs")
    ap.add_argument("--resample", choices=["fused", "split", "separate"], default="fused",
                    help="fused: resampling inside the 3x3 convolutions next to it, as the official "
                    "code and gentrain's model.fused_scale=true; split: the same function with "
                    "separate upsampling and pooling layers; separate: the model of "
                    "model.fused_scale=false (the critic activates before it pools)")
    args = ap.parse_args()
    set_threads(args.threads)
    torch.manual_seed(2018)
    device = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    level, max_level = int(math.log2(args.resolution)), int(math.log2(args.max_resolution))
    nf = lambda s: min(args.fmap_base >> s, args.fmap_max)
    g = Generator(nf, args.latent, args.channels, max_level, args.resample).to(
        device, memory_format=fmt)
    d = Discriminator(nf, args.channels, max_level, resample=args.resample).to(
        device, memory_format=fmt)
    g_ema = Generator(nf, args.latent, args.channels, max_level, args.resample).to(
        device, memory_format=fmt)
    g_ema.load_state_dict(g.state_dict())
    g_ema.requires_grad_(False)
    alpha = 0.5 if args.fading else 1.0
    g_opt = torch.optim.Adam(g.active(level, args.fading), lr=1e-3, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(d.active(level, args.fading), lr=1e-3, betas=(0.0, 0.99))
    b, side = args.batch, args.max_resolution
    pool = (torch.rand(64 * b, args.channels, side, side, device=device) * 2 - 1).contiguous(
        memory_format=fmt)

    def reals(k):
        x = pool[(k * b) % (len(pool) - b):][:b]
        for _ in range(max_level - level):
            x = down(x)
        if alpha < 1:
            before = up(down(x))
            x = before + alpha * (x - before)
        return x

    def step(k):
        x = reals(k)
        d_opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = g(torch.randn(b, args.latent, device=device), level, alpha)
        real_scores, fake_scores = d(x, level, alpha), d(fake, level, alpha)
        mix = torch.rand(b, 1, 1, 1, device=device)
        mixed = (x + mix * (fake - x)).requires_grad_(True)
        grad, = torch.autograd.grad(d(mixed, level, alpha).sum(), mixed, create_graph=True)
        gp = (grad.flatten(1).norm(2, 1) - 1).pow(2)
        d_loss = (fake_scores - real_scores + 10 * gp + 0.001 * real_scores.pow(2)).mean()
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad(set_to_none=True)
        d.requires_grad_(False)
        g_loss = -d(g(torch.randn(b, args.latent, device=device), level, alpha), level, alpha).mean()
        g_loss.backward()
        d.requires_grad_(True)
        g_opt.step()
        with torch.no_grad():
            for pe, p in zip(g_ema.parameters(), g.parameters()):
                pe.mul_(0.999).add_(p, alpha=0.001)
        return d_loss.detach()

    seconds, loss = time_steps(step, args.warmup, args.steps, device)
    rate = args.steps * b / seconds
    what = f"{args.resolution}x{args.resolution}" + (" fading" if args.fading else "")
    print(f"pytorch pgan {what}: batch {b}, {args.threads} thread(s), {args.steps} steps"
          f"{', channels-last' if args.channels_last else ''}, {args.resample} resampling: "
          f"{rate:.1f} images/s, {1000 * seconds / args.steps:.1f} ms/step, last d_loss {float(loss):.3f}")
    print(f"RESULT images_per_s={rate:.2f}")


if __name__ == "__main__":
    main()
