// The Share box of a page: copy the link (the page's state is in its URL), the <convlens-view> code
// that shows the same view in a lecture page, or an <iframe> of this page. Each copy also shows the
// text below, selected, for browsers that refuse the clipboard.
import { el } from './dom.js';

/**
 * `embed()` returns the element code (or throws a reason it cannot); `status(text)` says what
 * happened; `link()` the page's link (default: the address bar's, which holds the page's state).
 */
export function createShareBox(root, { embed, status, report, link = () => location.href }) {
  const text = el('textarea.share-code', { id: 'share-code', rows: 5, readonly: true, 'aria-label': 'embed code' });
  async function copy(value, what) {
    text.value = value;
    text.select();
    try {
      await navigator.clipboard.writeText(value);
      status(`${what} copied`);
    } catch { status(`${what} selected below: copy it with Ctrl+C`); }
  }
  const quote = (v) => String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  root.replaceChildren(
    el('div.row', {},
      el('button', { type: 'button', id: 'share-link', text: 'Copy link', onclick: () => copy(link(), 'link') }),
      el('button', { type: 'button', id: 'share-embed', text: 'Copy embed code', onclick: () => {
        let code;
        try { code = embed(); } catch (e) { report('Cannot embed', e); return; }
        copy(code, 'embed code');
      } }),
      el('button', { type: 'button', id: 'share-iframe', text: 'Copy iframe', onclick: () => copy(iframeCode(), 'iframe code') })),
    text);
  function iframeCode() {
    return `<iframe src="${quote(link())}" width="100%" height="760" loading="lazy" title="ConvLens"></iframe>`;
  }
  return { iframeCode };
}

/** An attribute list's text: name="value" pairs, values escaped for HTML. */
export function attributes(pairs) {
  const quote = (v) => String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return pairs.map(([k, v]) => `${k}="${quote(v)}"`).join(' ');
}
