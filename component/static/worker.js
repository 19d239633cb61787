// The component runtime: one Pyodide for every container that connects.
//
// Loaded as a SharedWorker (one per page, or rather per top-level site and
// build) or, where the browser cannot share one, as a dedicated Worker per
// container. Each connection is one component: the container sends its
// OffscreenCanvas and embed token in a 'mount' message, then input; the
// runtime answers with events only (ready, error, size). Pyodide boots once,
// from a memory snapshot when the provider has one.

// Pyodide hangs silently when something (a CSP, a missing file) blocks it,
// so the boot has a deadline; the runtime's requests have their own.
const BOOT_TIMEOUT_MS = 30000;
const FONT = '16px system-ui, sans-serif';
const INPUT_TYPES = new Set(['scroll', 'key', 'resize']);

const shared = typeof SharedWorkerGlobalScope === 'function'
  && self instanceof SharedWorkerGlobalScope;
const timings = {};
let runtimePromise = null;
let nextInstance = 1;
let connections = 0;

class BootError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
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

function base64FromHex(text) {
  const bytes = text.match(/../g).map((pair) => parseInt(pair, 16));
  return btoa(String.fromCharCode(...bytes));
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

// The browser checks the snapshot against its digest as it arrives (SRI):
// a snapshot is code, like the bundle.
async function fetchSnapshot(snapshot) {
  const response = await fetch(snapshot.url, {
    credentials: 'omit',
    integrity: `sha256-${base64FromHex(snapshot.sha256)}`,
  });
  if (!response.ok) throw new BootError('snapshot_unavailable');
  const data = new Uint8Array(await response.arrayBuffer());
  timings.snapshotFetched = performance.now();
  return data;
}

async function startPyodide(boot, useSnapshot) {
  const { loadPyodide } = await import(`${boot.pyodide}pyodide.mjs`);
  const options = { indexURL: new URL(boot.pyodide, self.location.href).href };
  if (useSnapshot) options._loadSnapshot = fetchSnapshot(boot.snapshot);
  return loadPyodide(options);
}

// A snapshot that cannot be fetched or restored costs time, not the
// component: the runtime then boots the ordinary way.
async function startPyodideFast(boot) {
  if (!boot.snapshot) return { pyodide: await startPyodide(boot, false), restored: false };
  try {
    return { pyodide: await startPyodide(boot, true), restored: true };
  } catch (error) {
    console.warn('xinfeng: memory snapshot not usable, booting without it:', error);
    return { pyodide: await startPyodide(boot, false), restored: false };
  }
}

async function loadRuntime(boot) {
  timings.start = performance.now();
  const [{ pyodide, restored }, bundle] = await Promise.all([
    startPyodideFast(boot),
    fetchBundle(boot.bundle),
  ]);
  timings.booted = performance.now();
  const sitePackages = pyodide.runPython('import sysconfig; sysconfig.get_path("purelib")');
  pyodide.unpackArchive(bundle, 'zip', { extractDir: sitePackages });
  const runtime = pyodide.pyimport('xinfeng.component.runtime');
  if (restored) runtime.after_restore();
  timings.imported = performance.now();
  timings.snapshot = restored;
  return { pyodide, runtime };
}

// Every container of a page shares one boot; a failed boot is retried by
// the next container rather than remembered.
function runtimeFor(boot) {
  runtimePromise ??= withDeadline(loadRuntime(boot), 'boot_timeout').catch((error) => {
    runtimePromise = null;
    throw error;
  });
  return runtimePromise;
}

function fromPython(proxy, options) {
  try {
    return proxy.toJs(options);
  } finally {
    proxy.destroy();
  }
}

// Only until Python runs; after that the runtime draws everything.
function drawNotice(canvas, text, isError, ratio) {
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = isError ? '#a40000' : '#5c6670';
  ctx.font = FONT;
  ctx.fillText(text, 16, 32);
}

function configFor(message) {
  return {
    token: message.token,
    license: message.license,
    product: message.product,
    build: message.boot.bundle.build,
    environment: { ...message.environment, ua: navigator.userAgent },
    options: message.options,
  };
}

// One connected container: its canvas, its id in the runtime, its port.
class Connection {
  constructor(port) {
    this.port = port;
    this.instance = nextInstance++;
    this.canvas = null;
    this.runtime = null;
    this.closed = false;
    this.timings = {};
    connections += 1;
  }

  emit(type, code, height) {
    const message = { type };
    if (typeof code === 'string') message.code = code;
    if (Number.isFinite(height)) message.height = height;
    this.port.postMessage(message);
  }

  mount(message) {
    if (this.canvas || !(message.canvas instanceof OffscreenCanvas)) return;
    const { width, height, ratio } = message.options;
    this.canvas = message.canvas;
    this.canvas.width = width;
    this.canvas.height = height;
    this.timings.mounted = performance.now();
    drawNotice(this.canvas, 'Loading component …', false, ratio);
    this.start(message).catch((error) => {
      const code = error instanceof BootError ? error.code : 'boot_failed';
      console.error('xinfeng component failed to start:', error);
      if (this.canvas) drawNotice(this.canvas, `The component could not start (${code}).`, true, ratio);
      this.emit('error', code);
    });
  }

  async start(message) {
    const { pyodide, runtime } = await runtimeFor(message.boot);
    if (this.closed) return;
    this.timings.runtimeReady = performance.now();
    this.runtime = runtime;
    const config = pyodide.toPy(configFor(message));
    try {
      await runtime.mount(this.instance, this.canvas, config, this.emit.bind(this));
    } finally {
      config.destroy();
    }
    this.timings.rendered = performance.now();
  }

  input(message) {
    const runtime = this.runtime;
    if (!runtime) return;
    if (message.type === 'scroll') runtime.scroll(this.instance, Number(message.dy) || 0);
    if (message.type === 'key') runtime.key(this.instance, String(message.key));
    if (message.type === 'resize') {
      const { width, height, ratio } = message;
      runtime.resize(this.instance, Number(width), Number(height), Number(ratio));
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    connections -= 1;
    if (this.runtime) this.runtime.unmount(this.instance);
    this.canvas = null;
    this.runtime = null;
  }

  // What tests and benchmarks read: the text of the last frame (the same
  // strings as the pixels), start-up timings, and how the runtime is shared.
  inspect(what) {
    const runtime = this.runtime;
    if (what === 'frame-text') return runtime ? fromPython(runtime.frame_text(this.instance)) : [];
    if (what === 'timings') {
      const asObject = { dict_converter: Object.fromEntries };
      const steps = runtime ? fromPython(runtime.timings(this.instance), asObject) : {};
      return { ...timings, ...this.timings, ...steps };
    }
    return {
      shared,
      name: self.name,
      instance: this.instance,
      connections,
      mounted: runtime ? runtime.mounted() : 0,
      snapshot: timings.snapshot === true,
    };
  }

  onMessage(message) {
    if (message.type === 'mount') return this.mount(message);
    if (message.type === 'unmount') return this.close();
    if (INPUT_TYPES.has(message.type)) return this.input(message);
    if (message.type === 'inspect') {
      this.port.postMessage({ type: 'inspect', id: message.id, value: this.inspect(message.what) });
    }
    return undefined;
  }
}

function connect(port) {
  const connection = new Connection(port);
  port.addEventListener('message', (event) => connection.onMessage(event.data ?? {}));
  port.addEventListener('close', () => connection.close());
  if (typeof port.start === 'function') port.start();
  port.postMessage({ type: 'hello', shared });
}

if (shared) {
  self.addEventListener('connect', (event) => connect(event.ports[0]));
} else {
  connect(self);
}
