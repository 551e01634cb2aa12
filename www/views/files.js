// Save a whole model: one safetensors file with the weights (PyTorch names and layouts) and the
// network spec in its metadata. The engine writes it; this module only moves bytes. (Opening one,
// or any model of one's own, is views/import.js's.)
import { el } from './dom.js';

export function createFilesView(root, { onSave }) {
  const save = el('button', { id: 'model-save', type: 'button', text: 'Download model', title: 'Spec + weights as one .safetensors file (loads in PyTorch with safetensors.torch.load_file)' });
  save.onclick = async () => {
    save.disabled = true;
    try {
      const { bytes, name } = await onSave();
      const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
      const a = el('a', { href: url, download: `${name}.safetensors` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } finally {
      save.disabled = false;
    }
  };
  const row = el('div.row.files', {}, save);
  root.replaceChildren(row);
  return row;
}
