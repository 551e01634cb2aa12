// Types of the `convlens` package (www/convlens-view.js, www/engine-client.js; docs/ENGINE_API.md).

/** The views an element can show. */
export type ViewName = 'layers' | 'train' | 'attribution' | 'occlusion' | 'patches' | 'tsne' | 'landscape' | 'visualize' | 'invert'
  | 'adversarial' | 'dream' | 'style' | 'toy2d';

/**
 * <convlens-view>: one ConvLens view; attributes net (a preset or a model's URL), weights, labels,
 * dataset, view, image, target, methods, backend, controls, autorun, data and any setting.
 */
export declare class ConvLensView extends HTMLElement {
  /** The view's last state (a run's result), or null. */
  readonly state: unknown;
  /** The view's settings as its form has them. */
  readonly settings: Record<string, unknown>;
  /** Resolves when the net, its data and the view are up (set once the element has started). */
  ready: Promise<void> | null;
  /** This element's engine client (a session on the page's shared worker). */
  client: EngineClient | null;
  /** Runs the view (starting the element first if needed). */
  run(): Promise<unknown>;
}

export declare const VIEWS: Record<ViewName, { technique: string; dataset?: boolean; image?: boolean }>;

/** The one engine worker every element of the page shares. */
export declare function sharedWorker(): EngineWorker;

/** Where the worker (and, beside it, pkg/ with the wasm engine) is: default the package's www/. */
export declare function setEngineBase(url: string | URL): void;

/** One engine worker and the sessions it serves. */
export declare class EngineWorker {
  constructor();
  readonly clients: EngineClient[];
  terminate(): void;
}

export interface DatasetInfo { name: string; shape: [number, number, number]; classes: string[]; train: number; test: number }

/** Promise API over the worker (docs/ENGINE_API.md); events 'panic', 'restarted', 'error', 'progress'. */
export declare class EngineClient extends EventTarget {
  constructor(options?: { worker?: EngineWorker | null });
  readonly session: string;
  /** The last init's backend, WebGPU availability and engine build. */
  info: { backend: 'cpu' | 'webgpu'; webgpu: boolean; build: 'cpu' | 'webgpu' } | null;
  summary: unknown;
  readonly paused: boolean;
  setPaused(paused: boolean): void;
  request(cmd: string, args?: Record<string, unknown>, transfer?: Transferable[]): Promise<any>;
  init(backend?: 'cpu' | 'webgpu' | 'auto'): Promise<{ backend: 'cpu' | 'webgpu'; webgpu: boolean; build: 'cpu' | 'webgpu' }>;
  load(spec: string | object, weights?: Uint8Array | null, seed?: number): Promise<unknown>;
  loadDataset(name: 'mnist' | 'mnist5k' | 'cifar10', base: string | URL, maxTrainSheets?: number): Promise<DatasetInfo>;
  forward(input: Float32Array): Promise<Float32Array>;
  /** Every layer's output for one image: views into one buffer. */
  activations(input: Float32Array): Promise<Float32Array[]>;
  /** Every layer's activations, gradients and weights (docs/ENGINE_API.md's Probe); the weights, kept from the probe that sent them while unchanged, are read-only. */
  probe(input: Float32Array, objective: unknown): Promise<any>;
  /** Gives a probe's or activations' result back once nothing reads it: the next call of its kind reuses its buffer (its arrays become empty). */
  release(result: unknown): void;
  /** On the CPU, SmoothGrad's and integrated gradients' samples split among `workers` engines (default: one per core, at most 8). */
  attribute(input: Float32Array, objective: unknown, settings?: Record<string, unknown>, options?: { workers?: number }): Promise<unknown>;
  /** On the CPU, patches and the loss surface split among `workers` engines (default: one per core, at most 8); t-SNE runs on one. */
  datasetView(kind: 'patches' | 'tsne' | 'landscape', settings: Record<string, unknown>,
    options?: { budgetMs?: number; onProgress?: (state: any) => void; signal?: AbortSignal | null; workers?: number }): Promise<any>;
  restart(options?: { backend?: string; weights?: Uint8Array }): Promise<unknown>;
  switchBackend(backend: 'cpu' | 'webgpu'): Promise<unknown>;
  terminate(): void;
}
