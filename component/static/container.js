// The container page: hands a canvas to the component's Worker and forwards
// events (never product data) to the host page.

const meta = (name) =>
  document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';

const EVENT_TYPES = new Set(['ready', 'error', 'size']);
const SCROLL_KEYS = new Set(['ArrowDown', 'ArrowUp', 'PageDown', 'PageUp', 'Home', 'End']);

// The token travels in the fragment, which browsers never send to a server;
// it is removed from the address as soon as it has been read.
function takeFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  return { token: params.get('token') ?? '', theme: params.get('theme') ?? 'light' };
}

function parentOrigin() {
  const ancestors = location.ancestorOrigins;
  return ancestors && ancestors.length > 0 ? ancestors[0] : '*';
}

function notifyHost(type, detail) {
  if (window.parent === window) return;
  const message = { source: 'xinfeng', type };
  if (typeof detail.code === 'string') message.code = detail.code;
  if (Number.isFinite(detail.height)) message.height = Math.round(detail.height);
  window.parent.postMessage(message, parentOrigin());
}

function canvasSize(canvas) {
  const ratio = window.devicePixelRatio || 1;
  return {
    width: Math.max(1, Math.round(canvas.clientWidth * ratio)),
    height: Math.max(1, Math.round(canvas.clientHeight * ratio)),
    ratio,
  };
}

function forwardInput(canvas, worker) {
  canvas.addEventListener('wheel', (event) => {
    event.preventDefault();
    worker.postMessage({ type: 'scroll', dy: Math.sign(event.deltaY) });
  }, { passive: false });
  canvas.addEventListener('keydown', (event) => {
    if (!SCROLL_KEYS.has(event.key)) return;
    event.preventDefault();
    worker.postMessage({ type: 'key', key: event.key });
  });
  new ResizeObserver(() => {
    worker.postMessage({ type: 'resize', ...canvasSize(canvas) });
  }).observe(canvas);
}

function start() {
  const { token, theme } = takeFragment();
  const stage = document.getElementById('stage');
  const canvas = document.createElement('canvas');
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', 'xinfeng data component');
  stage.appendChild(canvas);

  const size = canvasSize(canvas);
  const offscreen = canvas.transferControlToOffscreen();
  const worker = new Worker('/static/component/worker.js', { type: 'module' });
  worker.addEventListener('message', (event) => {
    const { type } = event.data ?? {};
    if (EVENT_TYPES.has(type)) notifyHost(type, event.data);
  });
  worker.addEventListener('error', () => notifyHost('error', { code: 'worker_failed' }));

  worker.postMessage({
    type: 'start',
    canvas: offscreen,
    token,
    license: meta('xinfeng-license'),
    product: meta('xinfeng-product'),
    bundle: {
      url: meta('xinfeng-bundle'),
      sha256: meta('xinfeng-bundle-sha256'),
      build: meta('xinfeng-build'),
    },
    environment: {
      origins: Array.from(location.ancestorOrigins ?? []),
      webdriver: navigator.webdriver === true,
      hidden: document.hidden,
    },
    options: { theme, ...size },
  }, [offscreen]);
  forwardInput(canvas, worker);
}

start();
