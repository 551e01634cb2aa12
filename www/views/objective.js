// The current objective, as text. Changing it happens by clicking in the layer views (see layers.js).
import { el, fmt } from './dom.js';

/** Human text for an objective, using layer names and shapes from the Summary. */
export function describeObjective(obj, summary) {
  if (!obj) return '–';
  const layer = summary?.layers[obj.layer];
  const name = layer ? `${layer.name} (#${layer.index})` : `layer ${obj.layer}`;
  switch (obj.kind) {
    case 'class':
      return `score of class ${obj.index}`;
    case 'loss':
      return `cross-entropy loss for label ${obj.label}`;
    case 'channel':
      return `mean of ${name} channel ${obj.channel}`;
    case 'neuron': {
      const [, h, w] = layer?.shape ?? [1, 1, 1];
      if (h * w === 1) return `${name} unit ${obj.index}`;
      const c = Math.floor(obj.index / (h * w));
      const y = Math.floor((obj.index % (h * w)) / w);
      return `${name} channel ${c} at x ${obj.index % w}, y ${y}`;
    }
    default:
      return JSON.stringify(obj);
  }
}

export function createObjectiveView(root, { onReset }) {
  const text = el('span.objective-text', { id: 'objective-text' });
  const value = el('span.objective-value', { id: 'objective-value' });
  const note = el('span.hint');
  const reset = el('button.link', { type: 'button', text: 'use the predicted class', onclick: onReset });
  root.replaceChildren(
    el('div', {}, text, ' = ', value),
    el('div', {}, note, ' ', reset),
    el('p.hint', { text: 'Gradients shown are of this value. Click a class in the output layer, a pixel of any '
      + 'activation map, or a channel number to change it.' }));
  return {
    update({ objective, autoObjective, predicted, probe, summary }) {
      text.textContent = describeObjective(objective, summary);
      value.textContent = probe ? fmt(probe.objective) : '–';
      const isPredicted = objective?.kind === 'class' && objective.index === predicted;
      note.textContent = predicted === null ? '' : isPredicted ? '(the predicted class)' : `(predicted: ${predicted})`;
      reset.hidden = autoObjective || predicted === null;
    },
  };
}
