// The editable network spec (JSON) with a seed and an Apply button. Errors are shown by the caller.
import { el } from './dom.js';

export function createSpecView(root, { onApply }) {
  const text = el('textarea', { id: 'spec-text', spellcheck: 'false', 'aria-label': 'Network spec (JSON)' });
  const seed = el('input', { id: 'spec-seed', type: 'number', min: 0, step: 1, title: 'seed of the random weight init' });
  const apply = el('button.apply', { id: 'spec-apply', type: 'button', text: 'Apply' });
  apply.onclick = async () => {
    apply.disabled = true;
    try {
      await onApply({ text: text.value, seed: Math.max(0, Math.floor(Number(seed.value) || 0)) });
    } finally {
      apply.disabled = false;
    }
  };
  root.replaceChildren(el('div.spec', {}, text, el('div.row', {}, el('label', { text: 'seed ' }, seed), apply)));
  return {
    set(specText, seedValue) {
      text.value = specText;
      seed.value = String(seedValue);
    },
  };
}
