// The `convlens` package's entry: defines <convlens-view> (importing it is enough) and exports the
// engine client for authors who script. Everything it loads (the worker, the wasm engine, the
// views, the built-in data) is found relative to this module; `setEngineBase` moves it.
export { ConvLensView, VIEWS, sharedWorker } from './www/convlens-view.js';
export { EngineClient, EngineWorker, setEngineBase } from './www/engine-client.js';
