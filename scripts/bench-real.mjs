// npm run bench:real: real nets at full speed on the CPU, the figures of issue 16 in one run —
// MobileNetV2 and ResNet-18 at 224x224 (the ONNX fixtures: the repository's export script, seeded
// random weights): ConvLens's forward against onnxruntime-web (wasm, 1 thread, SIMD) in one
// headless Chromium, its input-gradient map against its own forward, and natively against
// PyTorch. This is bench:onnx on those two models (ONNX_MODELS to change them); class
// visualization's steps per second are bench:optimize's, the worker pool's bench:attribution's
// and bench:dataset's.
process.env.ONNX_MODELS ??= 'resnet18,mobilenet_v2';
await import('./bench-onnx.mjs');
