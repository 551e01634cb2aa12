// The editable network spec (JSON) with presets, a seed and an Apply button. An error from the
// engine is shown under the box with the line it points at, and that line is selected.
import { el } from './dom.js';

/** Line (1-based) of the `index`-th element of the top-level "layers" array, or null. */
function layerLine(text, index) {
  const start = text.search(/"layers"\s*:\s*\[/);
  if (start < 0) return null;
  let i = text.indexOf('[', start) + 1;
  let depth = 0;
  let count = -1;
  let inString = false;
  for (; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') {
      if (depth === 0 && ch === '{' && ++count === index) return text.slice(0, i).split('\n').length;
      depth++;
    } else if (ch === '}' || ch === ']') {
      if (depth === 0) return null;
      depth--;
    }
  }
  return null;
}

/** The line an engine error about this spec points at, or null. */
export function errorLine(text, message) {
  const syntax = /line (\d+) column (\d+)/.exec(message);
  if (syntax) return Number(syntax[1]);
  const layer = /layer (\d+)/.exec(message);
  if (!layer) return null;
  const line = layerLine(text, Number(layer[1]));
  if (line === null) return null;
  const field = /field '([^']+)'/.exec(message);
  if (field) {
    // The field's own line, if it is on a later line of the same layer object.
    const lines = text.split('\n');
    for (let l = line; l <= lines.length && l < line + 12; l++) {
      if (lines[l - 1].includes(`"${field[1]}"`)) return l;
      if (l > line && /^\s*[{\]]/.test(lines[l - 1])) break;
    }
  }
  return line;
}

export function createSpecView(root, { onApply, onPreset, presets }) {
  const preset = el('select', { id: 'spec-preset', 'aria-label': 'Preset' },
    ...Object.entries(presets).map(([k, p]) => el('option', { value: k, text: p.label })),
    el('option', { value: 'toy2d', text: '2-D toy net (opens the 2-D page)' }),
    el('option', { value: '', text: 'custom', hidden: true }));
  preset.onchange = () => onPreset(preset.value);
  const text = el('textarea', { id: 'spec-text', spellcheck: 'false', 'aria-label': 'Network spec (JSON)' });
  const seed = el('input', { id: 'spec-seed', type: 'number', min: 0, step: 1, title: 'seed of the random weight init' });
  const apply = el('button.apply', { id: 'spec-apply', type: 'button', text: 'Apply' });
  const error = el('pre.spec-error', { id: 'spec-error', hidden: true });
  text.addEventListener('input', () => { preset.value = ''; });
  apply.onclick = async () => {
    apply.disabled = true;
    try {
      await onApply({ text: text.value, seed: Math.max(0, Math.floor(Number(seed.value) || 0)) });
    } finally {
      apply.disabled = false;
    }
  };
  root.replaceChildren(el('div.spec', {}, el('div.row', {}, preset), text, error,
    el('div.row', {}, el('label', { text: 'seed ' }, seed), apply)));
  return {
    set(specText, seedValue, presetName = '') {
      text.value = specText;
      seed.value = String(seedValue);
      preset.value = presetName;
      this.showError(null);
    },
    seed: () => Math.max(0, Math.floor(Number(seed.value) || 0)),
    /** Shows an engine error under the box and selects the line it points at (null clears). */
    showError(message) {
      if (!message) {
        error.hidden = true;
        error.textContent = '';
        return;
      }
      const line = errorLine(text.value, message);
      error.hidden = false;
      error.textContent = line ? `line ${line}: ${message}` : message;
      if (line) {
        const lines = text.value.split('\n');
        const from = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
        text.focus();
        text.setSelectionRange(from, from + (lines[line - 1]?.length ?? 0));
        text.scrollTop = Math.max(0, (line - 3) * 15);
      }
    },
  };
}
