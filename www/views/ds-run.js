// The Run and Cancel buttons of a dataset view: `begin()` cancels a run in progress and gives the
// new one its AbortController (the view stops between chunks when it is aborted), `end(c)` puts the
// buttons back when run `c` is still the current one, `cancel()` stops the current run.
export function runControls(run, cancel) {
  let current = null;
  const idle = () => {
    run.disabled = false;
    cancel.disabled = true;
  };
  const controls = {
    begin() {
      controls.cancel();
      current = new AbortController();
      run.disabled = true;
      cancel.disabled = false;
      return current;
    },
    end(c) {
      if (current !== c) return;
      current = null;
      idle();
    },
    cancel() {
      current?.abort();
      current = null;
      idle();
    },
  };
  cancel.onclick = () => controls.cancel();
  return controls;
}
