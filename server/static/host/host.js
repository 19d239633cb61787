// The sample host page: mounts every component slot with the token its own
// backend minted for this page view, shows each component's status, follows
// the page's theme (?theme=dark) and opens a station's card when a station
// is clicked on the station map.

const WIDE_PRODUCTS = new Set(['gd-stations', 'gd-rivers', 'gd-station-density',
  'cn-z500-climate']);
const WIDE_HEIGHT = '540px';
const PANEL_HEIGHT = '420px';
const THEME = new URLSearchParams(location.search).get('theme') === 'dark' ? 'dark' : 'light';

function showStatus(slot, text, isError) {
  const status = slot.closest('section')?.querySelector('.status');
  if (!status) return;
  status.textContent = text;
  status.classList.toggle('error', isError);
}

function slotOptions(slot, params) {
  return {
    provider: slot.dataset.provider,
    license: slot.dataset.license,
    product: slot.dataset.product,
    token: slot.dataset.token,
    theme: THEME,
    height: WIDE_PRODUCTS.has(slot.dataset.product) ? WIDE_HEIGHT : PANEL_HEIGHT,
    params,
  };
}

function listen(slot) {
  slot.addEventListener('xinfeng:ready', () => {
    const ms = Math.round(performance.now());
    slot.dataset.readyMs = String(ms);
    showStatus(slot, `ready in ${ms - Number(slot.dataset.startedMs)} ms`, false);
  });
  slot.addEventListener('xinfeng:error', (event) => {
    slot.dataset.errorCode = event.detail.code || 'error';
    showStatus(slot, `error: ${slot.dataset.errorCode}`, true);
  });
  slot.addEventListener('xinfeng:selection', (event) => onSelection(slot, event.detail.ref));
}

function mountSlot(slot, params) {
  slot.dataset.startedMs = String(Math.round(performance.now()));
  delete slot.dataset.readyMs;
  delete slot.dataset.errorCode;
  // Keep the handle: the page can ask the component for fresh data.
  slot.xinfengMount = window.xinfeng.mount(slot, slotOptions(slot, params));
  showStatus(slot, 'loading …', false);
}

// The reference names the clicked station; the card component fetches that
// station's card itself. The host page never sees the station's data.
function onSelection(slot, ref) {
  document.querySelector('.selection').textContent =
    `selected in ${slot.dataset.product}: ${ref}`;
  const card = document.querySelector('.xinfeng-slot[data-product="gd-station-card"]');
  if (slot.dataset.product === 'gd-stations' && card) mountSlot(card, { station: ref });
}

function main() {
  document.body.classList.toggle('dark', THEME === 'dark');
  const slots = document.querySelectorAll('.xinfeng-slot');
  slots.forEach((slot) => {
    if (WIDE_PRODUCTS.has(slot.dataset.product)) slot.closest('section')?.classList.add('wide');
  });
  if (!window.xinfeng) {
    slots.forEach((slot) => showStatus(slot, 'provider loader unavailable', true));
    return;
  }
  slots.forEach((slot) => {
    listen(slot);
    mountSlot(slot);
  });
}

main();
