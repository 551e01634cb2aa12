// Error banner: shows the latest engine error until dismissed; it never touches the page state.
export function createBanner(node) {
  const text = node.querySelector('.banner-text');
  node.querySelector('.banner-close').onclick = () => { node.hidden = true; };
  return {
    /** Shows `message`, and after it `extra` (a node, e.g. a download link) if given. */
    show(message, extra = null) {
      text.replaceChildren(message, ...(extra ? [' ', extra] : []));
      node.hidden = false;
    },
    clear() {
      node.hidden = true;
      text.textContent = '';
    },
  };
}
