// The test-set grid: the first test images with the net's top three classes and their
// probabilities; mistakes are marked. Clicking an image makes it the input of the layer views.
import { drawImage, makeCanvas } from './draw.js';
import { el } from './dom.js';

export function createTestGrid(root, { onSelect }) {
  let cells = [];
  let classNames = [];
  return {
    /** images: {shape, data, labels} from the engine; classes: class names. */
    setImages(images, classes) {
      classNames = classes;
      const [c, h, w] = images.shape;
      const n = images.labels.length;
      cells = Array.from({ length: n }, (_, i) => {
        const canvas = makeCanvas(w, h, 2);
        drawImage(canvas, images.data, i * c * h * w, images.shape);
        const top = el('ol.top3');
        const cell = el('button.test-cell', { type: 'button', 'data-index': i, title: `test image ${i}: ${classes[images.labels[i]]}`, onclick: () => onSelect(i) },
          canvas, top);
        return { cell, top, label: images.labels[i] };
      });
      root.replaceChildren(...cells.map((x) => x.cell));
    },
    /** probs: n x classes for the same images. Returns the number correct. */
    update(probs) {
      const k = classNames.length;
      let correct = 0;
      cells.forEach(({ cell, top, label }, i) => {
        const p = Array.from(probs.subarray(i * k, (i + 1) * k), (v, c) => [v, c]).sort((a, b) => b[0] - a[0]).slice(0, 3);
        const ok = p[0][1] === label;
        correct += ok;
        cell.classList.toggle('wrong', !ok);
        top.replaceChildren(...p.map(([v, c]) => el('li', { class: c === label ? 'truth' : '' },
          el('span.bar', { style: `width:${Math.round(100 * v)}%` }),
          el('span.name', { text: `${classNames[c]} ${(100 * v).toFixed(0)}%` }))));
      });
      return correct;
    },
    select(index) {
      cells.forEach(({ cell }, i) => cell.classList.toggle('selected', i === index));
    },
    clear() {
      cells = [];
      root.replaceChildren();
    },
  };
}
