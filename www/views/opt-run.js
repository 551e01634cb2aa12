// Runs one optimization job in the worker a chunk at a time: progress bar, Cancel, a live preview
// after every chunk, and a chart of the objective. The engine does the steps
// (crates/core/src/vis/*); this view only asks, waits and draws.
import uPlot from '../vendor/uPlot.esm.js';
import { el, fmt } from './dom.js';

/** A runner bound to one panel: {node, run(kind, input, settings, onState), cancel(), busy}. */
export function createRunner(client, { seriesNames, chartTitle, onError, budgetMs = 150 }) {
  const run = el('button.primary', { type: 'button', text: 'Run' });
  const cancel = el('button', { type: 'button', text: 'Cancel', disabled: true });
  const bar = el('progress', { max: 1, value: 0 });
  const info = el('span.hint');
  const chartBox = el('div.opt-chart');
  const node = el('div.opt-run', {}, el('div.row', {}, run, cancel, bar, info), chartBox);
  let plot = null;
  let token = 0;
  let busy = false;
  let jobId = null;
  const colors = ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099'];
  function chart(history) {
    if (!history.length) return;
    const n = history[0].length;
    if (!plot || plot.series.length !== n + 1) {
      chartBox.replaceChildren();
      plot = new uPlot({
        width: 360, height: 150, title: chartTitle,
        legend: { live: false }, cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false } },
        axes: [{ label: 'step', size: 32 }, { size: 48 }],
        series: [{}, ...Array.from({ length: n }, (_, i) => ({ label: seriesNames[i] ?? `#${i + 1}`, stroke: colors[i % colors.length], width: 1.5 }))],
      }, [[], ...Array.from({ length: n }, () => [])], chartBox);
    }
    const xs = history.map((_, i) => i + 1);
    plot.setData([xs, ...Array.from({ length: n }, (_, k) => history.map((h) => h[k]))]);
  }
  let lastState = null;
  const api = {
    node,
    get busy() { return busy; },
    /** The running (or last) job's latest state. */
    get state() { return lastState; },
    onRun: null,
    cancel() {
      token++;
      if (jobId != null) client.request('optimizeCancel', { id: jobId }).catch(() => {});
      jobId = null;
    },
    /** Starts `kind` and steps it to the end (or Cancel); `onState(state)` after each chunk. Resolves to the last state. */
    async run(kind, input, settings, onState) {
      const mine = ++token;
      busy = true;
      run.disabled = true;
      cancel.disabled = false;
      bar.value = 0;
      info.textContent = 'starting…';
      const t0 = performance.now();
      let state = null;
      try {
        if (jobId != null) client.request('optimizeCancel', { id: jobId }).catch(() => {});
        state = await client.request('optimizeStart', { kind, input, settings });
        if (mine !== token) {
          client.request('optimizeCancel', { id: state.id }).catch(() => {});
          return state;
        }
        jobId = state.id;
        lastState = state;
        onState(state);
        while (!state.done) {
          if (mine !== token) {
            info.textContent = `cancelled at step ${state.step} of ${state.total}`;
            return state;
          }
          state = await client.request('optimizeStep', { id: state.id, budgetMs });
          bar.value = state.total ? state.step / state.total : 1;
          const s = (performance.now() - t0) / 1000;
          const last = state.history[state.history.length - 1];
          info.textContent = `step ${state.step} / ${state.total} · ${fmt(state.step / s)} steps/s${last ? ` · ${fmt(last[0])}` : ''}`;
          chart(state.history);
          lastState = state;
          onState(state);
        }
        chart(state.history);
        bar.value = 1;
        info.textContent = `done: ${state.total} steps in ${fmt((performance.now() - t0) / 1000)} s`;
        return state;
      } catch (e) {
        info.textContent = 'stopped by an error';
        onError(e);
        return null;
      } finally {
        if (mine === token) {
          busy = false;
          run.disabled = false;
          cancel.disabled = true;
        }
      }
    },
  };
  run.onclick = () => api.onRun?.();
  cancel.onclick = () => {
    api.cancel();
    busy = false;
    run.disabled = false;
    cancel.disabled = true;
  };
  return api;
}

/**
 * A settings form from a field list: [{key, label, type: 'number'|'select'|'checkbox'|'text', value,
 * options: [[value, label]], step, min, max, title}]. Returns {node, values(), set(obj)}.
 */
export function createForm(fields) {
  const inputs = {};
  const rows = fields.map((f) => {
    let input;
    if (f.type === 'select') {
      input = el('select', { id: f.id, title: f.title }, ...f.options.map(([v, l]) => el('option', { value: v, text: l })));
      input.value = String(f.value);
    } else if (f.type === 'checkbox') {
      input = el('input', { type: 'checkbox', id: f.id, title: f.title });
      input.checked = Boolean(f.value);
    } else {
      input = el('input', { type: f.type ?? 'number', id: f.id, title: f.title, step: f.step ?? 'any', min: f.min, max: f.max });
      input.value = f.value ?? '';
    }
    inputs[f.key] = { input, f };
    return el('label.field', { title: f.title, 'data-key': f.key }, el('span', { text: f.label }), input);
  });
  return {
    node: el('div.form', {}, ...rows),
    inputs,
    values() {
      const out = {};
      for (const [k, { input, f }] of Object.entries(inputs)) {
        if (f.type === 'checkbox') out[k] = input.checked;
        else if (f.type === 'select' || f.type === 'text') out[k] = input.value;
        else if (input.value !== '') out[k] = Number(input.value);
      }
      return out;
    },
    set(obj) {
      for (const [k, v] of Object.entries(obj)) {
        const e = inputs[k];
        if (!e) continue;
        if (e.f.type === 'checkbox') e.input.checked = Boolean(v);
        else e.input.value = String(v);
      }
    },
  };
}

/**
 * Form fields from a technique's settings schema (the engine's `settingsSchema`: labels, defaults,
 * ranges, units, help), for `keys` in that order; `extra[key]` overrides a field's descriptor
 * (an id, a shorter label, option labels). Choices become selects, booleans checkboxes, fields
 * that may be "auto" (null) text boxes left blank for auto.
 */
export function schemaFields(schema, keys, extra = {}) {
  return keys.map((key) => {
    const f = schema.fields.find((x) => x.key === key);
    if (!f) throw new Error(`the ${schema.technique} settings have no '${key}'`);
    const label = f.unit ? `${f.label} (${f.unit})` : f.label;
    const d = { key, label, title: f.help || undefined };
    if (f.type.kind === 'choice') Object.assign(d, { type: 'select', value: f.default, options: f.type.options.map((o) => [o, o]) });
    else if (f.type.kind === 'boolean') Object.assign(d, { type: 'checkbox', value: f.default });
    else if (f.nullable) Object.assign(d, { type: 'text', value: f.default ?? '', label: `${label}, blank: auto` });
    else if (f.type.kind === 'text') Object.assign(d, { type: 'text', value: f.default ?? '' });
    else Object.assign(d, { value: f.default, min: f.min ?? undefined, max: f.max ?? undefined, step: f.step ?? 'any' });
    return { ...d, ...(extra[key] ?? {}) };
  });
}

/** A schema's preset by name: every value it gives ({} if there is none). */
export function presetValues(schema, name) {
  return schema.presets.find((p) => p.name === name)?.values ?? {};
}

/** The form's values for the engine: blank "auto" text fields become null. */
export function settingsOf(form, keys) {
  const v = form.values();
  const out = {};
  for (const k of keys) {
    const x = v[k];
    out[k] = x === '' ? null : (form.inputs[k]?.f.type === 'text' && x != null && !Number.isNaN(Number(x)) ? Number(x) : x);
  }
  return out;
}
