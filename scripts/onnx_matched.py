#!/usr/bin/env python3
"""The strict check of an imported ONNX model's input gradients: PyTorch's float64 gradient taken
with ConvLens's own decisions (tests/e2e/onnx.test.mjs runs it).

    python scripts/onnx_matched.py --model resnet18 --probe DIR --image IMAGE.npy --top K \
        --grad GRAD.npy --guided GUIDED.npy

A ReLU-like gate whose input is within rounding of its threshold, or a max pool whose two largest
values are, sends a float32 engine's gradient one way and the float64 reference the other; on a
224-pixel ReLU net some always are, so the plain comparison (scripts/make_onnx_fixtures.py's
`instability`) cannot be tight. Here the reference takes the same path as ConvLens: the model
(scripts/make_onnx_fixtures.py's, seeded) runs in float64 with every ReLU, ReLU6 and max pool, in
the order they run, replaced by ConvLens's decision for it (from `convlens probe --activations-only`
on the same image: a unit is active where ConvLens's output of that layer is inside the gate's
range; a pool takes the position of the maximum of ConvLens's own input to it); everything else is
PyTorch's own float64 arithmetic. Then the gradient and the guided gradient of logit K must equal
ConvLens's (the CLI's `attribute` output) within 1e-4 of the largest value; the script also reports
how many of ConvLens's decisions PyTorch's own float64 forward pass would take differently.
Prints one JSON line: {"grad": err, "guided": err, "flips": n, "units": total}.
"""

import argparse
import glob
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_onnx_fixtures as fx  # noqa: E402



class Gate(torch.autograd.Function):
    """ConvLens's decision at a gate: `mask` (1 where active), `fixed` (the output where inactive:
    0, or 6 above a ReLU6); backward passes the gradient where active (guided: and positive)."""

    guided = False

    @staticmethod
    def forward(ctx, z, mask, fixed):
        ctx.save_for_backward(mask)
        return torch.where(mask, z, fixed)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        g = g * mask
        return (g.clamp(min=0) if Gate.guided else g), None, None


def main():
    ap = argparse.ArgumentParser()
    for a in ("--model", "--probe", "--image", "--grad", "--guided"):
        ap.add_argument(a, required=True)
    ap.add_argument("--top", type=int, required=True)
    args = ap.parse_args()

    probe = json.load(open(os.path.join(args.probe, "probe.json")))
    layers = probe["spec"]["layers"]
    acts = {}
    for f in glob.glob(os.path.join(args.probe, "*_act.npy")):
        i = int(os.path.basename(f).split("_", 1)[0])
        acts[i] = np.load(f)
    index = {l["name"]: i for i, l in enumerate(layers)}

    def source(i):
        ins = layers[i].get("inputs")
        return index[ins[0]] if ins else i - 1

    # ConvLens's decisions, in layer order: ("gate", lo, hi, out) or ("pool", indices).
    decisions = []
    for i, l in enumerate(layers):
        t = l["type"]
        if t in ("relu", "relu6", "clip") or (t in ("conv", "fc") and l.get("activation") in ("relu", "relu6")):
            kind = l.get("activation", t)
            lo, hi = (l.get("min", 0.0), l.get("max", math.inf)) if kind == "clip" else (0.0, 6.0 if kind == "relu6" else math.inf)
            decisions.append(("gate", lo, hi, torch.from_numpy(acts[i].astype(np.float64))))
        elif t == "pool" and l.get("mode", "max") == "max":
            x = torch.from_numpy(acts[source(i)].astype(np.float32)).reshape(1, *probe["layers"][source(i)]["shape"])
            _, idx = F.max_pool2d(x, l["size"], l.get("stride", l["size"]), l.get("pad", 0), ceil_mode=l.get("ceil", False), return_indices=True)
            decisions.append(("pool", idx))
    queue = list(decisions)
    stats = {"flips": 0, "units": 0}

    def gate(z, lo, hi):
        kind, dlo, dhi, out = queue.pop(0)
        assert kind == "gate" and (dlo, dhi) == (lo, hi), f"a gate ({lo}, {hi}) where ConvLens has {kind} ({dlo}, {dhi})"
        out = out.reshape(z.shape)
        mask = (out > lo) & (out < hi)
        fixed = torch.where(out >= hi, torch.full_like(z, hi if math.isfinite(hi) else 0.0), torch.full_like(z, lo))
        stats["flips"] += int(((z > lo) & (z < hi) != mask).sum())
        stats["units"] += z.numel()
        return Gate.apply(z, mask, fixed)

    # The model as the fixtures made it (its batchnorm calibration runs PyTorch's own gates), then
    # ConvLens's decisions in place of PyTorch's.
    m, _ = fx.make_model(args.model)  # seeded in float32, as the fixtures were
    m = fx.Normalized(m).double().eval()
    torch.set_default_dtype(torch.float64)
    saved = (F.relu, F.relu6, F.hardtanh, torch.relu, F.max_pool2d, nn.ReLU.forward, nn.MaxPool2d.forward)
    original_pool = F.max_pool2d

    def pool_wrapper(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        kind, idx = queue.pop(0)
        assert kind == "pool", f"a max pool where ConvLens has a {kind}"
        ours = original_pool(x.detach(), kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)[1]
        stats["flips"] += int((ours != idx).sum())
        stats["units"] += idx.numel()
        return x.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)

    F.relu = torch.relu = lambda x, inplace=False: gate(x, 0.0, math.inf)
    F.relu6 = lambda x, inplace=False: gate(x, 0.0, 6.0)
    F.hardtanh = lambda x, min_val=-1.0, max_val=1.0, inplace=False: gate(x, min_val, max_val)
    F.max_pool2d = pool_wrapper
    nn.ReLU.forward = lambda self, x: gate(x, 0.0, math.inf)
    nn.ReLU6.forward = lambda self, x: gate(x, 0.0, 6.0)
    nn.MaxPool2d.forward = lambda self, x: pool_wrapper(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    image = torch.from_numpy(np.load(args.image).astype(np.float64))[None]
    out = {}
    for key, path, guided in (("grad", args.grad, False), ("guided", args.guided, True)):
        queue[:] = list(decisions)
        stats.update(flips=0, units=0)
        Gate.guided = guided
        x = image.clone().requires_grad_(True)
        fx.logits_of(m, x)[0, args.top].backward()
        assert not queue, f"{len(queue)} of ConvLens's gates and pools were not reached"
        want = x.grad[0].numpy()
        got = np.load(path).astype(np.float64).reshape(want.shape)
        out[key] = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
    (F.relu, F.relu6, F.hardtanh, torch.relu, F.max_pool2d, nn.ReLU.forward, nn.MaxPool2d.forward) = saved
    out.update(stats)
    print(json.dumps(out))


main()
