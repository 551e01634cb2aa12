#!/usr/bin/env node
// A Keras functional model with every layer ConvLens's TF.js reader takes (crates/core/src/tfjs.rs),
// made and saved by TensorFlow.js's own layers API (the same model.json/shard format
// tensorflowjs_converter writes for a Keras 2 model), with TensorFlow.js's logits and input gradient
// as the reference: tests/fixtures/keras/graph/.
//
//   node scripts/make_keras_fixtures.mjs
//
// Writes
//   model.json, group1-shard1of1.bin   the model (seeded random weights; batchnorm statistics set to
//                                      plausible values so the layer is not an identity)
//   reference.json                     two images (C, H, W in [0, 1], float32 values) and, for each,
//                                      TensorFlow.js's logits (the Add before the final softmax; float32,
//                                      CPU backend) and, from scripts/keras_reference.py (an independent
//                                      float64 evaluation of the graph in PyTorch, checked against
//                                      TensorFlow.js's logits), the logits and the gradient of the top
//                                      logit with respect to the image (C, H, W)
//
// Layers: InputLayer 20x18x3 (not square), Rescaling, ZeroPadding2D (asymmetric), Conv2D 3x3 stride 2
// 'same' relu, BatchNormalization, DepthwiseConv2D 3x3 'same' x2, ReLU(max_value 6), Conv2D 1x1 no bias,
// Add, LeakyReLU, MaxPooling2D 2 'same' (odd side: padding at the end only), AveragePooling2D 3 stride 1
// 'same', AveragePooling2D 2 'same' (odd side), Concatenate, SeparableConv2D 3x3 'same' relu, Conv2D 3x3 dilation 2 'same', Activation hard_sigmoid and tanh,
// GlobalAveragePooling2D, Flatten, Dropout, Dense x2, Add, Activation softmax.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'tests/fixtures/keras/graph');
await tf.setBackend('cpu');

// A small seeded generator (mulberry32) so the fixture is the same on every run.
let seed = 20261201;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const init = (scale) => tf.initializers.randomUniform({ minval: -scale, maxval: scale, seed: Math.floor(rand() * 1e6) });

const [H, W, C] = [20, 18, 3];
const input = tf.input({ shape: [H, W, C], name: 'image' });
let x = tf.layers.rescaling({ scale: 2, offset: -1, name: 'rescale' }).apply(input);
x = tf.layers.zeroPadding2d({ padding: [[1, 0], [0, 1]], name: 'pad' }).apply(x);
x = tf.layers
  .conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: init(0.4), biasInitializer: init(0.2) })
  .apply(x);
const bn = tf.layers.batchNormalization({ name: 'bn1', epsilon: 1e-3 });
x = bn.apply(x);
let a = tf.layers
  .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', name: 'dw', depthwiseInitializer: init(0.5), biasInitializer: init(0.2) })
  .apply(x);
a = tf.layers.reLU({ maxValue: 6, name: 'relu6' }).apply(a);
const b = tf.layers.conv2d({ filters: 16, kernelSize: 1, useBias: false, name: 'project', kernelInitializer: init(0.5) }).apply(x);
let s = tf.layers.add({ name: 'residual' }).apply([a, b]);
s = tf.layers.leakyReLU({ alpha: 0.2, name: 'leaky' }).apply(s);
const p = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'maxpool' }).apply(s);
const q = tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avgpool' }).apply(p);
const p2 = tf.layers.averagePooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'avgpool2' }).apply(s);
let c = tf.layers.concatenate({ name: 'concat' }).apply([p, q, p2]);
c = tf.layers
  .separableConv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'sep', depthwiseInitializer: init(0.5), pointwiseInitializer: init(0.3), biasInitializer: init(0.2) })
  .apply(c);
c = tf.layers
  .conv2d({ filters: 12, kernelSize: 3, dilationRate: 2, padding: 'same', name: 'conv2', kernelInitializer: init(0.25), biasInitializer: init(0.2) })
  .apply(c);
c = tf.layers.activation({ activation: 'hardSigmoid', name: 'hsig' }).apply(c);
c = tf.layers.activation({ activation: 'tanh', name: 'tanh' }).apply(c);
const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(c);
let f = tf.layers.flatten({ name: 'flatten' }).apply(c);
f = tf.layers.dropout({ rate: 0.3, name: 'drop' }).apply(f);
const d1 = tf.layers.dense({ units: 10, name: 'fc_flat', kernelInitializer: init(0.2), biasInitializer: init(0.2) }).apply(f);
const d2 = tf.layers.dense({ units: 10, name: 'fc_gap', kernelInitializer: init(1.0), biasInitializer: init(0.2) }).apply(g);
const logits = tf.layers.add({ name: 'logits' }).apply([d1, d2]);
const probs = tf.layers.activation({ activation: 'softmax', name: 'probs' }).apply(logits);
const model = tf.model({ inputs: input, outputs: probs, name: 'keras_graph' });

// Batch-norm statistics and affine terms away from the identity.
const ch = 8;
const vec = (lo, hi) => tf.tensor1d(Array.from({ length: ch }, () => lo + (hi - lo) * rand()));
bn.setWeights([vec(0.5, 1.5), vec(-0.3, 0.3), vec(-0.5, 0.5), vec(0.3, 2.0)]);

// Images: smooth patterns plus noise, in [0, 1], HWC for TensorFlow.js.
const images = [0, 1].map((k) => {
  const v = new Float32Array(H * W * C);
  for (let y = 0; y < H; y++)
    for (let xx = 0; xx < W; xx++)
      for (let ci = 0; ci < C; ci++) {
        const smooth = 0.5 + 0.35 * Math.sin((y + 1) * (0.3 + 0.2 * k) + xx * (0.2 + 0.1 * ci) + ci);
        v[(y * W + xx) * C + ci] = Math.min(1, Math.max(0, smooth + 0.15 * (rand() - 0.5)));
      }
  return v;
});
const toCHW = (hwc) => {
  const o = new Array(C * H * W);
  for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) for (let ci = 0; ci < C; ci++) o[(ci * H + y) * W + xx] = hwc[(y * W + xx) * C + ci];
  return o;
};

// TensorFlow.js's logits only: its gradients are not the reference. TF.js 4.22 has no gradient of a
// dilated convolution, and its gradient of a 'same' pool whose padding is odd (the extra row at
// the bottom) is wrong: central differences of its own forward pass agree with ConvLens there
// and not with tf.grad. The reference is computed by scripts/keras_reference.py instead.
const toLogits = tf.model({ inputs: input, outputs: logits });
const reference = { generator: 'scripts/make_keras_fixtures.mjs', tfjs: tf.version.tfjs, shape: [C, H, W], images: [] };
for (const hwc of images) {
  const img = tf.tensor4d(hwc, [1, H, W, C]);
  reference.images.push({ image: toCHW(hwc), tfjs_logits: Array.from(toLogits.predict(img).dataSync()) });
}

fs.mkdirSync(out, { recursive: true });
await model.save(
  tf.io.withSaveHandler(async (artifacts) => {
    const shard = 'group1-shard1of1.bin';
    fs.writeFileSync(path.join(out, shard), Buffer.from(artifacts.weightData));
    const json = {
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy ?? null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: [shard], weights: artifacts.weightSpecs }],
    };
    fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(json));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }),
);
fs.writeFileSync(path.join(out, 'reference.json'), JSON.stringify(reference));
// The float64 reference: an independent evaluation of the Keras graph in PyTorch.
const python = process.env.CONVLENS_TORCH_PYTHON ?? path.join(process.env.HOME, '.cache/convlens/torchenv/bin/python');
const r = spawnSync(python, [path.join(root, 'scripts/keras_reference.py'), out], { stdio: 'inherit' });
if (r.status !== 0) throw new Error(`scripts/keras_reference.py failed (${python}; npm run onnx-fixtures installs that environment)`);
console.log(`wrote ${out}: ${model.countParams()} parameters`);
