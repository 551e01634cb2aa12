#!/usr/bin/env python3
"""Reference numbers for ConvLens's layer tests, computed with PyTorch (tests/fixtures/layers/).

Writes

    rules.json + rules.safetensors        gradient, deconvnet and guided backpropagation through ReLU6 and
                                          Clip (a small net: conv relu6, depthwise relu6, clip, fc)
    train.json + train.safetensors        four SGD steps of a net with batchnorm and dropout (PyTorch's
                                          BatchNorm2d in training mode, ConvLens's dropout masks), then eval()
    mobilenet_rules.safetensors           (with --mobilenet) the three maps of MobileNetV2 for one image

so that the Rust tests (crates/core/tests/layers.rs) check ConvLens without PyTorch. Made with torch 2.15.0
(the PyPI wheel, on the CPU), numpy and safetensors. From the project root:

    python3 -m venv .venv
    .venv/bin/pip install torch==2.15.0 safetensors numpy
    .venv/bin/python scripts/make_layer_fixtures.py [--mobilenet SPEC_AND_WEIGHTS.safetensors --image IMAGE.npy]

where the MobileNetV2 file is what `convlens export --model mobilenet_v2_f32.json --weights
mobilenet_v2_f32.safetensors --out m.safetensors` writes (the spec travels in its metadata) and the image is a
[3, 224, 224] float32 .npy in [0, 1].

The networks are ConvLens specs interpreted here layer by layer (`SpecNet`), in float64. The attribution rules are
custom autograd functions at every ReLU-like gate (relu, relu6, clip), since Captum's GuidedBackprop and Deconvolution
override nn.ReLU only: deconvnet passes max(g, 0) whatever the input was; guided passes max(g, 0) where the unit was
active (lo < x < hi: 0 < x < 6 for ReLU6). Dropout draws ConvLens's masks (SplitMix64 streams keyed by seed, step and
layer: `crates/core/src/net.rs`, `dropout_mask`), so both sides drop the same units.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from safetensors import safe_open

OUT = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'layers')
M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.x = seed & M64

    def next(self):
        self.x = (self.x + 0x9E3779B97F4A7C15) & M64
        z = self.x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return ((self.next() >> 11) + 0.5) / float(1 << 53)


def dropout_mask(seed, step, layer, rate, n, size):
    rng = SplitMix64(seed)
    rng = SplitMix64(rng.next() ^ step)
    rng = SplitMix64(rng.next() ^ layer)
    keep = float(np.float32(1.0 / (1.0 - rate)))
    return np.array([0.0 if rng.uniform() < rate else keep for _ in range(n * size)])


class Gate(torch.autograd.Function):
    """clamp(x, lo, hi) with the backward rule of an attribution method."""

    @staticmethod
    def forward(ctx, x, lo, hi, rule):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi, ctx.rule = lo, hi, rule
        return x.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        active = ((x > ctx.lo) & (x < ctx.hi)).to(g.dtype)
        if ctx.rule == 'gradient':
            return g * active, None, None, None
        if ctx.rule == 'deconvnet':
            return g.clamp(min=0), None, None, None
        return g.clamp(min=0) * active, None, None, None


def same_pad(n, k, s):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class SpecNet:
    """A ConvLens spec (every layer named) with weights {name.field: array}, run in PyTorch."""

    def __init__(self, spec, weights):
        self.layers = spec['layers']
        self.w = {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for k, v in weights.items()}
        self.bn_stats = {}

    def act(self, x, a, rule):
        if a in (None, 'none', 'linear'):
            return x
        if a == 'relu':
            return Gate.apply(x, 0.0, float('inf'), rule)
        if a == 'relu6':
            return Gate.apply(x, 0.0, 6.0, rule)
        if a == 'sigmoid':
            return torch.sigmoid(x)
        if a == 'tanh':
            return torch.tanh(x)
        raise ValueError(a)

    def forward(self, x, rule='gradient', train=None):
        """Every layer's output. `train`: (seed, step) for a training step's forward pass."""
        outs = [x]
        names = [self.layers[0].get('name', 'input')]
        for i, L in enumerate(self.layers[1:], start=1):
            t, name = L['type'], L['name']
            ins = [outs[names.index(n)] for n in L['inputs']] if 'inputs' in L else [outs[-1]]
            x = ins[0]
            w = lambda f: self.w.get(f'{name}.{f}')
            if t == 'conv':
                k, s = L['size'], L.get('stride', 1)
                if L.get('padding') == 'same':
                    a, b = same_pad(x.shape[2], k, s)
                    x = F.pad(x, (a, b, a, b))
                    pad = 0
                else:
                    pad = L.get('pad', 0)
                y = F.conv2d(x, w('weight'), w('bias'), stride=s, padding=pad, groups=L.get('groups', 1))
                y = self.act(y, L.get('activation'), rule)
            elif t == 'fc':
                y = self.act(x.flatten(1) @ w('weight').T + (w('bias') if w('bias') is not None else 0), L.get('activation'), rule)
                y = y[:, :, None, None]
            elif t == 'pool':
                k, s = L['size'], L.get('stride', L['size'])
                y = F.max_pool2d(x, k, s) if L.get('mode', 'max') == 'max' else F.avg_pool2d(x, k, s)
            elif t in ('relu', 'relu6'):
                y = self.act(x, t, rule)
            elif t == 'clip':
                y = Gate.apply(x, float(L.get('min', 0.0)), float(L.get('max', 6.0)), rule)
            elif t == 'leaky_relu':
                y = F.leaky_relu(x, L.get('alpha', 0.01))
            elif t == 'add':
                y = sum(ins[1:], ins[0])
            elif t == 'scale':
                y = x * L.get('scale', 1.0) + L.get('offset', 0.0)
            elif t == 'batchnorm':
                rm, rv = w('running_mean').detach().clone(), w('running_var').detach().clone()
                y = F.batch_norm(x, rm, rv, w('weight'), w('bias'), training=train is not None,
                                 momentum=L.get('momentum', 0.1), eps=L.get('eps', 1e-5))
                if train is not None:
                    self.bn_stats[name] = (rm, rv)
            elif t == 'dropout':
                if train is not None and L.get('rate', 0.5) > 0:
                    seed, step = train
                    m = dropout_mask(seed, step, i, L.get('rate', 0.5), x.shape[0], x[0].numel())
                    y = x * torch.tensor(m, dtype=x.dtype).reshape(x.shape)
                else:
                    y = x
            elif t == 'softmax':
                y = torch.softmax(x.flatten(1), 1)[:, :, None, None]
            else:
                raise ValueError(t)
            outs.append(y)
            names.append(name)
        return outs

    def score_layer(self):
        return len(self.layers) - 2 if self.layers[-1]['type'] == 'softmax' else len(self.layers) - 1


def input_maps(net, images, target):
    """d score[target] / d input under each rule."""
    out = {}
    for rule in ('gradient', 'deconvnet', 'guided'):
        x = torch.tensor(images, dtype=torch.float64, requires_grad=True)
        score = net.forward(x, rule)[net.score_layer()].flatten(1)[:, target].sum()
        (g,) = torch.autograd.grad(score, x)
        out[rule] = g.numpy().astype(np.float32)
    return out


RULES_SPEC = {
    'name': 'relu6-rules',
    'layers': [
        {'type': 'input', 'name': 'input', 'width': 8, 'height': 8, 'depth': 3},
        {'type': 'conv', 'name': 'stem', 'size': 3, 'filters': 6, 'stride': 2, 'padding': 'same', 'activation': 'relu6'},
        {'type': 'conv', 'name': 'dw', 'size': 3, 'filters': 6, 'groups': 6, 'padding': 'same', 'activation': 'relu6'},
        {'type': 'conv', 'name': 'project', 'size': 1, 'filters': 4},
        {'type': 'clip', 'name': 'clip', 'min': -0.5, 'max': 0.75},
        {'type': 'relu6', 'name': 'r6'},
        {'type': 'fc', 'name': 'fc', 'units': 5},
    ],
}

TRAIN_SPEC = {
    'name': 'bn-dropout',
    'layers': [
        {'type': 'input', 'name': 'input', 'width': 6, 'height': 6, 'depth': 2},
        {'type': 'conv', 'name': 'conv1', 'size': 3, 'filters': 4, 'pad': 1},
        {'type': 'batchnorm', 'name': 'bn1', 'momentum': 0.2, 'eps': 1e-5},
        {'type': 'relu', 'name': 'relu1'},
        {'type': 'dropout', 'name': 'drop1', 'rate': 0.3},
        {'type': 'pool', 'name': 'pool1', 'size': 2, 'stride': 2},
        {'type': 'fc', 'name': 'fc1', 'units': 3},
        {'type': 'softmax', 'name': 'softmax'},
    ],
}


def random_weights(shapes, rng):
    w = {}
    for name, shape in shapes.items():
        if name.endswith('running_var'):
            w[name] = (0.5 + rng.random(shape)).astype(np.float32)
        elif name.endswith('running_mean'):
            w[name] = (0.2 * rng.standard_normal(shape)).astype(np.float32)
        elif name.endswith('bn1.weight'):
            w[name] = (1.0 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
        else:
            w[name] = (0.4 * rng.standard_normal(shape)).astype(np.float32)
    return w


def rules_fixture():
    rng = np.random.default_rng(6)
    shapes = {'stem.weight': (6, 3, 3, 3), 'stem.bias': (6,), 'dw.weight': (6, 1, 3, 3), 'dw.bias': (6,),
              'project.weight': (4, 6, 1, 1), 'project.bias': (4,), 'fc.weight': (5, 4 * 4 * 4), 'fc.bias': (5,)}
    w = random_weights(shapes, rng)
    # Large enough inputs that some units pass 6 and are clipped.
    images = (rng.random((2, 3, 8, 8)) * 8.0).astype(np.float32)
    net = SpecNet(RULES_SPEC, w)
    arrays = dict(w)
    arrays['images'] = images
    cases = []
    for target in (0, 3):
        maps = input_maps(net, images.astype(np.float64), target)
        for rule, m in maps.items():
            arrays[f'{rule}_{target}'] = m
        cases.append({'target': target, 'keys': {r: f'{r}_{target}' for r in maps}})
        assert np.abs(maps['guided'] - maps['gradient']).max() > 1e-3, 'guided must differ from the gradient'
    outs = net.forward(torch.tensor(images, dtype=torch.float64))
    clipped = [int(((o > 6.0 - 1e-9).sum()).item()) for o in outs[1:3]]
    assert min(clipped) > 0, f'no unit is clipped at 6 ({clipped}); the fixture would not test relu6'
    save_file(arrays, os.path.join(OUT, 'rules.safetensors'))
    json.dump({'spec': RULES_SPEC, 'cases': cases, 'clipped_at_6': clipped}, open(os.path.join(OUT, 'rules.json'), 'w'), indent=1)
    print('rules: clipped units at 6 per relu6 layer', clipped)


def train_fixture():
    rng = np.random.default_rng(11)
    shapes = {'conv1.weight': (4, 2, 3, 3), 'conv1.bias': (4,), 'bn1.weight': (4,), 'bn1.bias': (4,),
              'bn1.running_mean': (4,), 'bn1.running_var': (4,), 'fc1.weight': (3, 4 * 3 * 3), 'fc1.bias': (3,)}
    w0 = random_weights(shapes, rng)
    steps, batch, lr, seed = 4, 8, 0.1, 7
    images = rng.random((steps, batch, 2, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 3, (steps, batch))
    test = rng.random((5, 2, 6, 6)).astype(np.float32)
    net = SpecNet(TRAIN_SPEC, w0)
    trainable = [k for k in net.w if not k.endswith(('running_mean', 'running_var'))]
    opt = torch.optim.SGD([net.w[k] for k in trainable], lr=lr)
    losses = []
    for s in range(steps):
        x = torch.tensor(images[s], dtype=torch.float64)
        outs = net.forward(x, train=(seed, s))
        loss = F.cross_entropy(outs[net.score_layer()].flatten(1), torch.tensor(labels[s]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        rm, rv = net.bn_stats['bn1']
        with torch.no_grad():
            net.w['bn1.running_mean'].copy_(rm)
            net.w['bn1.running_var'].copy_(rv)
        losses.append(loss.item())
    with torch.no_grad():
        ev = net.forward(torch.tensor(test, dtype=torch.float64))[-1].flatten(1).numpy()
    arrays = {f'init.{k}': v for k, v in w0.items()}
    arrays.update({f'final.{k}': v.detach().numpy().astype(np.float32) for k, v in net.w.items()})
    arrays['images'] = images.reshape(steps * batch, 2, 6, 6)
    arrays['labels'] = labels.reshape(-1).astype(np.float32)
    arrays['test'] = test
    arrays['eval_probs'] = ev.astype(np.float32)
    arrays['losses'] = np.array(losses, dtype=np.float32)
    arrays['mask_step0'] = dropout_mask(seed, 0, 4, 0.3, batch, 4 * 6 * 6).astype(np.float32)
    save_file(arrays, os.path.join(OUT, 'train.safetensors'))
    json.dump({'spec': TRAIN_SPEC, 'steps': steps, 'batch': batch, 'lr': lr, 'seed': seed, 'trainer': 'sgd'},
              open(os.path.join(OUT, 'train.json'), 'w'), indent=1)
    print('train: losses', losses)


def mobilenet_fixture(path, image_path):
    with safe_open(path, 'np') as f:
        spec = json.loads(f.metadata()['convlens_spec'])
        w = {k: f.get_tensor(k) for k in f.keys()}
    # Every layer named (ConvLens names the unnamed ones type + count; the op list names them op<i>).
    assert all('name' in L for L in spec['layers']), 'the exported spec names every layer'
    image = np.load(image_path).astype(np.float32)[None]
    net = SpecNet(spec, w)
    with torch.no_grad():
        scores = net.forward(torch.tensor(image, dtype=torch.float64))[net.score_layer()].flatten(1)
    target = int(scores.argmax())
    maps = input_maps(net, image.astype(np.float64), target)
    d = np.abs(maps['guided'] - maps['gradient']).max()
    print(f'mobilenet: top class {target}; max |guided - gradient| = {d:.3g}')
    save_file({'image': image[0], 'target': np.array([target], dtype=np.float32),
               **{k: v[0] for k, v in maps.items()}}, os.path.join(OUT, 'mobilenet_rules.safetensors'))


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--mobilenet', help='a safetensors file with the MobileNetV2 spec in its metadata')
    ap.add_argument('--image', help='[3, 224, 224] float32 .npy for --mobilenet')
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    rules_fixture()
    train_fixture()
    if args.mobilenet:
        mobilenet_fixture(args.mobilenet, args.image)
