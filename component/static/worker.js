// The component's Worker: boots the provider's own Pyodide, unpacks the
// component bundle and runs xinfeng.component.runtime on the canvas.

import { loadPyodide } from '/pyodide/pyodide.mjs';

// Pyodide hangs silently when something (a CSP, a missing file) blocks it,
// so the boot has a deadline; the runtime's requests have their own.
const BOOT_TIMEOUT_MS = 30000;
const FONT = '16px system-ui, sans-serif';

let canvas = null;
let runtime = null;
const timings = {};

class BootError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

function emit(type, code, height) {
  const message = { type };
  if (typeof code === 'string') message.code = code;
  if (Number.isFinite(height)) message.height = height;
  self.postMessage(message);
}

// Only until Python runs; after that the runtime draws everything.
function drawNotice(text, isError, ratio) {
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = isError ? '#a40000' : '#5c6670';
  ctx.font = FONT;
  ctx.fillText(text, 16, 32);
}

function withDeadline(promise, code) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new BootError(code)), BOOT_TIMEOUT_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function fetchBundle(bundle) {
  if (!bundle.url.startsWith('/component/')) throw new BootError('bundle_invalid');
  const response = await fetch(bundle.url, { credentials: 'omit' });
  if (!response.ok) throw new BootError('bundle_unavailable');
  const data = await response.arrayBuffer();
  const digest = hex(await crypto.subtle.digest('SHA-256', data));
  if (digest !== bundle.sha256) throw new BootError('bundle_mismatch');
  return data;
}

function boot() {
  return loadPyodide({ indexURL: new URL('/pyodide/', self.location.href).href });
}

async function start(message) {
  timings.start = performance.now();
  const [pyodide, bundle] = await withDeadline(
    Promise.all([boot(), fetchBundle(message.bundle)]),
    'boot_timeout',
  );
  timings.booted = performance.now();
  const sitePackages = pyodide.runPython('import sysconfig; sysconfig.get_path("purelib")');
  pyodide.unpackArchive(bundle, 'zip', { extractDir: sitePackages });
  runtime = pyodide.pyimport('xinfeng.component.runtime');
  timings.imported = performance.now();
  const config = pyodide.toPy({
    token: message.token,
    license: message.license,
    product: message.product,
    build: message.bundle.build,
    environment: { ...message.environment, ua: navigator.userAgent },
    options: message.options,
  });
  await runtime.start(canvas, config, emit);
  timings.rendered = performance.now();
}

function onInput(message) {
  if (!runtime) return;
  if (message.type === 'scroll') runtime.scroll(Number(message.dy) || 0);
  if (message.type === 'key') runtime.key(String(message.key));
  if (message.type === 'resize') {
    runtime.resize(Number(message.width), Number(message.height), Number(message.ratio));
  }
}

// What the last frame drew, as text (the same strings as the pixels on
// screen), and when each start-up step ended: for automated tests.
self.xinfengFrameText = () => (runtime ? runtime.LAST_FRAME_TEXT.toJs() : []);
self.xinfengTimings = () => {
  const steps = runtime ? runtime.TIMINGS.toJs({ dict_converter: Object.fromEntries }) : {};
  return { ...timings, ...steps };
};

self.addEventListener('message', (event) => {
  const message = event.data ?? {};
  if (message.type !== 'start') return onInput(message);
  if (canvas) return undefined;
  const { width, height, ratio } = message.options;
  canvas = message.canvas;
  canvas.width = width;
  canvas.height = height;
  drawNotice('Loading component …', false, ratio);
  start(message).catch((error) => {
    const code = error instanceof BootError ? error.code : 'boot_failed';
    console.error('xinfeng component failed to start:', error);
    drawNotice(`The component could not start (${code}).`, true, ratio);
    emit('error', code);
  });
  return undefined;
});
