// The sample host page: mounts every component slot with the token its own
// backend minted for this page view, and shows each component's status.

function showStatus(slot, text, isError) {
  const status = slot.closest('section')?.querySelector('.status');
  if (!status) return;
  status.textContent = text;
  status.classList.toggle('error', isError);
}

function mountSlot(slot) {
  const started = performance.now();
  slot.addEventListener('xinfeng:ready', () => {
    const ms = Math.round(performance.now());
    slot.dataset.readyMs = String(ms);
    showStatus(slot, `ready in ${Math.round(ms - started)} ms`, false);
  });
  slot.addEventListener('xinfeng:error', (event) => {
    slot.dataset.errorCode = event.detail.code || 'error';
    showStatus(slot, `error: ${slot.dataset.errorCode}`, true);
  });
  window.xinfeng.mount(slot, {
    provider: slot.dataset.provider,
    license: slot.dataset.license,
    product: slot.dataset.product,
    token: slot.dataset.token,
    theme: slot.dataset.theme || 'light',
  });
  showStatus(slot, 'loading …', false);
}

function main() {
  const slots = document.querySelectorAll('.xinfeng-slot');
  if (!window.xinfeng) {
    slots.forEach((slot) => showStatus(slot, 'provider loader unavailable', true));
    return;
  }
  slots.forEach(mountSlot);
}

main();
