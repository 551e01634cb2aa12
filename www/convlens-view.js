// <convlens-view>: one ConvLens view as an element of any page (lecture notes, a course site).
//
//   <script type="module" src="convlens/convlens-view.js"></script>
//   <convlens-view net="mnist" view="landscape" kind="line" controls="none"></convlens-view>
//
// Attributes: `net` (mnist, mnist5k, cifar10, tiny-vgg, mobilenet, or a model's URL: a .tflite, a
// TF.js model.json, a ConvLens .safetensors, or a ConvLens spec .json with `weights` = its
// .safetensors' URL; `labels` = a text file of class names), `dataset` (the net's dataset when it
// has two: mnist for the data directory's digits, mnist5k for the built-in ones; a model by URL
// takes mnist, mnist5k or cifar10 for `image` = an index), `view` (layers, train, patches, tsne,
// landscape, visualize, invert, adversarial, dream, style, attribution, occlusion, toy2d), `image` (a test image's
// index, or an image URL, for the image views), `target` (class:K, channel:LAYER:C or
// neuron:LAYER:C for a visualization; class:K, prob:K, channel:LAYER:C or neuron:LAYER:I for an
// attribution; class:K for occlusion; default: the predicted class), `methods` (attribution: the
// maps side by side, comma-separated; default "gradient, guided"),
// `backend` (cpu, webgpu, auto; default: the page's ?backend=, else cpu), `controls` ("none", or the
// settings' keys to show, comma-separated; default all), `autorun` (run once ready), `data` (the
// base URL of the data directory; default ../data/ from this module), and any setting of the view's
// technique by its key (`learningrate` or `learning-rate` for learningRate), clamped by the engine
// to its range. Every element of a page shares one engine worker (a session each); an element
// starts when it comes near the viewport and pauses its runs while it is out of it.
// Events: `ready` {summary}, `change` {settings}, `error` {error}. API: `el.state` (the view's
// last state), `el.settings`, `el.run()`, `el.client`.
//
// The views are the pages' own modules (www/views/); this file gives them what a page would
// (the engine client, the network, the image, a place for their settings) and draws nothing.
import { dataBase } from './config.js';
import { EngineClient, EngineWorker } from './engine-client.js';
import { datasetSamples, loadMobilenet, loadNetFromUrl, loadTfjs, styleImages, TINY_VGG_CLASSES } from './models.js';
import { fetchPreset } from './presets.js';
import { el } from './views/dom.js';
import { loadSquare } from './views/image-io.js';
import { convLayers, defaultLayer, imageAt, layerNamed, layerOptions, topClasses } from './views/view-ctx.js';
import { createPatchesView } from './views/ds-patches.js';
import { createTsneView } from './views/ds-tsne.js';
import { createLandscapeView } from './views/ds-landscape.js';
import { createVisualizePanel } from './views/opt-visualize.js';
import { createInversionPanel } from './views/opt-inversion.js';
import { createAdversarialPanel } from './views/opt-adversarial.js';
import { createDreamPanel } from './views/opt-dream.js';
import { createStylePanel } from './views/opt-style.js';
import { createAttributionPanel, createOcclusionPanel } from './views/attr-panel.js';
import { createLayersPanel } from './views/layers.js';
import { createTrainView } from './views/train-view.js';
import { createToy2dPanel, TOY_KEYS, TRAINER } from './views/toy2d-panel.js';

const BUILTIN = new URL('./data/', import.meta.url);
/** The data directory (datasets, pretrained nets) unless an element's `data` says otherwise: served at /data/ beside www/. */
const DATA = dataBase();
const STYLESHEET = new URL('./style.css', import.meta.url);
const UPLOT_CSS = new URL('./vendor/uPlot.min.css', import.meta.url);

/** The views an element can show: the technique whose settings it takes, and how it is made. */
export const VIEWS = {
  patches: { technique: 'patches', create: createPatchesView, dataset: true },
  tsne: { technique: 'tsne', create: createTsneView, dataset: true },
  landscape: { technique: 'landscape', create: createLandscapeView, dataset: true },
  visualize: { technique: 'visualize', create: createVisualizePanel, image: true },
  invert: { technique: 'invert', create: createInversionPanel, image: true },
  adversarial: { technique: 'attack', create: createAdversarialPanel, image: true },
  dream: { technique: 'dream', create: createDreamPanel, image: true },
  style: { technique: 'style', create: createStylePanel, image: true },
  layers: { technique: null, create: createLayersPanel, image: true },
  train: { technique: 'trainer', create: createTrainView, dataset: true },
  attribution: { technique: 'attribution', create: createAttributionPanel, image: true },
  occlusion: { technique: 'occlusion', create: createOcclusionPanel, image: true },
  // The 2-D classifier: its own small net and points (no `net`); toy, toy-seed, points, spec, seed,
  // warp and the trainer's settings as attributes; `autorun` trains.
  toy2d: { technique: null, create: createToy2dPanel, standalone: true, keys: [...TOY_KEYS, ...Object.keys(TRAINER)] },
};
const SCHEMAS = ['trainer', 'patches', 'tsne', 'landscape', 'visualize', 'invert', 'dream', 'style', 'attack', 'attribution', 'occlusion'];

/** The networks, with the dataset that goes with each (`data`: the data directory's URL). */
function nets(data) {
  return {
    mnist: { preset: 'mnist', dataset: 'mnist', base: data, fallback: 'mnist5k', datasets: { mnist: data, mnist5k: BUILTIN } },
    // The same net trained on the built-in digits only (the image classifier page's preset).
    mnist5k: { preset: 'mnist5k', dataset: 'mnist5k', base: BUILTIN, datasets: { mnist: data, mnist5k: BUILTIN } },
    cifar10: { preset: 'cifar10', dataset: 'cifar10', base: data },
    'tiny-vgg': { tfjs: new URL('tiny-vgg/', data), classes: TINY_VGG_CLASSES },
    mobilenet: { mobilenet: new URL('mobilenet/', data) },
  };
}

let sheetList = null;
/**
 * The pages' stylesheet for the elements' shadow roots (its :root rules made :host rules), and the
 * element's own rules: constructed sheets, one copy for every element, no inline <style> (a strict
 * Content-Security-Policy allows them).
 */
function sheets() {
  const load = (url) => fetch(url).then((r) => {
    if (!r.ok) throw new Error(`cannot load ${url}: HTTP ${r.status}`);
    return r.text();
  });
  sheetList ??= Promise.all([load(UPLOT_CSS), load(STYLESHEET)]).then(([uplotText, text]) => {
    const uplot = new CSSStyleSheet();
    uplot.replaceSync(uplotText);
    const page = new CSSStyleSheet();
    page.replaceSync(text.replace(/:root\b/g, ':host').replace(/(^|\})\s*body\s*\{/g, '$1 .cl-page {'));
    const own = new CSSStyleSheet();
    // Sized to the container: one column when narrow (a phone), pictures scaled down, and what
    // cannot shrink (a chart) scrolls inside the element rather than widening the page.
    // Room is kept for the view while it loads, so that the page moves less when it appears.
    own.replaceSync(':host { display: block; max-width: 100%; margin: 12px 0; overflow-x: auto; container-type: inline-size; } '
      + ':host(:not([data-ready])) { min-height: 420px; } '
      + '.cl-body canvas { max-width: 100%; } .cl-body .panel { margin: 0; } '
      + '.cl-status:empty { display: none; } .cl-status.error { color: var(--bad); } [hidden] { display: none !important; } '
      + '@container (max-width: 620px) { .opt-grid { grid-template-columns: 1fr; } .cl-body canvas { height: auto !important; } }');
    return [uplot, page, own];
  });
  return sheetList;
}

let shared = null;
/** The one engine worker every element of the page shares. */
export function sharedWorker() {
  shared ??= new EngineWorker();
  return shared;
}

/** A schema key's attribute names: `learningrate` and `learning-rate` for learningRate. */
function attributeNames(key) {
  return [key.toLowerCase(), key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)];
}

const RESERVED = new Set(['net', 'weights', 'labels', 'dataset', 'view', 'image', 'target', 'backend', 'controls', 'autorun', 'data', 'id', 'class', 'style', 'hidden', 'title']);

export class ConvLensView extends HTMLElement {
  #root;
  #body;
  #status;
  #started = false;
  #visible = true;
  #observer = null;
  #view = null;
  /** The settings the view last wrote (its form's values). */
  #settings = {};
  client = null;
  ready = null;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    this.#status = el('div.hint.cl-status', { role: 'status', text: 'waiting to come into view…' });
    this.#body = el('div.cl-body');
    this.#root.append(this.#status, this.#body);
    sheets().then((list) => { this.#root.adoptedStyleSheets = list; }, (e) => this.#report('ConvLens could not load its stylesheet', e));
  }

  connectedCallback() {
    if (this.#observer) return;
    // Start when near the viewport; pause runs while out of it (Distill's figures do this).
    this.#observer = new IntersectionObserver((entries) => {
      const near = entries.some((e) => e.isIntersecting);
      this.#visible = near;
      if (near && !this.#started) this.#start();
      this.client?.setPaused(!near);
    }, { rootMargin: '200px' });
    this.#observer.observe(this);
  }

  disconnectedCallback() {
    this.#observer?.disconnect();
    this.#observer = null;
    this.#view?.cancel?.();
    this.client?.terminate();
    this.client = null;
    this.#started = false;
  }

  /** The view's last state (a run's result), or null. */
  get state() {
    return this.#view?.state ?? null;
  }

  /** The view's settings as its form has them. */
  get settings() {
    return { ...this.#settings };
  }

  /** Runs the view (starting the element first if it has not started yet). */
  async run() {
    if (!this.#started) this.#start();
    await this.ready;
    return this.#view?.start?.();
  }

  #report(what, e) {
    console.error(what, e);
    this.#status.textContent = `${what}: ${e?.message ?? e}`;
    this.#status.classList.add('error');
    this.dispatchEvent(new CustomEvent('error', { detail: { error: e, message: `${what}: ${e?.message ?? e}` } }));
  }

  #start() {
    this.#started = true;
    this.ready = this.#boot().catch((e) => {
      this.#report('ConvLens could not show this view', e);
      throw e;
    });
    this.ready.catch(() => {});
  }

  async #boot() {
    const viewName = this.getAttribute('view') ?? 'landscape';
    const spec = VIEWS[viewName];
    if (!spec) throw new Error(`unknown view '${viewName}'; expected one of ${Object.keys(VIEWS).join(', ')}`);
    if (spec.standalone) return this.#bootStandalone(viewName, spec);
    const data = this.hasAttribute('data') ? new URL(this.getAttribute('data'), document.baseURI) : DATA;
    const netName = this.getAttribute('net') ?? 'mnist';
    let net = nets(data)[netName];
    // A network of the author's own, by URL (net="models/my.tflite", or a spec with weights="…").
    if (!net && /[/.]/.test(netName)) {
      const at = (name) => (this.hasAttribute(name) ? new URL(this.getAttribute(name), document.baseURI) : null);
      net = { url: new URL(netName, document.baseURI), weights: at('weights'), labels: at('labels'),
        datasets: { mnist: data, mnist5k: BUILTIN, cifar10: data } };
    }
    if (!net) throw new Error(`unknown net '${netName}'; expected one of ${Object.keys(nets(data)).join(', ')}, or a model's URL`);
    const datasetName = this.getAttribute('dataset');
    if (datasetName !== null) {
      const base = net.datasets?.[datasetName];
      if (!base) throw new Error(`dataset '${datasetName}' does not go with the ${netName} net; ${net.datasets ? `expected ${Object.keys(net.datasets).join(' or ')}` : 'it takes no dataset attribute'}`);
      net = { ...net, dataset: datasetName, base, fallback: null };
    }
    const client = new EngineClient({ worker: sharedWorker() });
    this.client = client;
    client.setPaused(!this.#visible);
    client.addEventListener('error', (e) => this.#report('Engine error', e.detail.error));
    const status = (t) => { this.#status.textContent = t; };
    status('starting the engine…');
    const info = await client.init(this.#backend());
    const state = { net: netName, summary: null, classNames: [], data: null, backend: info.backend, webgpu: info.webgpu, image: null, imageName: '', imageSrc: null, photos: [], dataUrl: data };

    status('loading the network…');
    let summary;
    if (net.mobilenet) summary = await loadMobilenet(client, net.mobilenet, status);
    else if (net.tfjs) summary = await loadTfjs(client, net.tfjs);
    else if (net.url) {
      const loaded = await loadNetFromUrl(client, net.url, net);
      summary = loaded.summary;
      net = { ...net, classes: loaded.classes ?? undefined };
    }
    else {
      const p = await fetchPreset(net.preset);
      summary = await client.load(p.specText, p.weightBytes, 0);
      state.trainer = p.trainer;
    }
    Object.assign(state, { summary, classNames: net.classes ?? summary.classNames ?? [] });
    client.summary = summary;

    if (net.dataset) {
      status(`loading ${net.dataset}…`);
      try {
        state.data = await client.loadDataset(net.dataset, net.base);
      } catch (e) {
        if (!net.fallback) throw e;
        state.data = await client.loadDataset(net.fallback, BUILTIN);
      }
    } else if (spec.dataset) {
      throw new Error(`the ${viewName} view needs a dataset; the ${netName} net has none here`);
    }
    if (spec.image) await this.#loadImage(client, state, data);

    const ctx = this.#makeCtx(client, state, status, spec);
    ctx.schemas = {};
    for (const t of SCHEMAS) ctx.schemas[t] = await client.request('settingsSchema', { technique: t });
    const root = el('section.panel', { 'aria-label': `ConvLens ${viewName}` });
    this.#body.replaceChildren(root);
    const view = spec.create(root, ctx);
    this.#view = view;
    view.setNet?.();
    view.setImage?.();
    // The attributes' settings, clamped to the schema's ranges by the engine.
    const given = this.#givenSettings(ctx.schemas[spec.technique]);
    if (Object.keys(given).length) {
      const values = await client.request('settingsFromUrl', { technique: spec.technique, given });
      const form = view.form ?? null;
      if (form) {
        form.set(Object.fromEntries(Object.entries(values).filter(([k]) => k in given)));
        form.inputs?.kind?.input?.onchange?.();
      }
      if (view.fromHash && !form) await view.fromHash(new URLSearchParams(given));
    }
    // The view's own controls that are not engine settings (attribution's `methods`), as written.
    const schemaKeys = new Set((ctx.schemas[spec.technique]?.fields ?? []).map((f) => f.key));
    const own = {};
    for (const key of Object.keys(view.form?.inputs ?? {}).filter((k) => !schemaKeys.has(k))) {
      for (const name of attributeNames(key)) if (!RESERVED.has(name) && this.hasAttribute(name)) own[key] = this.getAttribute(name);
    }
    if (Object.keys(own).length) {
      view.form.set(own);
      view.form.inputs?.kind?.input?.onchange?.();
    }
    if (this.hasAttribute('target')) {
      if (!view.setTarget) throw new Error(`the ${viewName} view takes no target`);
      view.setTarget(this.getAttribute('target'));
    }
    this.#applyControls(root);
    status('');
    this.dataset.ready = 'true';
    this.dispatchEvent(new CustomEvent('ready', { detail: { summary } }));
    if (this.hasAttribute('autorun')) await view.start?.();
  }

  /** The `backend` attribute, else the page's `?backend=` (cpu, webgpu or auto: a reader's choice for every element), else cpu. */
  #backend() {
    const page = new URLSearchParams(location.search).get('backend');
    return this.getAttribute('backend') ?? (['cpu', 'webgpu', 'auto'].includes(page) ? page : 'cpu');
  }

  /** A view with its own network and data (the 2-D classifier): its attributes are its settings. */
  async #bootStandalone(viewName, spec) {
    const client = new EngineClient({ worker: sharedWorker() });
    this.client = client;
    client.setPaused(!this.#visible);
    client.addEventListener('error', (e) => this.#report('Engine error', e.detail.error));
    this.#status.textContent = 'starting the engine…';
    await client.init(this.#backend());
    const given = new URLSearchParams();
    for (const key of spec.keys) {
      for (const name of attributeNames(key)) if (!RESERVED.has(name) && this.hasAttribute(name)) given.set(key, this.getAttribute(name));
    }
    const root = el('div.cl-standalone', { 'aria-label': `ConvLens ${viewName}` });
    this.#body.replaceChildren(root);
    const view = spec.create(root, {
      client,
      report: (what, e) => this.#report(what, e),
      onChange: () => {
        if (!this.#view) return;
        const settings = Object.fromEntries(view.params());
        if (JSON.stringify(settings) === JSON.stringify(this.#settings)) return;
        this.#settings = settings;
        this.dispatchEvent(new CustomEvent('change', { detail: { settings: { ...settings } } }));
      },
      trainingStopped: (error) => this.#report('Training stopped', error),
    });
    const problems = await view.init(given);
    this.#view = view;
    this.#settings = Object.fromEntries(view.params());
    this.#applyControls(root);
    this.#status.textContent = problems.length ? `Attributes not used: ${problems.join('; ')}.` : '';
    this.dataset.ready = 'true';
    this.dispatchEvent(new CustomEvent('ready', { detail: { summary: view.raw.summary } }));
    if (this.hasAttribute('autorun')) await view.start();
  }

  /** The image views' input: a test image of the dataset (`image` = its index) or an image URL. */
  async #loadImage(client, state, data) {
    const { depth, height, width } = state.summary.input;
    const want = this.getAttribute('image') ?? '0';
    if (/^\d+$/.test(want) && state.data) {
      const [s] = await datasetSamples(client, state.classNames, Number(want) + 1).then((l) => l.slice(Number(want)));
      if (!s) throw new Error(`there is no test image ${want}`);
      Object.assign(state, { image: await s.input(), imageName: s.name, imageSrc: null });
      return;
    }
    const url = new URL(/^\d+$/.test(want) ? 'images/chelsea.png' : want, /^\d+$/.test(want) ? data : document.baseURI);
    Object.assign(state, { image: await loadSquare(url, [height, width], depth), imageName: url.pathname.split('/').pop(), imageSrc: url });
  }

  /** What the views expect of their page. */
  #makeCtx(client, state, status, spec) {
    const report = (what, e) => this.#report(what, e);
    const self = this;
    return {
      client, state, report, status,
      styles: styleImages(state.dataUrl),
      hash: {
        get: () => new URLSearchParams(),
        set(values) {
          self.#settings = { ...values };
          self.dispatchEvent(new CustomEvent('change', { detail: { settings: { ...values } } }));
        },
      },
      layerOptions: (from) => layerOptions(state, from),
      defaultLayer: () => defaultLayer(state),
      layerNamed: (name, fallback) => layerNamed(state, name, fallback),
      convLayers: () => convLayers(state),
      /** A class's name; "k: name" in the image views (the pages' conventions). */
      className(k) {
        return spec.image ? `${k}: ${state.classNames[k] ?? k}` : (state.classNames[k] ?? String(k));
      },
      imagePageLink() {
        return null;
      },
      top: (image, n) => topClasses(client, state, image, n),
      imageAt: (size) => imageAt(state, size),
    };
  }

  /** The view's settings given as attributes: {schemaKey: text}. */
  #givenSettings(schema) {
    const given = {};
    for (const f of schema?.fields ?? []) {
      for (const name of attributeNames(f.key)) {
        if (!RESERVED.has(name) && this.hasAttribute(name)) given[f.key] = this.getAttribute(name);
      }
    }
    return given;
  }

  /**
   * `controls="none"` hides the settings; a list shows only those: a setting by its key, another
   * control by the last part of its id (`maps` for patches' deconvnet/guided choice).
   */
  #applyControls(root) {
    const want = this.getAttribute('controls');
    if (want === null || want === 'all') return;
    if (want === 'none') {
      for (const form of root.querySelectorAll('.form')) form.hidden = true;
    }
    const keep = new Set(want === 'none' ? [] : want.split(',').map((s) => s.trim().toLowerCase()));
    for (const label of root.querySelectorAll('label.field, label')) {
      const input = label.querySelector('input, select');
      if (!input) continue;
      const key = (label.dataset.key ?? input.id?.split('-').pop() ?? '').toLowerCase();
      if (!keep.has(key)) label.hidden = true;
    }
  }
}

if (!customElements.get('convlens-view')) customElements.define('convlens-view', ConvLensView);
