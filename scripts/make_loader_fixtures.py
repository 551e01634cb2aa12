#!/usr/bin/env python3
"""Tiny models for ConvLens's model-loader tests, with PyTorch references (tests/fixtures/loaders/).

Writes

    tiny.tflite                  a quantized TFLite flatbuffer shaped like Coral's MobileNetV2 (uint8 input
                                 [1, 8, 8, 3], scale 1/128, zero point 128): CONV_2D 3x3 stride 2 SAME relu6 (uint8
                                 weights per tensor) -> DEPTHWISE_CONV_2D 3x3 SAME relu6 (uint8, per channel along
                                 quantized_dimension 3, a zero point per channel) -> CONV_2D 1x1 (int8, per channel
                                 along quantized_dimension 0) -> ADD (residual with the first conv's output) ->
                                 AVERAGE_POOL_2D 4x4 VALID (global) -> CONV_2D 1x1 to 5 classes (uint8 per tensor)
                                 -> RESHAPE [1, 5] -> SOFTMAX. Biases int32 (scale = input scale x weight scale).
                                 Tensor ids are shuffled (as a converter leaves them), each tensor has its own buffer,
                                 and the file ends with weight bytes the reader needs (every strict prefix is
                                 truncated somewhere it looks). It tests a reader, not an interpreter: uint8
                                 per-channel and int8 weights on uint8 activations are valid in the schema, but not
                                 a mix TFLite's converter makes or its quantized kernels are meant to run.
    tiny_oplist.json             the same network as a float32 op list, the format of the data directory's
    tiny_oplist.safetensors      mobilenet_v2_f32.json (crates/core/src/oplist.rs): weights dequantized in float32
                                 as (q - zero_point) * scale, conv (out, in, kh, kw), depthwise (C, 1, kh, kw),
                                 named op<i>.weight / op<i>.bias; these are also the weights tflite.rs must produce.
    tiny_tfjs/model.json         a Keras Sequential TF.js layers model like CNN Explainer's Tiny VGG, channels last,
    tiny_tfjs/group1-shard*of2.bin  input 10 (high) x 8 (wide) x 3: Conv2D 3x3 valid (linear) + Activation relu,
                                 Conv2D 3x3 same relu, MaxPooling2D 2, Flatten, Dense 5 softmax; float32 weights in
                                 two shards split inside a tensor (as the converter splits at its shard size).
    expected.json                for both networks: two images each (pixels as uint8, C,H,W; the image ConvLens
                                 takes is pixel / 255 in float32) and the PyTorch float64 reference logits and
                                 probabilities, the class count, parameter count and layer names.

so that crates/core/tests/loaders.rs tests tflite.rs, oplist.rs and tfjs.rs without the data directory.

The references are computed here independently of ConvLens, in float64, from the float32 weights:
  * tiny: the uint8 input's dequantization first, as tflite.rs/oplist.rs model it (ConvLens feeds x in [0, 1];
    the byte is b = 255 x, unrounded, and the net sees (b - 128) * 0.0078125), TensorFlow's SAME padding (the odd
    zero row/column at the bottom/right: pad before = total // 2), relu6 = clamp(0, 6), global average pool, a
    softmax over the 5 logits. It is the float network: a quantized interpreter would round every activation too.
  * tfjs: Keras semantics on channels-last data (kernel [kh, kw, in, out], 'same' = k // 2 on each side for an odd
    kernel at stride 1, Flatten in H, W, C order, Dense y = x K + b), written without tfjs.rs's permutation.
The script also checks that the fixtures can tell wrong readings apart (symmetric padding, a channels-first
flatten, per-tensor instead of per-channel scales each move the outputs by far more than the tests' 1e-4), and
re-reads the .tflite with the `tflite` package (generated from TensorFlow's schema) when it is installed.

Made with Python 3.11.7, torch 2.15.0 (the PyPI wheel, run on the CPU), numpy 2.4.6, safetensors 0.8.0 and flatbuffers
25.12.19 (tflite 2.18.0 for the optional check). Deterministic: rerunning gives the same bytes. From the project
root:

    python3 -m venv .venv
    .venv/bin/pip install torch==2.15.0 numpy safetensors flatbuffers==25.12.19 tflite==2.18.0
    .venv/bin/python scripts/make_loader_fixtures.py
"""
import json
import os
import re

import flatbuffers
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'loaders')
F32 = np.float32

# TFLite schema numbers (tensorflow/lite/schema/schema.fbs).
ADD, AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D, RESHAPE, SOFTMAX = 0, 1, 3, 4, 22, 25
T_FLOAT32, T_INT32, T_UINT8, T_INT8 = 0, 2, 3, 9
SAME, VALID = 0, 1
ACT_NONE, ACT_RELU6 = 0, 3
OPT_CONV, OPT_DEPTHWISE, OPT_POOL, OPT_SOFTMAX, OPT_ADD, OPT_RESHAPE = 1, 2, 5, 9, 11, 17

IN_SCALE, IN_ZERO = 0.0078125, 128  # Coral's MobileNetV2: x / 127.5 - 1, near enough (b - 128) / 128
CLASSES = 5


# ---------------------------------------------------------------------------------------------------------------
# Quantization (weights in TFLite layout: conv [out, kh, kw, in], depthwise [1, kh, kw, C])

def quant_uint8(w, axis=None):
    """Asymmetric uint8, per tensor (axis None) or per channel along `axis`: (q, scale[], zero_point[])."""
    if axis is None:
        lo, hi = np.array([min(w.min(), 0.0)]), np.array([max(w.max(), 0.0)])
    else:
        other = tuple(a for a in range(w.ndim) if a != axis)
        lo, hi = np.minimum(w.min(axis=other), 0.0), np.maximum(w.max(axis=other), 0.0)
    scale = ((hi - lo) / 255.0).astype(F32)
    zero = np.clip(np.round(-lo / scale.astype(np.float64)), 0, 255).astype(np.int64)
    s, z = bcast(scale, w.ndim, axis), bcast(zero, w.ndim, axis)
    q = np.clip(np.round(w / s.astype(np.float64)) + z, 0, 255).astype(np.uint8)
    return q, scale, zero


def quant_int8_symmetric(w, axis):
    """Symmetric int8 per channel (zero point 0), as TFLite's int8 weights."""
    other = tuple(a for a in range(w.ndim) if a != axis)
    scale = (np.abs(w).max(axis=other) / 127.0).astype(F32)
    q = np.clip(np.round(w / bcast(scale, w.ndim, axis).astype(np.float64)), -127, 127).astype(np.int8)
    return q, scale, np.zeros(len(scale), np.int64)


def quant_bias(b, in_scale, w_scale):
    """int32 bias with scale = input scale x weight scale (per channel if the weights are)."""
    scale = (F32(in_scale) * np.asarray(w_scale, F32)).astype(F32)
    q = np.round(b / scale.astype(np.float64)).astype(np.int32)
    return q, scale, np.zeros(len(scale), np.int64)


def bcast(v, ndim, axis):
    if axis is None or len(v) == 1:
        return v.reshape((1,) * ndim)
    shape = [1] * ndim
    shape[axis] = len(v)
    return v.reshape(shape)


def dequant(q, scale, zero, axis):
    """(q - zero_point) * scale in float32, one rounding per operation, as tflite.rs computes it."""
    s, z = bcast(np.asarray(scale, F32), q.ndim, axis), bcast(np.asarray(zero).astype(F32), q.ndim, axis)
    return (q.astype(F32) - z) * s


# ---------------------------------------------------------------------------------------------------------------
# The tiny MobileNet-like network

def tiny_network():
    rng = np.random.default_rng(20251130)
    n = lambda *shape, std=1.0, mean=0.0: rng.normal(mean, std, shape)  # noqa: E731
    t = {}  # name -> dict(shape, type, data (quantized, TFLite layout), scale, zero, qdim)

    def tensor(name, shape, ty, data=None, scale=None, zero=None, qdim=0):
        t[name] = dict(shape=list(shape), type=ty, data=data, scale=scale, zero=zero, qdim=qdim)

    tensor('input', [1, 8, 8, 3], T_UINT8, scale=np.array([IN_SCALE], F32), zero=np.array([IN_ZERO]))
    relu6_q = (np.array([6 / 255], F32), np.array([0]))
    # op0: CONV_2D 3x3 stride 2, 3 -> 8, relu6; uint8 per tensor.
    w0 = n(8, 3, 3, 3, std=1.0)
    q, s, z = quant_uint8(w0)
    tensor('op0.w', q.shape, T_UINT8, q, s, z)
    qb, sb, zb = quant_bias(n(8, std=0.5), IN_SCALE, s)
    tensor('op0.b', [8], T_INT32, qb, sb, zb)
    tensor('op0.out', [1, 4, 4, 8], T_UINT8, None, *relu6_q)
    # op1: DEPTHWISE_CONV_2D 3x3 stride 1, relu6; uint8 per channel along dimension 3 (own zero points).
    w1 = n(1, 3, 3, 8, std=0.4) * np.linspace(0.4, 1.6, 8) + np.linspace(-0.3, 0.3, 8)
    q, s, z = quant_uint8(w1, axis=3)
    assert len(set(z.tolist())) > 3, z
    tensor('op1.w', q.shape, T_UINT8, q, s, z, qdim=3)
    qb, sb, zb = quant_bias(n(8, std=0.5, mean=0.5), 6 / 255, s)
    tensor('op1.b', [8], T_INT32, qb, sb, zb)
    tensor('op1.out', [1, 4, 4, 8], T_UINT8, None, *relu6_q)
    # op2: CONV_2D 1x1, 8 -> 8, no activation; int8 per channel along dimension 0.
    w2 = n(8, 1, 1, 8, std=0.3) * np.linspace(0.3, 1.5, 8).reshape(8, 1, 1, 1)
    q, s, z = quant_int8_symmetric(w2, axis=0)
    tensor('op2.w', q.shape, T_INT8, q, s, z, qdim=0)
    qb, sb, zb = quant_bias(n(8, std=0.3), 6 / 255, s)
    tensor('op2.b', [8], T_INT32, qb, sb, zb)
    tensor('op2.out', [1, 4, 4, 8], T_UINT8, None, np.array([0.06], F32), np.array([120]))
    # op3: ADD(op2.out, op0.out): the inverted-residual shortcut.
    tensor('op3.out', [1, 4, 4, 8], T_UINT8, None, np.array([0.08], F32), np.array([90]))
    # op4: AVERAGE_POOL_2D 4x4 VALID: the global pool.
    tensor('op4.out', [1, 1, 1, 8], T_UINT8, None, np.array([0.08], F32), np.array([90]))
    # op5: CONV_2D 1x1, 8 -> 5 (the logits); uint8 per tensor.
    w5 = n(CLASSES, 1, 1, 8, std=1.5)
    q, s, z = quant_uint8(w5)
    tensor('op5.w', q.shape, T_UINT8, q, s, z)
    qb, sb, zb = quant_bias(n(CLASSES, std=0.3), 0.08, s)
    tensor('op5.b', [CLASSES], T_INT32, qb, sb, zb)
    tensor('op5.out', [1, 1, 1, CLASSES], T_UINT8, None, np.array([0.1], F32), np.array([128]))
    # op6: RESHAPE to [1, 5] (its shape as a constant int32 tensor); op7: SOFTMAX.
    tensor('op6.shape', [2], T_INT32, np.array([1, CLASSES], np.int32))
    tensor('op6.out', [1, CLASSES], T_UINT8, None, np.array([0.1], F32), np.array([128]))
    tensor('op7.out', [1, CLASSES], T_UINT8, None, np.array([1 / 256], F32), np.array([0]))

    # Tensor ids in a converter-like jumble: the input first, the rest shuffled.
    names = list(t)
    order = ['input'] + [names[1:][i] for i in rng.permutation(len(names) - 1)]
    ids = {name: i for i, name in enumerate(order)}
    ops = [
        dict(code=CONV_2D, ins=['input', 'op0.w', 'op0.b'], out='op0.out', stride=2, padding=SAME, act=ACT_RELU6),
        dict(code=DEPTHWISE_CONV_2D, ins=['op0.out', 'op1.w', 'op1.b'], out='op1.out', stride=1, padding=SAME, act=ACT_RELU6),
        dict(code=CONV_2D, ins=['op1.out', 'op2.w', 'op2.b'], out='op2.out', stride=1, padding=SAME, act=ACT_NONE),
        dict(code=ADD, ins=['op2.out', 'op0.out'], out='op3.out', act=ACT_NONE),
        dict(code=AVERAGE_POOL_2D, ins=['op3.out'], out='op4.out', stride=1, padding=VALID, kernel=4, act=ACT_NONE),
        dict(code=CONV_2D, ins=['op4.out', 'op5.w', 'op5.b'], out='op5.out', stride=1, padding=SAME, act=ACT_NONE),
        dict(code=RESHAPE, ins=['op5.out', 'op6.shape'], out='op6.out'),
        dict(code=SOFTMAX, ins=['op6.out'], out='op7.out'),
    ]
    return t, order, ids, ops


def float_weights(t):
    """The dequantized float32 weights in ConvLens's layouts, by op list name."""
    out = {}
    for i in (0, 1, 2, 5):
        w, b = t[f'op{i}.w'], t[f'op{i}.b']
        d = dequant(w['data'], w['scale'], w['zero'], w['qdim'])
        # conv [out, kh, kw, in] -> (out, in, kh, kw); depthwise [1, kh, kw, C] -> (C, 1, kh, kw)
        out[f'op{i}.weight'] = np.ascontiguousarray(d.transpose(3, 0, 1, 2) if i == 1 else d.transpose(0, 3, 1, 2))
        out[f'op{i}.bias'] = dequant(b['data'], b['scale'], b['zero'], 0)
    return out


def tf_same_pad(x, k, stride):
    """TensorFlow's SAME padding of an NCHW tensor: total = max((ceil(n / s) - 1) s + k - n, 0), before = total // 2."""
    pads = []
    for n in (x.shape[3], x.shape[2]):  # F.pad wants (left, right, top, bottom)
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def tiny_forward(w, image, same=tf_same_pad):
    """The tiny network in float64 on a [3, 8, 8] image in [0, 1]; returns (logits, probabilities)."""
    W = {k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}
    x = torch.from_numpy(image.astype(np.float64))[None]
    x = (x * 255.0 - IN_ZERO) * float(F32(IN_SCALE))  # the uint8 input's dequantization, on b = 255 x
    a0 = F.conv2d(same(x, 3, 2), W['op0.weight'], W['op0.bias'], stride=2).clamp(0, 6)
    a1 = F.conv2d(same(a0, 3, 1), W['op1.weight'], W['op1.bias'], groups=8).clamp(0, 6)
    a2 = F.conv2d(a1, W['op2.weight'], W['op2.bias'])
    a3 = a2 + a0
    a4 = F.avg_pool2d(a3, 4)
    logits = F.conv2d(a4, W['op5.weight'], W['op5.bias']).reshape(-1)
    return logits.numpy(), torch.softmax(logits, 0).numpy()


# ---------------------------------------------------------------------------------------------------------------
# The flatbuffer

def build_tflite(t, order, ids, ops):
    b = flatbuffers.Builder(4096)

    def ivec(xs, width=4):
        b.StartVector(width, len(xs), width)
        for x in reversed(list(xs)):
            (b.PrependInt32 if width == 4 else b.PrependInt64)(int(x))
        return b.EndVector()

    def fvec(xs):
        b.StartVector(4, len(xs), 4)
        for x in reversed(list(xs)):
            b.PrependFloat32(float(x))
        return b.EndVector()

    def offsets(offs):
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    def bytes_vec(data):
        b.StartVector(1, len(data), 16)  # schema: Buffer.data (force_align: 16)
        for x in reversed(data):
            b.PrependUint8(x)
        return b.EndVector()

    # Buffer data first, so that it lies at the end of the file. The first one made is op2's 64 weight bytes
    # (a multiple of 16: no padding after it), so the file's last byte is a weight byte tflite.rs must read and
    # every strict prefix of the file is truncated somewhere the reader looks.
    consts = [n for n in order if t[n]['data'] is not None]
    consts.sort(key=lambda n: n != 'op2.w')
    data_of = {n: bytes_vec(t[n]['data'].astype(t[n]['data'].dtype.newbyteorder('<')).tobytes()) for n in consts}
    # Buffers: 0 empty (convention), then one per tensor in id order (empty for activations, as converters do).
    buffer_tables = []
    b.StartObject(1)
    buffer_tables.append(b.EndObject())
    for n in order:
        b.StartObject(1)
        if n in data_of:
            b.PrependUOffsetTRelativeSlot(0, data_of[n], 0)
        buffer_tables.append(b.EndObject())
    buffers = offsets(buffer_tables)

    tensors = []
    for n in order:
        x = t[n]
        name = b.CreateString(n)
        shape = ivec(x['shape'])
        q = None
        if x['scale'] is not None:
            scale, zero = fvec(x['scale']), ivec(x['zero'], 8)
            b.StartObject(7)  # QuantizationParameters: min 0, max 1, scale 2, zero_point 3, .., quantized_dimension 6
            b.PrependUOffsetTRelativeSlot(2, scale, 0)
            b.PrependUOffsetTRelativeSlot(3, zero, 0)
            b.PrependInt32Slot(6, x['qdim'], 0)
            q = b.EndObject()
        b.StartObject(5)  # Tensor: shape 0, type 1, buffer 2, name 3, quantization 4
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        b.PrependUint8Slot(1, x['type'], 0)
        b.PrependUint32Slot(2, 1 + ids[n], 0)
        b.PrependUOffsetTRelativeSlot(3, name, 0)
        if q is not None:
            b.PrependUOffsetTRelativeSlot(4, q, 0)
        tensors.append(b.EndObject())
    tensors = offsets(tensors)

    codes = []  # distinct builtin codes in first-use order
    for op in ops:
        if op['code'] not in codes:
            codes.append(op['code'])
    operators = []
    for op in ops:
        c = op['code']
        if c == CONV_2D:  # Conv2DOptions: padding 0, stride_w 1, stride_h 2, fused_activation_function 3
            b.StartObject(6)
            b.PrependUint8Slot(0, op['padding'], 0)
            b.PrependInt32Slot(1, op['stride'], 0)
            b.PrependInt32Slot(2, op['stride'], 0)
            b.PrependUint8Slot(3, op['act'], 0)
            opt_type = OPT_CONV
        elif c == DEPTHWISE_CONV_2D:  # padding 0, stride_w 1, stride_h 2, depth_multiplier 3, fused act 4
            b.StartObject(7)
            b.PrependUint8Slot(0, op['padding'], 0)
            b.PrependInt32Slot(1, op['stride'], 0)
            b.PrependInt32Slot(2, op['stride'], 0)
            b.PrependInt32Slot(3, 1, 0)
            b.PrependUint8Slot(4, op['act'], 0)
            opt_type = OPT_DEPTHWISE
        elif c == AVERAGE_POOL_2D:  # Pool2DOptions: padding 0, stride_w 1, stride_h 2, filter_width 3,
            b.StartObject(6)  # filter_height 4, fused_activation_function 5
            b.PrependUint8Slot(0, op['padding'], 0)
            b.PrependInt32Slot(1, op['stride'], 0)
            b.PrependInt32Slot(2, op['stride'], 0)
            b.PrependInt32Slot(3, op['kernel'], 0)
            b.PrependInt32Slot(4, op['kernel'], 0)
            b.PrependUint8Slot(5, op['act'], 0)
            opt_type = OPT_POOL
        elif c == ADD:  # AddOptions: fused_activation_function 0
            b.StartObject(1)
            b.PrependUint8Slot(0, op['act'], 0)
            opt_type = OPT_ADD
        elif c == RESHAPE:  # ReshapeOptions: new_shape 0
            new_shape = ivec([1, CLASSES])
            b.StartObject(1)
            b.PrependUOffsetTRelativeSlot(0, new_shape, 0)
            opt_type = OPT_RESHAPE
        elif c == SOFTMAX:  # SoftmaxOptions: beta 0
            b.StartObject(1)
            b.PrependFloat32Slot(0, 1.0, 0.0)
            opt_type = OPT_SOFTMAX
        options = b.EndObject()
        ins, outs = ivec([ids[n] for n in op['ins']]), ivec([ids[op['out']]])
        b.StartObject(5)  # Operator: opcode_index 0, inputs 1, outputs 2, builtin_options_type 3, builtin_options 4
        b.PrependUint32Slot(0, codes.index(c), 0)
        b.PrependUOffsetTRelativeSlot(1, ins, 0)
        b.PrependUOffsetTRelativeSlot(2, outs, 0)
        b.PrependUint8Slot(3, opt_type, 0)
        b.PrependUOffsetTRelativeSlot(4, options, 0)
        operators.append(b.EndObject())
    operators = offsets(operators)

    inputs, outputs = ivec([ids['input']]), ivec([ids['op7.out']])
    sg_name = b.CreateString('main')
    b.StartObject(5)  # SubGraph: tensors 0, inputs 1, outputs 2, operators 3, name 4
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, operators, 0)
    b.PrependUOffsetTRelativeSlot(4, sg_name, 0)
    subgraphs = offsets([b.EndObject()])

    code_tables = []
    for c in codes:
        b.StartObject(4)  # OperatorCode: deprecated_builtin_code 0 (int8), custom_code 1, version 2, builtin_code 3
        if c != SOFTMAX:  # SOFTMAX as an old converter writes it: the deprecated field only
            b.PrependInt32Slot(3, c, 0)
        b.PrependInt8Slot(0, c, 0)
        b.PrependInt32Slot(2, 1, 1)
        code_tables.append(b.EndObject())
    code_vec = offsets(code_tables)

    description = b.CreateString('ConvLens loader fixture (scripts/make_loader_fixtures.py)')
    b.StartObject(5)  # Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, code_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(3, description, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b'TFL3')
    out = bytes(b.Output())
    assert out[4:8] == b'TFL3'
    return out


def op_list(t, ids, ops):
    """The op list that tflite.rs makes of the .tflite, in the data directory's format."""
    names = {CONV_2D: 'CONV_2D', DEPTHWISE_CONV_2D: 'DEPTHWISE_CONV_2D', ADD: 'ADD', AVERAGE_POOL_2D: 'AVERAGE_POOL_2D',
             RESHAPE: 'RESHAPE', SOFTMAX: 'SOFTMAX'}
    acts = {ACT_NONE: 'none', ACT_RELU6: 'relu6'}
    out = []
    for i, op in enumerate(ops):
        j = {'op': names[op['code']], 'inputs': [ids[n] for n in op['ins']], 'outputs': [ids[op['out']]]}
        if op['code'] in (CONV_2D, DEPTHWISE_CONV_2D):
            j.update(stride=[op['stride']] * 2, padding='SAME' if op['padding'] == SAME else 'VALID', act=acts[op['act']],
                     weight=f'op{i}.weight', bias=f'op{i}.bias')
        elif op['code'] == ADD:
            j['act'] = acts[op['act']]
        elif op['code'] == AVERAGE_POOL_2D:
            j.update(kernel=[op['kernel']] * 2, stride=[op['stride']] * 2, padding='VALID')
        out.append(j)
    return {'source': 'tiny.tflite', 'input_tensor': ids['input'], 'output_tensor': ids['op7.out'],
            'input_shape_nhwc': [1, 8, 8, 3], 'input_quant': {'scale': IN_SCALE, 'zero_point': IN_ZERO},
            'layout': 'weights OIHW (depthwise: C,1,kh,kw), float32', 'ops': out}


def check_with_tflite_package(data, t, order, ids):
    """An independent parse with the `tflite` package (TensorFlow's schema, generated code), if installed."""
    try:
        import tflite
    except ImportError:
        print('  (the tflite package is not installed: skipping the independent parse)')
        return
    m = tflite.Model.GetRootAsModel(data, 0)
    assert tflite.Model.ModelBufferHasIdentifier(data, 0)
    sg = m.Subgraphs(0)
    assert sg.TensorsLength() == len(order) and m.BuffersLength() == len(order) + 1
    for i, n in enumerate(order):
        x, want = sg.Tensors(i), t[n]
        assert x.Name().decode() == n and list(x.ShapeAsNumpy()) == want['shape'] and x.Type() == want['type'], n
        if want['data'] is not None:
            assert m.Buffers(x.Buffer()).DataAsNumpy().tobytes() == want['data'].tobytes(), n
        if want['scale'] is not None:
            q = x.Quantization()
            assert np.array_equal(q.ScaleAsNumpy(), want['scale']) and np.array_equal(q.ZeroPointAsNumpy(), want['zero'])
            assert q.QuantizedDimension() == want['qdim'], n
    kinds = {tflite.BuiltinOperator.CONV_2D: tflite.Conv2DOptions, tflite.BuiltinOperator.DEPTHWISE_CONV_2D: tflite.DepthwiseConv2DOptions,
             tflite.BuiltinOperator.AVERAGE_POOL_2D: tflite.Pool2DOptions}
    seen = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        oc = m.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        line = f'{i}: {code} in {list(op.InputsAsNumpy())} out {list(op.OutputsAsNumpy())}'
        if code in kinds:
            o = kinds[code]()
            o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            line += f' padding {o.Padding()} stride {o.StrideH()}x{o.StrideW()} act {o.FusedActivationFunction()}'
            if code == tflite.BuiltinOperator.AVERAGE_POOL_2D:
                line += f' filter {o.FilterHeight()}x{o.FilterWidth()}'
        seen.append(line)
    print('  tflite package reads:\n    ' + '\n    '.join(seen))
    # The last byte of the file is a byte of op2's weights (see build_tflite).
    w = sg.Tensors(ids['op2.w'])
    buf = m.Buffers(w.Buffer())
    o = flatbuffers.number_types.UOffsetTFlags.py_type(buf._tab.Offset(4))
    start = buf._tab.Vector(o)
    assert start + buf.DataLength() == len(data), (start, buf.DataLength(), len(data))


# ---------------------------------------------------------------------------------------------------------------
# The TF.js layers model

def tfjs_model():
    rng = np.random.default_rng(7)
    H, W, C = 10, 8, 3
    k1 = rng.normal(0, 0.4, (3, 3, 3, 4)).astype(F32)  # Keras [kh, kw, in, out]
    b1 = rng.normal(0, 0.1, 4).astype(F32)
    k2 = rng.normal(0, 0.3, (3, 3, 4, 6)).astype(F32)
    b2 = rng.normal(0.05, 0.1, 6).astype(F32)
    kd = rng.normal(0, 0.3, (4 * 3 * 6, CLASSES)).astype(F32)  # [in (H, W, C order), out]
    bd = rng.normal(0, 0.1, CLASSES).astype(F32)
    weights = [('conv_1/kernel', k1), ('conv_1/bias', b1), ('conv_2/kernel', k2), ('conv_2/bias', b2),
               ('output/kernel', kd), ('output/bias', bd)]

    def conv(name, filters, padding, activation, first=False):
        c = {'name': name, 'trainable': True, 'dtype': 'float32', 'filters': filters, 'kernel_size': [3, 3],
             'strides': [1, 1], 'padding': padding, 'data_format': 'channels_last', 'dilation_rate': [1, 1],
             'activation': activation, 'use_bias': True}
        if first:
            c = {'name': name, 'trainable': True, 'batch_input_shape': [None, H, W, C], **c}
        return {'class_name': 'Conv2D', 'config': c}

    layers = [
        conv('conv_1', 4, 'valid', 'linear', first=True),
        {'class_name': 'Activation', 'config': {'name': 'relu_1', 'trainable': True, 'dtype': 'float32', 'activation': 'relu'}},
        conv('conv_2', 6, 'same', 'relu'),
        {'class_name': 'MaxPooling2D', 'config': {'name': 'max_pool', 'trainable': True, 'dtype': 'float32', 'pool_size': [2, 2],
                                                  'padding': 'valid', 'strides': [2, 2], 'data_format': 'channels_last'}},
        {'class_name': 'Flatten', 'config': {'name': 'flatten', 'trainable': True, 'dtype': 'float32', 'data_format': 'channels_last'}},
        {'class_name': 'Dense', 'config': {'name': 'output', 'trainable': True, 'dtype': 'float32', 'units': CLASSES,
                                           'activation': 'softmax', 'use_bias': True}},
    ]
    blob = b''.join(v.astype('<f4').tobytes() for _, v in weights)
    cut = 1000  # inside conv_2/kernel: the converter splits shards at a byte count, not between tensors
    shards = {'group1-shard1of2.bin': blob[:cut], 'group1-shard2of2.bin': blob[cut:]}
    model = {
        'format': 'layers-model',
        'generatedBy': 'scripts/make_loader_fixtures.py (the layout of keras 2.2.4-tf)',
        'convertedBy': None,
        'modelTopology': {'keras_version': '2.2.4-tf', 'backend': 'tensorflow',
                          'model_config': {'class_name': 'Sequential', 'config': {'name': 'tiny_sequential', 'layers': layers}}},
        'weightsManifest': [{'paths': list(shards), 'weights': [{'name': n, 'shape': list(v.shape), 'dtype': 'float32'} for n, v in weights]}],
    }
    return model, shards, dict(weights), (C, H, W)


def keras_forward(w, image, flatten_hwc=True):
    """Keras semantics in float64 on a [C, H, W] image in [0, 1]; returns (logits, probabilities)."""
    T = {k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}
    x = torch.from_numpy(image.astype(np.float64))[None]
    kernel = lambda k: k.permute(3, 2, 0, 1)  # noqa: E731  [kh, kw, in, out] -> (out, in, kh, kw)
    x = F.conv2d(x, kernel(T['conv_1/kernel']), T['conv_1/bias']).relu()
    x = F.conv2d(x, kernel(T['conv_2/kernel']), T['conv_2/bias'], padding=1).relu()  # 'same': 3x3 at stride 1
    x = F.max_pool2d(x, 2)
    flat = (x.permute(0, 2, 3, 1) if flatten_hwc else x).reshape(1, -1)  # Keras flattens channels-last maps H, W, C
    logits = (flat @ T['output/kernel'] + T['output/bias']).reshape(-1)
    return logits.numpy(), torch.softmax(logits, 0).numpy()


# ---------------------------------------------------------------------------------------------------------------

def images(rng, c, h, w):
    """Two uint8 images [C, H, W]: a smooth colour pattern, and noise around a blue."""
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([255 * xx / (w - 1), 255 * yy / (h - 1), 127.5 + 127.5 * np.sin((xx + 2 * yy) / 2.0)])[:c]
    noise = np.clip(np.array([20, 60, 220])[:c, None, None] + rng.integers(-30, 31, (c, h, w)), 0, 255)
    return [np.round(smooth).astype(np.uint8), noise.astype(np.uint8)]


def to_image(pixels):
    return pixels.astype(F32) / F32(255)  # what ConvLens's test feeds: u8 as f32 / 255.0


def dump(path, value):
    """JSON with indent 1, lists of numbers on one line."""
    text = json.dumps(value, indent=1)
    text = re.sub(r'\[[-0-9.a-z,\s]*\]', lambda m: '[' + ', '.join(m.group(0)[1:-1].split()).replace(',,', ',') + ']', text)
    with open(path, 'w') as f:
        f.write(text + '\n')


def rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


def main():
    os.makedirs(os.path.join(OUT, 'tiny_tfjs'), exist_ok=True)
    rng = np.random.default_rng(11)
    expected = {'generator': 'scripts/make_loader_fixtures.py', 'torch': torch.__version__.split('+')[0],
                'image': 'pixels (uint8, C,H,W, row-major) / 255 in float32; references in float64 from the float32 weights'}

    # The TFLite model and its op-list twin.
    t, order, ids, ops = tiny_network()
    data = build_tflite(t, order, ids, ops)
    with open(os.path.join(OUT, 'tiny.tflite'), 'wb') as f:
        f.write(data)
    fw = float_weights(t)
    save_file(fw, os.path.join(OUT, 'tiny_oplist.safetensors'))
    dump(os.path.join(OUT, 'tiny_oplist.json'), op_list(t, ids, ops))
    check_with_tflite_package(data, t, order, ids)
    cases = []
    for px in images(rng, 3, 8, 8):
        logits, probs = tiny_forward(fw, to_image(px))
        # The fixture tells a wrong reading apart: symmetric padding, or per-tensor scales for the depthwise.
        sym = lambda x, k, s: F.pad(x, [(k - 1) // 2] * 4)  # noqa: E731
        assert rel(tiny_forward(fw, to_image(px), same=sym)[0], logits) > 1e-2
        bad = dict(fw)
        w1 = t['op1.w']
        bad['op1.weight'] = np.ascontiguousarray(dequant(w1['data'], w1['scale'][:1], w1['zero'][:1], None).transpose(3, 0, 1, 2))
        assert rel(tiny_forward(bad, to_image(px))[0], logits) > 1e-2
        cases.append({'pixels': px.reshape(-1).tolist(), 'logits': logits.tolist(), 'probs': probs.tolist()})
    tops = [int(np.argmax(c['probs'])) for c in cases]
    print(f'  tiny: {len(data)} bytes; top classes {tops}; probs {[round(max(c["probs"]), 3) for c in cases]}')
    assert len(set(tops)) == 2 and all(max(c['probs']) < 0.95 for c in cases)
    expected['tiny'] = {
        'tflite': 'tiny.tflite', 'op_list': 'tiny_oplist.json', 'weights': 'tiny_oplist.safetensors',
        'input_quant': {'scale': IN_SCALE, 'zero_point': IN_ZERO}, 'shape': [3, 8, 8], 'classes': CLASSES,
        'param_count': int(sum(v.size for v in fw.values())),
        'layers': ['input', 'normalize', 'op0', 'op1', 'op2', 'op3', 'op4', 'op5', 'op7'],
        'images': cases,
    }

    # The TF.js model.
    model, shards, kw, (c, h, w) = tfjs_model()
    dump(os.path.join(OUT, 'tiny_tfjs', 'model.json'), model)
    for name, blob in shards.items():
        with open(os.path.join(OUT, 'tiny_tfjs', name), 'wb') as f:
            f.write(blob)
    cases = []
    for px in images(rng, c, h, w):
        logits, probs = keras_forward(kw, to_image(px))
        assert rel(keras_forward(kw, to_image(px), flatten_hwc=False)[0], logits) > 1e-2
        cases.append({'pixels': px.reshape(-1).tolist(), 'logits': logits.tolist(), 'probs': probs.tolist()})
    tops = [int(np.argmax(c['probs'])) for c in cases]
    print(f'  tfjs: top classes {tops}; probs {[round(max(c["probs"]), 3) for c in cases]}')
    assert len(set(tops)) == 2
    expected['tfjs'] = {
        'model': 'tiny_tfjs/model.json', 'shape': [c, h, w], 'classes': CLASSES,
        'param_count': int(sum(v.size for v in kw.values())),
        'layers': ['input', 'conv_1', 'relu_1', 'conv_2', 'max_pool', 'output', 'output_softmax'],
        'pooled_shape': [6, 4, 3],
        'images': cases,
    }
    dump(os.path.join(OUT, 'expected.json'), expected)
    for root, _, files in os.walk(OUT):
        for n in sorted(files):
            p = os.path.join(root, n)
            print(f'  {os.path.relpath(p, OUT)}: {os.path.getsize(p)} bytes')


if __name__ == '__main__':
    main()
