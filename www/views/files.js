// Save and open a whole model: one safetensors file with the weights (PyTorch names and layouts)
// and the network spec in its metadata. The engine reads and writes it; this module only moves bytes.
import { el } from './dom.js';

export function createFilesView(root, { onSave, onOpen }) {
  const save = el('button', { id: 'model-save', type: 'button', text: 'Download model', title: 'Spec + weights as one .safetensors file (loads in PyTorch with safetensors.torch.load_file)' });
  const input = el('input', { id: 'model-file', type: 'file', accept: '.safetensors,.onnx', hidden: true });
  const open = el('button', { id: 'model-open', type: 'button', text: 'Open model…', title: 'A .safetensors file saved by ConvLens (or `convlens export`/`train`), or an ONNX model (torch.onnx.export); or drop one on the page' });
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
  open.onclick = () => input.click();
  input.onchange = async () => {
    const file = input.files?.[0];
    input.value = '';
    if (file) await onOpen(file.name, new Uint8Array(await file.arrayBuffer()));
  };
  root.replaceChildren(el('div.row.files', {}, save, open, input));
  // A model file dropped anywhere on the page opens as if picked.
  const isModel = (name) => /\.(safetensors|onnx)$/i.test(name);
  document.addEventListener('dragover', (e) => {
    if ([...(e.dataTransfer?.items ?? [])].some((i) => i.kind === 'file')) e.preventDefault();
  });
  document.addEventListener('drop', async (e) => {
    const file = [...(e.dataTransfer?.files ?? [])].find((f) => isModel(f.name));
    if (!file) return;
    e.preventDefault();
    await onOpen(file.name, new Uint8Array(await file.arrayBuffer()));
  });
}
