#!/usr/bin/env python3
"""ONNX models and PyTorch references for ConvLens's ONNX import tests.

Six networks, each with seeded random weights (no downloaded pretrained weights): torchvision's ResNet-18,
MobileNetV2, SqueezeNet 1.1, VGG-11 with batchnorm and AlexNet at 3x224x224, and `custom`, a small net at 3x32x32
that uses every ONNX op ConvLens imports. Each is exported the way a student exports today (torch.onnx.export,
the default dynamo exporter, which folds batchnorm into the convolutions and writes global pooling as ReduceMean);
`custom` is also exported by the TorchScript exporter (`custom_ts`: BatchNormalization, Flatten, GlobalAveragePool,
Identity and Dropout nodes kept).

Writes

    <out>/<model>.onnx                              the exported models (not committed: up to 530 MB; CI remakes
                                                    them with this script, `--onnx-only`)
    <out>/unsupported.onnx                          a conv and a GELU: an op ConvLens does not import
    tests/fixtures/onnx/references.json             per model: input size, normalization, top classes, file names
    tests/fixtures/onnx/images_<size>.safetensors   float32: `images` (2, 3, size, size) in [0, 1] (a photo and
                                                    seeded noise), shared by the models of that input size
    tests/fixtures/onnx/<model>.safetensors         float32: `logits` (2, K) and, for the first image, `grad` and
                                                    `guided` (3, H, W)

The models take torchvision's normalized input; ConvLens imports them with that normalization (mean, std per
channel, stored in each ONNX file's metadata as `convlens.mean` / `convlens.std`), so the references are taken
with respect to the [0, 1] image: logits = model((x - mean) / std), `grad` = d logit[top] / d x, `guided` the
same with guided backpropagation's rule at every ReLU and ReLU6 (the gradient passes where the unit is active,
0 < z (< 6), and is positive). References are computed in float64 (the float32 weights converted) and stored as
float32.

A gradient map of a deep ReLU net cannot be compared more closely than the reference itself holds still: a ReLU
whose input is within rounding of 0, or a max pool whose two largest values are, sends the gradient one way in
one engine and the other way in another (PyTorch's own float32 and float64 gradients of MobileNetV2 differ by 2%
of the largest value). So each model's references record `instability`: how far the float64 gradient moves when
the image moves by 1e-6 (three seeded moves); the tests allow max(1e-4, twice that).

Made with torch 2.15.0 and torchvision 0.29.2 (PyPI wheels, on the CPU), onnx 1.23.2, onnxscript 0.7.2, numpy 2.4.6,
pillow 13.0.0, safetensors not needed (written by hand below). To remake, from the project root:

    python3 -m venv .venv
    .venv/bin/pip install torch==2.15.0 torchvision==0.29.2 onnx==1.23.2 onnxscript==0.7.2 pillow numpy
    .venv/bin/python scripts/make_onnx_fixtures.py --data ../shared/data --out target/onnx-fixtures

`--onnx-only` writes only the ONNX files and checks that their logits still equal the committed references (the
weights are deterministic: seeded, on the CPU), which is what CI does.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "onnx")


class Custom(nn.Module):
    """Every op ConvLens imports, at 3x32x32."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=2)  # groups, dilation, stride
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)  # depthwise
        self.conv3 = nn.Conv2d(8, 12, 1)
        self.bn3 = nn.BatchNorm2d(12)
        self.conv4 = nn.Conv2d(12, 12, 3, padding=0)  # after an explicit Pad
        self.scale = nn.Parameter(torch.randn(1, 12, 1, 1) * 0.5 + 1.0)  # Mul by a per-channel constant
        self.fc = nn.Linear(24 + 12, 16)  # Gemm
        self.w2 = nn.Parameter(torch.randn(24 + 12, 16) * 0.2)  # MatMul
        self.fc2 = nn.Linear(16, 10)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))  # Conv, BatchNormalization, Relu
        x = F.leaky_relu(self.conv2(x), 0.1)  # 8x16x16... LeakyRelu
        y = F.relu6(self.dw(x))  # Clip(0, 6)
        x = x + y  # Add
        x = torch.sigmoid(self.conv3(x)) * torch.tanh(self.bn3(self.conv3(x)))  # Sigmoid, Tanh, Mul
        x = F.hardswish(x) + F.hardsigmoid(x)  # HardSwish, HardSigmoid
        x = F.pad(x, (1, 2, 1, 2))  # Pad (asymmetric)
        x = self.conv4(x) * self.scale
        a = F.max_pool2d(x, 3, 2, ceil_mode=True)  # MaxPool (ceil mode): 12x8x8
        b = F.avg_pool2d(x, 4, stride=2, padding=1)  # AveragePool (count_include_pad, as PyTorch): 12x8x8
        c = torch.cat([a, b], 1)  # Concat
        g = F.adaptive_avg_pool2d(c, 1)  # GlobalAveragePool / ReduceMean
        g = g.squeeze(3).squeeze(2)  # Squeeze
        h = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # Flatten
        f = torch.cat([g, h], 1).unsqueeze(2).unsqueeze(3).reshape(g.shape[0], -1)  # Unsqueeze, Reshape
        f = self.drop(f)  # Dropout (eval: identity)
        z = self.fc(f) + f @ self.w2  # Gemm + MatMul
        z = self.fc2(F.relu(z))
        return torch.softmax(z, 1)  # Softmax


class Unsupported(nn.Module):
    """A conv and a GELU (exported as Erf and friends, or Gelu): an op ConvLens does not import, for the error tests."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.gelu(self.conv(x)), 1))


MODELS = {
    # name: (constructor, input size, seed)
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), 224, 1),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), 224, 2),
    "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(weights=None), 224, 3),
    "vgg11_bn": (lambda: torchvision.models.vgg11_bn(weights=None), 224, 4),
    "alexnet": (lambda: torchvision.models.alexnet(weights=None), 224, 5),
    "custom": (Custom, 32, 6),
    "unsupported": (Unsupported, 8, 7),
}


def make_model(name):
    ctor, size, seed = MODELS[name]
    torch.manual_seed(seed)
    m = ctor()
    # Batchnorm's running statistics from data (as training would leave them: the activations stay of unit
    # scale, so logits and gradients are neither vanishing nor huge), then its affine parameters away from their
    # identity initialization, so that the import's handling of every part is tested.
    g = torch.Generator().manual_seed(100 + seed)
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    if bns:
        for mod in bns:
            mod.reset_running_stats()
            mod.momentum = None  # a cumulative average
        m.train()
        with torch.no_grad():
            for _ in range(4):
                m(torch.rand(8, 3, size, size, generator=g) * 2 - 1)
        for mod in bns:
            c = mod.num_features
            with torch.no_grad():
                mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                mod.bias.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
    return m.eval(), size


class Normalized(nn.Module):
    """The model on [0, 1] images: (x - mean) / std first; `logits` leaves out a final softmax."""

    def __init__(self, m):
        super().__init__()
        self.m = m
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x):
        return self.m((x - self.mean) / self.std)


def logits_of(m, x):
    inner = m.m if isinstance(m, Normalized) else m
    if isinstance(inner, Custom):
        # The score layer is the one before the softmax: fc2's output.
        out = {}
        h = inner.fc2.register_forward_hook(lambda mod, i, o: out.setdefault("z", o))
        m(x)
        h.remove()
        return out["z"]
    return m(x)


class Guided(torch.autograd.Function):
    """Guided backpropagation at a ReLU-like gate active on (lo, hi)."""

    @staticmethod
    def forward(ctx, z, lo, hi):
        ctx.save_for_backward(z)
        ctx.lo, ctx.hi = lo, hi
        return z.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        active = (z > ctx.lo) & (z < ctx.hi)
        return g.clamp(min=0) * active, None, None


def guided_patches():
    """Replaces F.relu, F.relu6 and hardtanh (ReLU6 modules) with the guided rule; returns an undo."""
    saved = (F.relu, F.relu6, F.hardtanh, torch.relu)
    relu_forward = nn.ReLU.forward

    def relu(x, inplace=False):
        return Guided.apply(x, 0.0, float("inf"))

    def relu6(x, inplace=False):
        return Guided.apply(x, 0.0, 6.0)

    def hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
        assert min_val == 0.0 and max_val == 6.0, "only ReLU6 is a hardtanh here"
        return Guided.apply(x, 0.0, 6.0)

    F.relu, F.relu6, F.hardtanh, torch.relu = relu, relu6, hardtanh, relu
    nn.ReLU.forward = lambda self, x: relu(x)
    nn.ReLU6.forward = lambda self, x: relu6(x)

    def undo():
        F.relu, F.relu6, F.hardtanh, torch.relu = saved
        nn.ReLU.forward = relu_forward
        del nn.ReLU6.forward  # back to Hardtanh's

    return undo


def input_grad(m, x, cls, guided):
    undo = guided_patches() if guided else (lambda: None)
    try:
        x = x.clone().requires_grad_(True)
        logits_of(m, x)[0, cls].backward()
        return x.grad[0].detach()
    finally:
        undo()


def images(data, size, n=2):
    """A photo (the data directory's astronaut, resized) and seeded noise, in [0, 1], (n, 3, size, size).

    The photo gets a little seeded noise (0.9 photo + 0.1 noise): a flat region of an image gives exactly equal
    activations side by side, and a max pool's tie there sends the gradient to whichever maximum the rounding
    favours, in float32 and in float64 alike; with texture everywhere the references test the import, not a
    tie-break."""
    out = []
    from PIL import Image

    g = torch.Generator().manual_seed(size)
    path = os.path.join(data, "images", "astronaut.png") if data else None
    if path and os.path.exists(path):
        im = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
        photo = torch.tensor(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        out.append(photo * 0.9 + 0.1 * torch.rand(3, size, size, generator=g))
    while len(out) < n:
        out.append(torch.rand(3, size, size, generator=g))
    return torch.stack(out)


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for k, v in tensors.items():
        b = np.ascontiguousarray(v.detach().cpu().numpy().astype("<f4")).tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.tensor(np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(v["shape"]).copy())
    return out


def export(m, size, path, dynamo):
    import onnx

    x = torch.rand(1, 3, size, size)
    kw = {"dynamo": True} if dynamo else {"dynamo": False, "do_constant_folding": False, "training": torch.onnx.TrainingMode.PRESERVE}
    torch.onnx.export(m, (x,), path, input_names=["input"], output_names=["output"], opset_version=18, **kw)
    model = onnx.load(path)
    for k, v in (("convlens.mean", MEAN), ("convlens.std", STD)):
        p = model.metadata_props.add()
        p.key, p.value = k, ",".join(str(t) for t in v)
    onnx.save_model(model, path, save_as_external_data=False)
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")  # the dynamo exporter's external weights, now inside the file
    return sorted({n.op_type for n in model.graph.node})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="the data directory (for the photo); seeded noise without it")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "onnx-fixtures"), help="where the ONNX files go")
    ap.add_argument("--onnx-only", action="store_true", help="write the ONNX files and check them against the committed references")
    ap.add_argument("--models", nargs="*", default=list(MODELS) + ["custom_ts"])
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(FIXTURES, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ref_path = os.path.join(FIXTURES, "references.json")
    refs = json.load(open(ref_path)) if os.path.exists(ref_path) else {}
    for name in args.models:
        base = "custom" if name == "custom_ts" else name
        m, size = make_model(base)
        ops = export(m, size, os.path.join(args.out, name + ".onnx"), dynamo=name != "custom_ts")
        print(f"{name}: {len(ops)} op types: {' '.join(ops)}", flush=True)
        mf = Normalized(m).eval()
        if name == "unsupported":
            refs[name] = {"onnx": name + ".onnx", "ops": ops, "unsupported": True}
            continue
        if args.onnx_only:
            # The weights are seeded: the exported model must still give the committed logits.
            stored = read_safetensors(os.path.join(FIXTURES, base + ".safetensors"))
            x = read_safetensors(os.path.join(FIXTURES, f"images_{size}.safetensors"))["images"]
            with torch.no_grad():
                got = logits_of(mf, x)
            err = (got - stored["logits"]).abs().max().item() / stored["logits"].abs().max().item()
            print(f"  logits vs the committed references: max error {err:.2e} (relative)", flush=True)
            if err > 1e-5:
                sys.exit(f"{name}: the remade model's logits differ from the committed references ({err:.2e})")
            continue
        if name == "custom_ts":
            refs[name] = dict(refs["custom"], onnx=name + ".onnx", ops=ops)
            continue
        md = Normalized(m).double().eval()
        x = images(args.data, size).double()
        with torch.no_grad():
            logits = logits_of(md, x)
        top = int(logits[0].argmax())
        grad = input_grad(md, x[:1], top, guided=False)
        guided = input_grad(md, x[:1], top, guided=True)
        assert not torch.equal(grad, guided), f"{name}: the guided gradient equals the plain one"
        # How far the reference itself moves when the image moves by float32's rounding: a ReLU whose input is
        # within rounding of 0, or a max pool whose two largest values are, decides the gradient's path one way
        # in one engine and the other in another (PyTorch's float32 and float64 disagree so on MobileNetV2). A
        # gradient map cannot be compared more closely than this; the tests allow max(1e-4, 2 x this).
        instability = {}
        for key, ref_g, guided_rule in (("grad", grad, False), ("guided", guided, True)):
            worst = 0.0
            for k in range(3):
                gk = torch.Generator().manual_seed(1000 + k)
                dx = (torch.rand(x[:1].shape, generator=gk, dtype=torch.float64) * 2 - 1) * 1e-6
                moved = input_grad(md, x[:1] + dx, top, guided=guided_rule)
                worst = max(worst, float((moved - ref_g).abs().max() / ref_g.abs().max()))
            instability[key] = worst
        write_safetensors(os.path.join(FIXTURES, f"images_{size}.safetensors"), {"images": x.float()})
        write_safetensors(os.path.join(FIXTURES, name + ".safetensors"), {"logits": logits.float(), "grad": grad.float(), "guided": guided.float()})
        refs[name] = {
            "onnx": name + ".onnx",
            "references": name + ".safetensors",
            "images": f"images_{size}.safetensors",
            "input": [3, size, size],
            "mean": MEAN,
            "std": STD,
            "classes": int(logits.shape[1]),
            "instability": instability,
            "top": [int(t) for t in logits.argmax(1)],
            "seed": MODELS[name][2],
            "ops": ops,
        }
        print(f"  top classes {refs[name]['top']}, |logit| max {logits.abs().max().item():.3g}, |grad| max {grad.abs().max().item():.3g}, "
              f"instability under 1e-6 moves: {instability['grad']:.1e} (guided {instability['guided']:.1e})", flush=True)
    if not args.onnx_only:
        with open(ref_path, "w") as f:
            json.dump(refs, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
