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
    /**
     * Training stopped with `error`; a divergence (it carries `suggestedRate`: the engine has put
     * the weights back to before the bad step) gets a button that applies the suggested rate.
     */
    trainingStopped(error, useRate) {
      console.error('Training stopped', error);
      const rate = error?.suggestedRate;
      if (rate === undefined) return this.show(`Training stopped: ${error?.message ?? error}`);
      const use = document.createElement('button');
      Object.assign(use, { id: 'use-rate', type: 'button', textContent: `Use learning rate ${rate}` });
      use.onclick = () => {
        this.clear();
        useRate(rate);
      };
      this.show(`Training stopped: ${error.message}`, use);
    },
    /** The engine stopped (a panic, a wasm trap, WebGPU not answering): says so while it restarts. */
    engineStopped({ message, hang }) {
      this.show(hang ? `${message}: restarting the engine on the CPU…` : `The engine failed; restarting it… (${message})`);
    },
    /** The engine is back: what failed, and what came back with it. */
    engineRestarted(failure, { backend, weightsAt }) {
      const weights = weightsAt ? `the weights saved at ${new Date(weightsAt).toLocaleTimeString()}` : 'the weights it was loaded with';
      const where = failure.hang ? ` on the ${backend === 'cpu' ? 'CPU' : backend}` : '';
      this.show(`The engine was restarted${where} with your network (${weights}) and settings. What failed: ${failure.message}`);
    },
    clear() {
      node.hidden = true;
      text.textContent = '';
    },
  };
}
