// The container page: hands a canvas to the page's component runtime and
// forwards events (never product data) to the host page.
//
// Every container of a host page joins one SharedWorker on the provider's
// origin (named after the build, so a new build never joins an old
// runtime) and transfers its OffscreenCanvas through the port. Where the
// browser has no SharedWorker, cannot start one here, or cannot transfer a
// canvas to it, the container runs its own dedicated Worker instead.

const meta = (name) =>
  document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';

const EVENT_TYPES = new Set(['ready', 'error', 'size', 'selection']);
// A selection names the item a person clicked (a station number, a date),
// never its values; the loader checks the same shape.
const REF = /^[^\u0000-\u001f\u007f<>]{1,64}$/;
const SCROLL_KEYS = new Set(['ArrowDown', 'ArrowUp', 'PageDown', 'PageUp', 'Home', 'End']);
// A SharedWorker that cannot start here fails with an error event; this only
// bounds a runtime that neither answers nor fails.
const HELLO_TIMEOUT_MS = 10000;

// The token travels in the fragment, which browsers never send to a server;
// it is removed from the address as soon as it has been read.
function takeFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  return {
    token: params.get('token') ?? '',
    theme: params.get('theme') ?? 'light',
    runtime: params.get('runtime') === 'dedicated' ? 'dedicated' : 'shared',
  };
}

function parentOrigin() {
  const ancestors = location.ancestorOrigins;
  return ancestors && ancestors.length > 0 ? ancestors[0] : '*';
}

function notifyHost(type, detail) {
  if (window.parent === window) return;
  const message = { source: 'xinfeng', type };
  if (typeof detail.code === 'string') message.code = detail.code;
  if (type === 'selection') {
    if (typeof detail.ref !== 'string' || !REF.test(detail.ref)) return;
    message.ref = detail.ref;
  }
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

function bootInfo() {
  const snapshot = meta('xinfeng-snapshot');
  return {
    pyodide: meta('xinfeng-pyodide'),
    snapshot: snapshot ? { url: snapshot, sha256: meta('xinfeng-snapshot-sha256') } : null,
    bundle: {
      url: meta('xinfeng-bundle'),
      sha256: meta('xinfeng-bundle-sha256'),
      build: meta('xinfeng-build'),
    },
  };
}

// Resolves with the port once the runtime greets it; rejects if the worker
// fails to start or stays silent.
function greeted(port, failures) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('runtime did not answer')), HELLO_TIMEOUT_MS);
    failures.addEventListener('error', () => {
      clearTimeout(timer);
      reject(new Error('runtime failed to start'));
    });
    port.addEventListener('message', function hello(event) {
      if (event.data?.type !== 'hello') return;
      clearTimeout(timer);
      port.removeEventListener('message', hello);
      resolve(port);
    });
    if (typeof port.start === 'function') port.start();
  });
}

async function sharedRuntime() {
  if (typeof SharedWorker !== 'function' || typeof OffscreenCanvas !== 'function') {
    throw new Error('no SharedWorker or OffscreenCanvas');
  }
  const worker = new SharedWorker(meta('xinfeng-worker'), {
    type: 'module',
    name: meta('xinfeng-runtime'),
  });
  return { port: await greeted(worker.port, worker), mode: 'shared' };
}

async function dedicatedRuntime() {
  const worker = new Worker(meta('xinfeng-worker'), {
    type: 'module',
    name: meta('xinfeng-runtime'),
  });
  const port = await greeted(worker, worker);
  worker.addEventListener('error', () => notifyHost('error', { code: 'worker_failed' }));
  return { port, mode: 'dedicated' };
}

async function openRuntime(preferred) {
  if (preferred === 'shared') {
    try {
      return await sharedRuntime();
    } catch (error) {
      console.info('xinfeng: no shared runtime here, using a dedicated one:', error.message);
    }
  }
  return dedicatedRuntime();
}

// Transferring an OffscreenCanvas through a port is not supported everywhere;
// a failed transfer throws before the canvas is handed over.
function mountOn(runtime, message, offscreen) {
  try {
    runtime.port.postMessage({ ...message, type: 'mount', canvas: offscreen }, [offscreen]);
    return true;
  } catch (error) {
    console.info('xinfeng: cannot hand the canvas to the shared runtime:', error.message);
    return false;
  }
}

function forwardInput(canvas, port) {
  canvas.addEventListener('wheel', (event) => {
    event.preventDefault();
    port.postMessage({ type: 'scroll', dy: Math.sign(event.deltaY) });
  }, { passive: false });
  canvas.addEventListener('click', (event) => {
    port.postMessage({ type: 'click', x: event.offsetX, y: event.offsetY });
  });
  canvas.addEventListener('keydown', (event) => {
    if (!SCROLL_KEYS.has(event.key)) return;
    event.preventDefault();
    port.postMessage({ type: 'key', key: event.key });
  });
  new ResizeObserver(() => {
    port.postMessage({ type: 'resize', ...canvasSize(canvas) });
  }).observe(canvas);
  document.addEventListener('visibilitychange', () => {
    port.postMessage({ type: 'visibility', hidden: document.hidden });
  });
  window.addEventListener('pagehide', (event) => {
    if (!event.persisted) port.postMessage({ type: 'unmount' });
  });
  // The host page may ask for fresh data; it can ask nothing else.
  window.addEventListener('message', (event) => {
    const data = event.data;
    if (event.source !== window.parent || !data || data.source !== 'xinfeng-host') return;
    if (data.type === 'refresh') port.postMessage({ type: 'refresh' });
  });
}

// Under automation only: what the component drew, its timings and how its
// runtime is shared, asked of the runtime on demand (tests, benchmarks).
function exposeInspection(runtime) {
  if (navigator.webdriver !== true) return;
  const pending = new Map();
  let nextId = 1;
  runtime.port.addEventListener('message', (event) => {
    const { type, id, value } = event.data ?? {};
    if (type !== 'inspect' || !pending.has(id)) return;
    pending.get(id)(value);
    pending.delete(id);
  });
  const ask = (what) => new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    runtime.port.postMessage({ type: 'inspect', what, id });
  });
  window.xinfengFrameText = () => ask('frame-text');
  window.xinfengTimings = () => ask('timings');
  window.xinfengRuntime = () => ask('runtime').then((info) => ({ ...info, mode: runtime.mode }));
}

function listen(runtime) {
  runtime.port.addEventListener('message', (event) => {
    const { type } = event.data ?? {};
    if (EVENT_TYPES.has(type)) notifyHost(type, event.data);
  });
}

async function start() {
  const fragment = takeFragment();
  const stage = document.getElementById('stage');
  const canvas = document.createElement('canvas');
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', 'xinfeng data component');
  stage.appendChild(canvas);

  const message = {
    token: fragment.token,
    license: meta('xinfeng-license'),
    product: meta('xinfeng-product'),
    boot: bootInfo(),
    environment: {
      origins: Array.from(location.ancestorOrigins ?? []),
      webdriver: navigator.webdriver === true,
      hidden: document.hidden,
    },
    options: { theme: fragment.theme, ...canvasSize(canvas) },
  };
  let runtime = await openRuntime(fragment.runtime);
  const offscreen = canvas.transferControlToOffscreen();
  if (!mountOn(runtime, message, offscreen)) {
    runtime.port.close();
    runtime = await dedicatedRuntime();
    mountOn(runtime, message, offscreen);
  }
  listen(runtime);
  exposeInspection(runtime);
  forwardInput(canvas, runtime.port);
}

start().catch((error) => {
  console.error('xinfeng container failed:', error);
  notifyHost('error', { code: 'worker_failed' });
});
