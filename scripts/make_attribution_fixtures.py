#!/usr/bin/env python3
"""Reference attributions for ConvLens's attribution tests, computed with PyTorch and Captum.

Writes, for each of three networks (mnist, cifar10, tiny_vgg),

    tests/fixtures/attribution/<net>.json         case metadata (targets, params, target values, array keys)
    tests/fixtures/attribution/<net>.safetensors  every array, float32 (images, attributions, noise, grids)

so that the Rust and browser tests can check ConvLens's saliency, deconvnet, guided backprop, input x gradient,
integrated gradients, SmoothGrad, Grad-CAM and occlusion without PyTorch.

Made with torch 2.15.0 (the PyPI wheel, run on the CPU) and captum 0.9.0 (numpy 2.4.6, safetensors 0.8.0,
pillow 13.0.0). To remake them, from the project root:

    python3 -m venv .venv
    .venv/bin/pip install torch==2.15.0 captum==0.9.0 safetensors numpy pillow
    .venv/bin/python scripts/make_attribution_fixtures.py --data ../shared/data

The run is deterministic: the weights are float32 (from the safetensors files) but the model and the inputs are
converted to float64 (`.double()`) so that the references are precise; results are stored as float32. The only
random draw is SmoothGrad's noise, made after `torch.manual_seed`, recorded in the fixture and checked against
Captum's own draw. Every Captum result is also recomputed here independently (plain autograd, a hand-written
guided/deconv ReLU, hand-rolled IG sums, Grad-CAM, and occlusion window by window) and the script fails loudly
if the two disagree.

Semantics (ConvLens layer indices: layer 0 is the input, every layer has one output):
  conv = Conv2d(in, out, k, stride, padding=pad) with bias, "activation": "relu" = conv then ReLU (the layer's
  output is the post-ReLU value); pool "max" = MaxPool2d(size, stride) (floor mode; PyTorch routes a tie's gradient
  to the first maximum in row-major window order, which matters for deconvnet, whose ReLU backward ignores the
  forward mask); fc = flatten in C,H,W order then Linear (weight (out, in)); softmax over the 10 logits.
  Tiny VGG's `output.weight` is stored (in, out) = (1690, 10) in the data directory, so Linear uses its transpose.

Targets: {"kind":"class","class":k} = logit k; {"kind":"prob","class":k} = softmax probability k;
{"kind":"neuron","layer":L,"index":i} = unit i (flat C,H,W) of layer L's output; {"kind":"channel","layer":L,
"channel":c} = the mean over H,W of channel c of layer L's output.

Captum details reproduced in the fixtures (captum 0.9.0):
  * IntegratedGradients multiplies gradients by the step sizes cast to float32 (`torch.tensor(step_sizes).float()`)
    and the riemann alphas come from float32 `torch.linspace(0, 1, n)`; Gauss-Legendre alphas are float64. The
    exact alphas and weights are stored with each IG case (`alphas`, `weights`).
  * NoiseTunnel draws all samples at once: `torch.normal(0, torch.tensor(stdev).repeat((n_samples, C, H, W)))`
    (float32 noise; sample i is row i, added to the input repeated with repeat_interleave) and averages the
    per-sample attributions.
  * Occlusion's windows start at 0, s, 2s, ... with ceil((H - k) / s) + 1 positions per axis; a window that runs
    past the edge is clipped (F.pad with a negative pad); each pixel's attribution is the mean, over the windows
    that cover it, of (p(x) - p(x occluded)); the window spans all channels. Its result is float32 even for
    float64 inputs.
  * LayerGradCam averages the layer gradient over H, W, weights the layer's activations with it, sums over
    channels and (relu_attributions=True) clamps at 0; LayerAttribution.interpolate is F.interpolate(mode=
    "bilinear") with align_corners=False.
"""
import argparse
import json
import math
import os
import re
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.numpy import load_file, save_file

import captum
from captum.attr import (Deconvolution, GuidedBackprop, InputXGradient, IntegratedGradients, LayerAttribution,
                         LayerGradCam, NoiseTunnel, Occlusion, Saliency)
from captum.attr._utils.approximation_methods import approximation_parameters

warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
warnings.filterwarnings("ignore", message=".*Input Tensor 0 did not already require gradients.*")

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "attribution")
SEED = 20240601
TINY_VGG_CLASSES = ["lifeboat", "ladybug", "pizza", "bell pepper", "school bus", "koala", "espresso", "red panda",
                    "orange", "sport car"]
TINY_VGG_PREFIX = ["boat", "bug", "pizza", "pepper", "bus", "koala", "espresso", "panda", "orange", "car"]


def fail(msg):
    sys.exit("make_attribution_fixtures: FAILED: " + msg)


def check_close(name, got, want, rtol, atol=0.0):
    got = torch.as_tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    if got.shape != want.shape:
        fail(f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}")
    err = (got - want).abs().max().item()
    scale = want.abs().max().item()
    if err > atol + rtol * scale:
        fail(f"{name}: max abs diff {err:.3e} (reference max |x| {scale:.3e}, rtol {rtol}, atol {atol})")
    return err


# ----------------------------------------------------------------------------------------------------------------
# Networks

class RefReLU(nn.ReLU):
    """An nn.ReLU (so Captum's GuidedBackprop/Deconvolution hook it), never in place. `RefReLU.mode` switches the
    backward pass for the independent checks: "normal", "guided" (relu(g) * [x > 0]) or "deconv" (relu(g))."""
    mode = "normal"

    def __init__(self):
        super().__init__(inplace=False)

    def forward(self, x):
        if RefReLU.mode == "normal":
            return F.relu(x)
        return _ModifiedReLU.apply(x, RefReLU.mode)


class _ModifiedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mode):
        ctx.save_for_backward(x)
        ctx.mode = mode
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.mode == "guided":
            return g.clamp(min=0) * (x > 0).to(g.dtype), None
        return g.clamp(min=0), None


class Net(nn.Module):
    """blocks[L] computes ConvLens layer L's output from layer L-1's (blocks[0] is the identity);
    out_module[L] is the module whose output is layer L's output (the ReLU for a conv with activation)."""

    def __init__(self, spec_layers, weights, fc_weight_transposed=False):
        super().__init__()
        blocks = [nn.Identity()]
        out_module = [blocks[0]]
        shapes = []
        c, h, w = None, None, None
        self.kinds = []
        for L, layer in enumerate(spec_layers):
            t = layer["type"]
            self.kinds.append(t)
            if t == "input":
                c, h, w = layer["depth"], layer["height"], layer["width"]
                shapes.append([c, h, w])
                continue
            name = layer.get("name")
            if t == "conv":
                k, s, p, n = layer["size"], layer.get("stride", 1), layer.get("pad", 0), layer["filters"]
                conv = nn.Conv2d(c, n, k, stride=s, padding=p, bias=True)
                conv.weight.data = torch.from_numpy(weights[name + ".weight"]).clone()
                conv.bias.data = torch.from_numpy(weights[name + ".bias"]).clone()
                assert tuple(conv.weight.shape) == (n, c, k, k)
                c, h, w = n, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
                if layer.get("activation") == "relu":
                    relu = RefReLU()
                    blocks.append(nn.Sequential(conv, relu))
                    out_module.append(relu)
                else:
                    assert layer.get("activation") in (None, "none", "linear"), layer
                    blocks.append(conv)
                    out_module.append(conv)
            elif t == "relu":
                relu = RefReLU()
                blocks.append(relu)
                out_module.append(relu)
            elif t == "pool":
                assert layer.get("mode", "max") == "max"
                k, s = layer["size"], layer.get("stride", layer["size"])
                pool = nn.MaxPool2d(k, s)
                blocks.append(pool)
                out_module.append(pool)
                h, w = (h - k) // s + 1, (w - k) // s + 1
            elif t == "fc":
                n = layer["units"]
                lin = nn.Linear(c * h * w, n)
                wt = weights[name + ".weight"]
                lin.weight.data = torch.from_numpy(wt.T.copy() if fc_weight_transposed else wt.copy())
                lin.bias.data = torch.from_numpy(weights[name + ".bias"]).clone()
                assert tuple(lin.weight.shape) == (n, c * h * w)
                seq = [nn.Flatten(), lin]
                if layer.get("activation") == "relu":
                    seq.append(RefReLU())
                blocks.append(nn.Sequential(*seq))
                out_module.append(seq[-1])
                c, h, w = n, 1, 1
            elif t == "softmax":
                sm = nn.Softmax(dim=1)
                blocks.append(sm)
                out_module.append(sm)
            else:
                raise ValueError(t)
            shapes.append([c, h, w] if h * w > 1 else [c])
        self.blocks = nn.ModuleList(blocks)
        self.out_module = out_module
        self.shapes = shapes
        self.softmax_layer = len(spec_layers) - 1
        self.logits_layer = self.softmax_layer - 1
        assert self.kinds[-1] == "softmax" and self.kinds[-2] == "fc"

    def run(self, x, upto):
        for L in range(1, upto + 1):
            x = self.blocks[L](x)
        return x

    def acts(self, x):
        out = [x]
        for L in range(1, len(self.blocks)):
            out.append(self.blocks[L](out[-1]))
        return out


class Head(nn.Module):
    """A forward function over the net: layer `upto`'s output as is ("id"), flattened ("flat"), or as the
    per-channel spatial means ("chanmean")."""

    def __init__(self, net, upto, mode="id"):
        super().__init__()
        self.net, self.upto, self.mode = net, upto, mode

    def forward(self, x):
        y = self.net.run(x, self.upto)
        if self.mode == "flat":
            return y.flatten(1)
        if self.mode == "chanmean":
            return y.mean(dim=(2, 3))
        return y


def head_for(net, target):
    k = target["kind"]
    if k == "class":
        return Head(net, net.logits_layer), target["class"]
    if k == "prob":
        return Head(net, net.softmax_layer), target["class"]
    if k == "neuron":
        return Head(net, target["layer"], "flat"), target["index"]
    if k == "channel":
        return Head(net, target["layer"], "chanmean"), target["channel"]
    raise ValueError(k)


def target_value(net, x, target):
    f, t = head_for(net, target)
    with torch.no_grad():
        return f(x)[0, t].item()


def grad_of(f, x, t, relu_mode="normal"):
    """d f(x)[:, t] / dx, per sample, with the ReLU backward in `relu_mode` (independent of Captum)."""
    RefReLU.mode = relu_mode
    try:
        xr = x.detach().clone().requires_grad_(True)
        out = f(xr)[:, t].sum()
        (g,) = torch.autograd.grad(out, xr)
    finally:
        RefReLU.mode = "normal"
    return g


# ----------------------------------------------------------------------------------------------------------------
# Data

def js_labels(path):
    text = open(path).read()
    return [int(v) for v in re.search(r"\[([^\]]*)\]", text).group(1).split(",") if v.strip()]


def load_mnist_images():
    sheet = np.asarray(Image.open(os.path.join(ROOT, "www", "data", "mnist5k.png")).convert("L"))
    labels = js_labels(os.path.join(ROOT, "www", "data", "mnist5k_labels.js"))
    assert sheet.shape == (5000, 784) and len(labels) == 5000
    imgs = []
    for row in (4500, 4501):
        digit = sheet[row].reshape(28, 28)[2:26, 2:26].astype(np.float64) / 255.0
        imgs.append((digit[None], labels[row], f"www/data/mnist5k.png row {row}"))
    return imgs


def load_cifar_images(data):
    sheet = np.asarray(Image.open(os.path.join(data, "cifar10", "cifar10_batch_50.png")).convert("RGB"))
    labels = js_labels(os.path.join(data, "cifar10", "cifar10_labels.js"))
    assert sheet.shape == (1000, 1024, 3)
    imgs = []
    for row in (0, 1):
        # one 32x32 RGB image per row, row-major HWC: the row's 1024 pixels are the image's 32x32 pixels
        hwc = sheet[row].reshape(32, 32, 3).astype(np.float64) / 255.0
        imgs.append((hwc.transpose(2, 0, 1).copy(), labels[50000 + row], f"cifar10/cifar10_batch_50.png row {row}"))
    return imgs


def load_jpeg(path):
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255.0
    return rgb.transpose(2, 0, 1).copy()


# ----------------------------------------------------------------------------------------------------------------
# Fixture writer

class Fixture:
    def __init__(self, name, net):
        self.name, self.net = name, net
        self.arrays = {}
        self.cases = []
        self.ids = set()

    def array(self, key, a):
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        assert key not in self.arrays, key
        if not np.all(np.isfinite(a)):
            fail(f"{self.name}: array {key} is not finite")
        self.arrays[key] = np.ascontiguousarray(a, dtype=np.float32)
        return key

    def case(self, image, method, target, params, value, arrays, delta=None, base_prob=None, suffix=""):
        n = len(self.cases)
        tag = {"class": lambda t: f"class{t['class']}", "prob": lambda t: f"prob{t['class']}",
               "neuron": lambda t: f"neuron{t['layer']}-{t['index']}",
               "channel": lambda t: f"channel{t['layer']}-{t['channel']}"}[target["kind"]](target)
        cid = f"{self.name}-{image}-{method}-{tag}{suffix}"
        assert cid not in self.ids, cid
        self.ids.add(cid)
        keys = {k: self.array(f"c{n}.{k}", v) for k, v in arrays.items()}
        entry = {"id": cid, "image": image, "method": method, "target": target, "params": params,
                 "value": value, "arrays": keys, "shape": list(self.arrays[keys["attr"]].shape),
                 "delta": delta}
        if base_prob is not None:
            entry["base_prob"] = base_prob
        self.cases.append(entry)


def compact_json(obj):
    """Pretty at the top levels, one line per image and per case."""
    def one(v):
        return json.dumps(v, separators=(", ", ": "))
    lines = ["{"]
    items = list(obj.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(v, list) and v and isinstance(v[0], dict):
            lines.append(f"  {json.dumps(k)}: [")
            for j, e in enumerate(v):
                lines.append("    " + one(e) + ("," if j < len(v) - 1 else ""))
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {json.dumps(k)}: {one(v)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def f64(v):
    return float(v)


# ----------------------------------------------------------------------------------------------------------------
# Methods (each computes Captum's result, checks it against an independent computation, records the case)

def do_saliency(fx, net, i, x, target):
    f, t = head_for(net, target)
    attr = Saliency(f).attribute(x, target=t, abs=False)
    check_close(f"saliency {target}", attr, grad_of(f, x, t), 1e-10)
    fx.case(i, "saliency", target, {}, target_value(net, x, target), {"attr": attr[0]})


def do_modified(fx, net, i, x, target, method):
    f, t = head_for(net, target)
    cls, mode = {"guided": (GuidedBackprop, "guided"), "deconvnet": (Deconvolution, "deconv")}[method]
    attr = cls(f).attribute(x, target=t)
    check_close(f"{method} {target}", attr, grad_of(f, x, t, mode), 1e-10)
    fx.case(i, method, target, {}, target_value(net, x, target), {"attr": attr[0]})


def do_input_x_gradient(fx, net, i, x, target):
    f, t = head_for(net, target)
    attr = InputXGradient(f).attribute(x, target=t)
    check_close(f"input_x_gradient {target}", attr, x * grad_of(f, x, t), 1e-10)
    fx.case(i, "input_x_gradient", target, {}, target_value(net, x, target), {"attr": attr[0]})


def do_ig(fx, net, i, x, target, baseline, steps, rule, suffix):
    f, t = head_for(net, target)
    attr, delta = IntegratedGradients(f).attribute(x, baselines=baseline, target=t, n_steps=steps, method=rule,
                                                   return_convergence_delta=True)
    step_fn, alpha_fn = approximation_parameters(rule)
    alphas = torch.tensor(alpha_fn(steps), dtype=torch.float64)
    # Captum multiplies by the step sizes cast to float32
    weights = torch.tensor(step_fn(steps)).float().double()
    base = torch.full_like(x, baseline)
    path = torch.cat([base + a * (x - base) for a in alphas.tolist()])
    g = grad_of(f, path, t)
    mine = (g * weights.view(-1, 1, 1, 1)).sum(0, keepdim=True) * (x - base)
    check_close(f"integrated_gradients {rule}", attr, mine, 1e-10)
    with torch.no_grad():
        my_delta = mine.sum().item() - (f(x)[0, t] - f(base)[0, t]).item()
    check_close("ig delta", delta.item(), my_delta, 1e-9, 1e-12)
    fx.case(i, "integrated_gradients", target, {"baseline": baseline, "steps": steps, "rule": rule},
            target_value(net, x, target), {"attr": attr[0], "alphas": alphas, "weights": weights},
            delta=f64(delta.item()), suffix=suffix)


def do_smoothgrad(fx, net, i, x, target, samples=8, stdev=0.15):
    f, t = head_for(net, target)
    seen = []

    def recording(inp):
        seen.append(inp.detach().clone())
        return f(inp)

    seed = SEED + 1000 * len(fx.cases) + i
    # The draw NoiseTunnel makes (captum 0.9.0 noise_tunnel.py, _add_noise_to_input) for one input of batch 1:
    torch.manual_seed(seed)
    noise = torch.normal(0, torch.tensor(stdev).repeat((samples,) + tuple(x.shape[1:])))
    torch.manual_seed(seed)
    attr = NoiseTunnel(Saliency(recording)).attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=stdev,
                                                      target=t, abs=False)
    if len(seen) != 1 or seen[0].shape != (samples,) + tuple(x.shape[1:]):
        fail(f"smoothgrad: NoiseTunnel called the forward {len(seen)} times / with shape "
             f"{[tuple(s.shape) for s in seen]}; expected one batch of {samples}")
    if not torch.equal(seen[0], x.repeat_interleave(samples, 0) + noise):
        fail("smoothgrad: the noise Captum added is not the noise reproduced with the seed")
    mine = grad_of(f, x.repeat_interleave(samples, 0) + noise.double(), t).mean(0, keepdim=True)
    check_close("smoothgrad mean of saliencies", attr, mine, 1e-6)
    fx.case(i, "smoothgrad", target, {"stdev": stdev, "samples": samples, "seed": seed}, target_value(net, x, target),
            {"attr": attr[0], "noise": noise})


def do_grad_cam(fx, net, i, x, target, layer, relu=True):
    f, t = head_for(net, target)
    module = net.out_module[layer]
    cam = LayerGradCam(f, module).attribute(x, target=t, relu_attributions=relu)
    H, W = x.shape[2:]
    up = LayerAttribution.interpolate(cam, (H, W), "bilinear")
    # independent: gradient of the target w.r.t. layer L's output
    acts = net.run(x, layer).detach().requires_grad_(True)
    y = acts
    for L in range(layer + 1, f.upto + 1):
        y = net.blocks[L](y)
    (g,) = torch.autograd.grad(y[0, t], acts)
    mine = (g.mean(dim=(2, 3), keepdim=True) * acts).sum(1, keepdim=True)
    if relu:
        mine = mine.clamp(min=0)
    check_close(f"grad_cam layer {layer}", cam, mine, 1e-10)
    check_close("grad_cam upsampled", up, F.interpolate(mine, size=(H, W), mode="bilinear", align_corners=False),
                1e-10)
    fx.case(i, "grad_cam", target, {"layer": layer, "relu": relu}, target_value(net, x, target),
            {"attr": cam[0, 0], "upsampled": up[0, 0]}, suffix=f"-L{layer}" + ("" if relu else "-norelu"))


def do_occlusion(fx, net, i, x, target, k, s, fill, mean=None):
    """fill: a number, or "mean" (the per-channel mean of the image, `mean`)."""
    f, t = head_for(net, target)
    C, H, W = x.shape[1:]
    if fill == "mean":
        base = torch.tensor(mean, dtype=x.dtype).view(1, C, 1, 1).expand(1, C, H, W)
        params = {"k": k, "stride": s, "fill": "mean", "mean": mean}
    else:
        base = fill
        params = {"k": k, "stride": s, "fill": fill}
    attr = Occlusion(f).attribute(x, sliding_window_shapes=(C, k, k), strides=(C, s, s), baselines=base, target=t)
    # by hand: positions 0, s, 2s, ... (ceil((H - k) / s) + 1 of them); a window past the edge is clipped
    ny, nx = math.ceil((H - k) / s) + 1, math.ceil((W - k) / s) + 1
    with torch.no_grad():
        p0 = f(x)[0, t].item()
        fillimg = base if isinstance(base, torch.Tensor) else torch.full_like(x, base)
        occluded = []
        for yi in range(ny):
            for xi in range(nx):
                xo = x.clone()
                y0, x0 = yi * s, xi * s
                xo[:, :, y0:y0 + k, x0:x0 + k] = fillimg[:, :, y0:y0 + k, x0:x0 + k]
                occluded.append(xo)
        grid = f(torch.cat(occluded))[:, t].view(ny, nx)
    total = torch.zeros(H, W, dtype=torch.float64)
    count = torch.zeros(H, W, dtype=torch.float64)
    for yi in range(ny):
        for xi in range(nx):
            total[yi * s:yi * s + k, xi * s:xi * s + k] += p0 - grid[yi, xi].item()
            count[yi * s:yi * s + k, xi * s:xi * s + k] += 1
    if (count == 0).any():
        fail("occlusion: a pixel no window covers")
    mine = (total / count).expand(C, H, W)
    # Captum divides in float32, so compare at float32 precision
    check_close(f"occlusion k{k} s{s}", attr[0], mine, 1e-5, 1e-7)
    suffix = f"-k{k}s{s}-" + ("mean" if fill == "mean" else f"fill{fill:g}")
    fx.case(i, "occlusion", target, params, p0, {"attr": mine, "grid": grid}, base_prob=p0, suffix=suffix)


# ----------------------------------------------------------------------------------------------------------------

def margins(net, x):
    """How far the image is from a float32/float64 disagreement: the smallest |pre-activation| at a ReLU, and the
    smallest nonzero gap between a pool window's maximum and its runner-up (windows with a positive maximum).
    Exact ties are counted apart (`pool_ties`: positive maximum reached twice, e.g. a flat bias-only region;
    `pool_zero_windows`: all-zero windows); PyTorch sends the gradient to the first maximum in row-major window
    order, which ConvLens must match (deconvnet passes gradient through the all-zero windows too)."""
    acts = net.acts(x)
    relu_min, pool_min, ties, zeros = math.inf, math.inf, 0, 0
    for L in range(1, len(acts)):
        mod = net.out_module[L]
        if isinstance(mod, RefReLU):
            pre = acts[L - 1] if net.kinds[L] == "relu" else net.blocks[L][0](acts[L - 1])
            relu_min = min(relu_min, pre.abs().min().item())
        if isinstance(mod, nn.MaxPool2d):
            k, s = mod.kernel_size, mod.stride
            win = acts[L - 1].unfold(2, k, s).unfold(3, k, s).flatten(-2)
            top = win.topk(2, dim=-1).values
            gap = top[..., 0] - top[..., 1]
            pos = top[..., 0] > 0
            ties += int((pos & (gap == 0)).sum())
            zeros += int((~pos).sum())
            if (pos & (gap > 0)).any():
                pool_min = min(pool_min, gap[pos & (gap > 0)].min().item())
    return {"relu_min_abs_preact": relu_min, "pool_min_gap": pool_min, "pool_ties": ties,
            "pool_zero_windows": zeros}


def choose_targets(net, x, first_conv, later_layer, middle_layer):
    acts = net.acts(x)
    n1 = int(acts[first_conv].flatten().argmax())
    n2 = int(acts[later_layer].flatten().argmax())
    ch = int(acts[middle_layer].mean(dim=(2, 3))[0].argmax())
    assert acts[first_conv].flatten()[n1] > 0 and acts[later_layer].flatten()[n2] > 0
    assert acts[middle_layer].mean(dim=(2, 3))[0, ch] > 0
    return ({"kind": "neuron", "layer": first_conv, "index": n1},
            {"kind": "neuron", "layer": later_layer, "index": n2},
            {"kind": "channel", "layer": middle_layer, "channel": ch})


def run_net(name, net, images, meta, cfg, full):
    fx = Fixture(name, net)
    img_meta = []
    for i, (img, label, source) in enumerate(images):
        # the float32 pixels stored in the fixture are exactly the input every reference is computed from
        x = torch.from_numpy(img.astype(np.float32)).double().unsqueeze(0)
        with torch.no_grad():
            probs = Head(net, net.softmax_layer)(x)[0]
        order = probs.argsort(descending=True).tolist()
        other = order[1] if order[0] == label else order[0]
        fx.array(f"image{i}", x[0])
        img_meta.append({"key": f"image{i}", "source": source, "label": label, "shape": list(x.shape[1:]),
                         "pred": order[0], "other": other, "probs": [f64(p) for p in probs],
                         "margins": margins(net, x)})
        print(f"{name} image{i}: label {label}, pred {order[0]} (p={probs[order[0]]:.4f}), other {other}")
        cl = {"kind": "class", "class": label}
        co = {"kind": "class", "class": other}
        pl = {"kind": "prob", "class": label}
        n1, n2, ch = choose_targets(net, x, *cfg["neuron_layers"])

        for tgt in ([cl, co, pl, n1, n2, ch] if full else [cl, pl]):
            do_saliency(fx, net, i, x, tgt)
        for method in ("deconvnet", "guided"):
            for tgt in ([cl, n1, n2, ch] if full else [cl]):
                do_modified(fx, net, i, x, tgt, method)
        for tgt in [cl, pl]:
            do_input_x_gradient(fx, net, i, x, tgt)
        do_ig(fx, net, i, x, cl, 0.0, 50, "gausslegendre", "-a")
        if full:
            do_ig(fx, net, i, x, cl, 0.5, 20, "riemann_trapezoid", "-b")
        do_smoothgrad(fx, net, i, x, cl)
        for L in cfg["cam_layers"]:
            do_grad_cam(fx, net, i, x, cl, L)
        do_grad_cam(fx, net, i, x, cl, cfg["cam_layers"][-1], relu=False)
        for k, s, fill, which in cfg["occlusion"]:
            tgt = {"kind": "prob", "class": label if which == "label" else other}
            if fill == "mean":
                mean = [f64(v) for v in x[0].mean(dim=(1, 2))]
                do_occlusion(fx, net, i, x, tgt, k, s, "mean", mean)
            else:
                do_occlusion(fx, net, i, x, tgt, k, s, fill)

    doc = {"generated_by": "scripts/make_attribution_fixtures.py", "torch": torch.__version__,
           "captum": captum.__version__, "net": name}
    doc.update(meta)
    doc["layer_shapes"] = net.shapes
    doc["images"] = img_meta
    doc["cases"] = fx.cases
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as fh:
        fh.write(compact_json(doc))
    save_file(fx.arrays, os.path.join(OUT, f"{name}.safetensors"),
              # one metadata key: safetensors writes a map's keys in hash order, so several would make the
              # file's bytes differ from run to run
              metadata={"generated_by": f"scripts/make_attribution_fixtures.py (torch {torch.__version__}, "
                                        f"captum {captum.__version__})"})
    size = os.path.getsize(os.path.join(OUT, f"{name}.safetensors"))
    print(f"{name}: {len(fx.cases)} cases, {len(fx.arrays)} arrays, {size} bytes")
    return fx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"),
                    help="the reference data directory (default ../shared/data)")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    # MNIST
    spec = json.load(open(os.path.join(ROOT, "www", "nets", "mnist.json")))
    net = Net(spec["layers"], load_file(os.path.join(ROOT, "www", "nets", "mnist.safetensors"))).double().eval()
    run_net("mnist", net, load_mnist_images(),
            {"spec": "www/nets/mnist.json", "weights": "www/nets/mnist.safetensors"},
            {"neuron_layers": (1, 3, 3), "cam_layers": [1, 3],
             "occlusion": [(6, 2, 0.0, "label"), (4, 3, 1.0, "other")]}, full=True)

    # CIFAR-10
    spec = json.load(open(os.path.join(ROOT, "www", "nets", "cifar10.json")))
    net = Net(spec["layers"], load_file(os.path.join(ROOT, "www", "nets", "cifar10.safetensors"))).double().eval()
    run_net("cifar10", net, load_cifar_images(data),
            {"spec": "www/nets/cifar10.json", "weights": "www/nets/cifar10.safetensors"},
            {"neuron_layers": (1, 5, 3), "cam_layers": [1, 3, 5],
             "occlusion": [(8, 4, 0.5, "label"), (8, 4, "mean", "other")]}, full=True)

    # Tiny VGG (CNN Explainer)
    layers = [{"type": "input", "width": 64, "height": 64, "depth": 3}]
    for block in (1, 2):
        for j in (1, 2):
            layers.append({"type": "conv", "name": f"conv_{block}_{j}", "size": 3, "filters": 10, "stride": 1,
                           "pad": 0})
            layers.append({"type": "relu", "name": f"relu_{block}_{j}"})
        layers.append({"type": "pool", "name": f"max_pool_{block}", "size": 2, "stride": 2, "mode": "max"})
    layers += [{"type": "fc", "name": "output", "units": 10}, {"type": "softmax", "name": "softmax"}]
    tv = os.path.join(data, "tiny-vgg")
    net = Net(layers, load_file(os.path.join(tv, "tiny_vgg.safetensors")), fc_weight_transposed=True)
    net = net.double().eval()
    assert net.shapes[10] == [10, 13, 13], net.shapes
    classes = [l.strip() for l in open(os.path.join(tv, "classes.txt")) if l.strip()]
    assert classes == TINY_VGG_CLASSES, classes
    right, total = 0, 0
    for fname in sorted(os.listdir(os.path.join(tv, "img"))):
        prefix = fname.split("_")[0]
        if prefix not in TINY_VGG_PREFIX:
            continue
        x = torch.from_numpy(load_jpeg(os.path.join(tv, "img", fname))).double().unsqueeze(0)
        with torch.no_grad():
            pred = int(Head(net, net.logits_layer)(x).argmax())
        total += 1
        right += pred == TINY_VGG_PREFIX.index(prefix)
    print(f"tiny_vgg: {right}/{total} example images classified as their file-name class")
    if (right, total) != (14, 20):
        fail(f"tiny_vgg classifies {right}/{total} example images correctly, the data README says 14/20")
    img = load_jpeg(os.path.join(tv, "img", "koala_1.jpeg"))
    run_net("tiny_vgg", net, [(img, TINY_VGG_CLASSES.index("koala"), "tiny-vgg/img/koala_1.jpeg (PIL RGB)")],
            {"spec": None, "layers": layers, "weights": "tiny-vgg/tiny_vgg.safetensors", "data_relative": True,
             "weights_note": "output.weight is stored (in, out) = (1690, 10); Linear uses its transpose"},
            {"neuron_layers": (2, 9, 7), "cam_layers": [2, 4, 7, 9], "occlusion": [(8, 2, 0.5, "label")]},
            full=False)


if __name__ == "__main__":
    main()
