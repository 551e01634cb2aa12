#!/usr/bin/env python3
"""Float64 reference logits and input gradients for a Keras functional TF.js layers model
(tests/fixtures/keras/graph/, made by scripts/make_keras_fixtures.mjs, which runs this).

    python scripts/keras_reference.py tests/fixtures/keras/graph

An evaluation of the Keras graph written here from Keras's semantics, independently of ConvLens's
reader (crates/core/src/tfjs.rs): the tensors stay channels-last (N, H, W, C) as in Keras, so a
Flatten is a plain reshape and a Dense layer a plain matrix product; TensorFlow's 'same' padding is
computed per side (the odd pixel after), max pools pad with -inf and average pools divide by the
pixels inside the image. PyTorch (float64) supplies the convolutions and autograd. The logits must
agree with TensorFlow.js's own (float32) within 1e-5 of the largest, else nothing is written.
Adds to reference.json, per image: "logits", "top" and "grad" (the gradient of the top logit with
respect to the image, C, H, W).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def same(n, k, s, d=1):
    span = d * (k - 1) + 1
    out = -(-n // s)
    total = max((out - 1) * s + span - n, 0)
    return total // 2, total - total // 2


def activation(name, x):
    return {
        'linear': lambda v: v,
        'relu': F.relu,
        'relu6': lambda v: v.clamp(0, 6),
        'sigmoid': torch.sigmoid,
        'tanh': torch.tanh,
        'softmax': lambda v: torch.softmax(v, -1),
        'hard_sigmoid': lambda v: (0.2 * v + 0.5).clamp(0, 1),  # Keras 2's and TF.js's
    }[name](x)


def conv(x, weight, bias, c, groups):
    """x NHWC; weight (out, in/groups, k, k) as PyTorch takes it."""
    k, s, d = c['kernel_size'][0], c['strides'][0], c.get('dilation_rate', [1, 1])[0]
    xc = x.permute(0, 3, 1, 2)
    if c['padding'] == 'same':
        (t, b), (l, r) = same(xc.shape[2], k, s, d), same(xc.shape[3], k, s, d)
        xc = F.pad(xc, (l, r, t, b))
    return F.conv2d(xc, weight, bias, stride=s, dilation=d, groups=groups).permute(0, 2, 3, 1)


def pool(x, c, mode):
    k, s = c['pool_size'][0], c['strides'][0]
    xc = x.permute(0, 3, 1, 2)
    t = b = l = r = 0
    if c['padding'] == 'same':
        (t, b), (l, r) = same(xc.shape[2], k, s), same(xc.shape[3], k, s)
    if mode == 'max':
        y = F.max_pool2d(F.pad(xc, (l, r, t, b), value=-math.inf), k, s)
    else:
        ones = torch.ones_like(xc[:, :1])
        y = F.avg_pool2d(F.pad(xc, (l, r, t, b)), k, s) / F.avg_pool2d(F.pad(ones, (l, r, t, b)), k, s)
    return y.permute(0, 2, 3, 1)


def evaluate(layers, w, image, upto):
    t = {}
    for layer in layers:
        kind, c, name = layer['class_name'], layer['config'], layer['name']
        ins = [t[n[0]] for n in layer['inbound_nodes'][0]] if layer['inbound_nodes'] else []
        x = ins[0] if ins else None
        if kind == 'InputLayer':
            y = image
        elif kind == 'Rescaling':
            y = x * c['scale'] + c['offset']
        elif kind == 'ZeroPadding2D':
            (pt, pb), (pl, pr) = c['padding']
            y = F.pad(x, (0, 0, pl, pr, pt, pb))
        elif kind == 'Conv2D':
            y = activation(c['activation'], conv(x, w[f'{name}/kernel'].permute(3, 2, 0, 1), w.get(f'{name}/bias'), c, 1))
        elif kind == 'DepthwiseConv2D':
            k = w[f'{name}/depthwise_kernel']  # [k, k, C, m] -> (C * m, 1, k, k)
            ch, m = k.shape[2], k.shape[3]
            weight = k.permute(2, 3, 0, 1).reshape(ch * m, 1, k.shape[0], k.shape[1])
            y = activation(c['activation'], conv(x, weight, w.get(f'{name}/bias'), c, ch))
        elif kind == 'SeparableConv2D':
            k = w[f'{name}/depthwise_kernel']
            ch, m = k.shape[2], k.shape[3]
            y = conv(x, k.permute(2, 3, 0, 1).reshape(ch * m, 1, k.shape[0], k.shape[1]), None, c, ch)
            y = y @ w[f'{name}/pointwise_kernel'][0, 0] + w[f'{name}/bias']
            y = activation(c['activation'], y)
        elif kind == 'BatchNormalization':
            g, b, mu, var = (w[f'{name}/{f}'] for f in ('gamma', 'beta', 'moving_mean', 'moving_variance'))
            y = (x - mu) / torch.sqrt(var + c['epsilon']) * g + b
        elif kind == 'ReLU':
            y = F.relu(x) if c.get('max_value') is None else x.clamp(0, c['max_value'])
        elif kind == 'LeakyReLU':
            y = F.leaky_relu(x, c['alpha'])
        elif kind == 'Activation':
            y = activation(c['activation'], x)
        elif kind == 'Add':
            y = sum(ins)
        elif kind == 'Concatenate':
            y = torch.cat(ins, -1)
        elif kind in ('MaxPooling2D', 'AveragePooling2D'):
            y = pool(x, c, 'max' if kind == 'MaxPooling2D' else 'avg')
        elif kind == 'GlobalAveragePooling2D':
            y = x.mean((1, 2))
        elif kind == 'Flatten':
            y = x.reshape(x.shape[0], -1)  # channels-last order, as Keras flattens
        elif kind == 'Dropout':
            y = x
        elif kind == 'Dense':
            y = activation(c['activation'], x @ w[f'{name}/kernel'] + w[f'{name}/bias'])
        else:
            raise SystemExit(f'{kind} is not evaluated here')
        t[name] = y
        if name == upto:
            return y
    raise SystemExit(f'no layer {upto}')


def main():
    out = sys.argv[1]
    model = json.load(open(os.path.join(out, 'model.json')))
    group = model['weightsManifest'][0]
    data = b''.join(open(os.path.join(out, p), 'rb').read() for p in group['paths'])
    w, at = {}, 0
    for spec in group['weights']:
        n = int(np.prod(spec['shape']))
        w[spec['name']] = torch.tensor(np.frombuffer(data, '<f4', n, at).reshape(spec['shape']).astype(np.float64))
        at += 4 * n
    layers = model['modelTopology']['config']['layers']
    ref = json.load(open(os.path.join(out, 'reference.json')))
    c, h, wd = ref['shape']
    for r in ref['images']:
        image = torch.tensor(np.array(r['image'], np.float32).astype(np.float64).reshape(c, h, wd)).permute(1, 2, 0)[None]
        image.requires_grad_(True)
        logits = evaluate(layers, w, image, 'logits')[0]
        tf = np.array(r['tfjs_logits'])
        err = np.abs(logits.detach().numpy() - tf).max() / np.abs(tf).max()
        if err > 1e-5:
            raise SystemExit(f'the logits differ from TensorFlow.js\'s by {err:.1e}: {logits.tolist()} vs {tf.tolist()}')
        top = int(logits.argmax())
        logits[top].backward()
        r['logits'] = logits.tolist()
        r['top'] = top
        r['grad'] = image.grad[0].permute(2, 0, 1).reshape(-1).tolist()
        print(f'{out}: logits within {err:.1e} of TensorFlow.js\'s; top class {top}')
    json.dump(ref, open(os.path.join(out, 'reference.json'), 'w'))


main()
