// Backend badge (WebGPU / CPU) and the switch that moves the same network to the other backend.
import { el } from './dom.js';

const NAMES = { webgpu: 'WebGPU', cpu: 'CPU' };

function webgpuMissingReason() {
  if (!('gpu' in navigator)) {
    return 'WebGPU is unavailable: this browser has no navigator.gpu (it needs a WebGPU browser and a secure '
      + 'context such as https or localhost)';
  }
  return 'WebGPU is unavailable: navigator.gpu.requestAdapter() gave no adapter (GPU blocklisted or disabled)';
}

export function createBackendView(root, { onSwitch }) {
  const badge = el('span.badge', { id: 'backend-badge', text: '…' });
  const button = el('button.switch', { id: 'backend-switch', type: 'button', disabled: true });
  root.replaceChildren(el('div.backend', {}, badge, button));
  let target = null;
  button.onclick = () => target && onSwitch(target);
  return {
    update({ backend, webgpu, busy }) {
      badge.textContent = NAMES[backend] ?? '…';
      badge.className = `badge ${backend ?? ''}`;
      target = backend === 'webgpu' ? 'cpu' : backend === 'cpu' ? 'webgpu' : null;
      button.textContent = target ? `Switch to ${NAMES[target]}` : 'Switch';
      const blocked = target === 'webgpu' && !webgpu;
      button.disabled = !target || busy || blocked;
      button.title = blocked ? webgpuMissingReason()
        : target ? `Re-create the engine on ${NAMES[target]} with the same network and weights` : '';
    },
  };
}
