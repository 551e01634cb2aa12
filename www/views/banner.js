// Error banner: shows the latest engine error until dismissed; it never touches the page state.
export function createBanner(node) {
  const text = node.querySelector('.banner-text');
  node.querySelector('.banner-close').onclick = () => { node.hidden = true; };
  return {
    show(message) {
      text.textContent = message;
      node.hidden = false;
    },
    clear() {
      node.hidden = true;
      text.textContent = '';
    },
  };
}
