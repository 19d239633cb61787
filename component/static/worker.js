// The component runtime: one Pyodide for every container that connects.
//
// Loaded as a SharedWorker (one per page, or rather per top-level site and
// build) or, where the browser cannot share one, as a dedicated Worker per
// container. Each connection is one component: the container sends its
// OffscreenCanvas and embed token in a 'mount' message, then input; the
// runtime answers with events only (ready, error, size, selection). Pyodide
// boots once, from a memory snapshot when the provider has one.

// Pyodide hangs silently when something (a CSP, a missing file) blocks it,
// so the boot has a deadline; the runtime's requests have their own.
const BOOT_TIMEOUT_MS = 30000;
const FONT = '16px system-ui, sans-serif';
const INPUT_TYPES = new Set(['scroll', 'key', 'click', 'resize', 'refresh', 'visibility']);

const shared = typeof SharedWorkerGlobalScope === 'function'
  && self instanceof SharedWorkerGlobalScope;
// performance.now() marks of the boot; timeOrigin relates them to others.
const timings = { timeOrigin: performance.timeOrigin };
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

async function fetchBundle(bundle) {
  if (!bundle.url.startsWith('/component/')) throw new BootError('bundle_invalid');
  const response = await fetch(bundle.url, { credentials: 'omit' });
  if (!response.ok) throw new BootError('bundle_unavailable');
  const data = await response.arrayBuffer();
  const digest = hex(await crypto.subtle.digest('SHA-256', data));
  if (digest !== bundle.sha256) throw new BootError('bundle_mismatch');
  return data;
}

// The served snapshot is gzipped and leaves out the zero pages of the
// interpreter's memory (see xinfeng.server.assets.pack_snapshot). It is
// checked against its digest before anything reads it: a snapshot is code.
async function fetchSnapshot(snapshot) {
  const response = await fetch(snapshot.url, { credentials: 'omit' });
  if (!response.ok) throw new BootError('snapshot_unavailable');
  const packed = await response.arrayBuffer();
  const digest = hex(await crypto.subtle.digest('SHA-256', packed));
  if (digest !== snapshot.sha256) throw new BootError('snapshot_mismatch');
  const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream('gzip'));
  const image = await unpackSnapshot(stream.getReader());
  timings.snapshotFetched = performance.now();
  return image;
}

// Reads exactly `size` bytes from a stream of byte chunks into `into`.
class ChunkReader {
  constructor(reader) {
    this.reader = reader;
    this.chunk = new Uint8Array(0);
  }

  async read(size, into = new Uint8Array(size)) {
    let filled = 0;
    while (filled < size) {
      if (this.chunk.length === 0) {
        const { done, value } = await this.reader.read();
        if (done) throw new BootError('snapshot_invalid');
        this.chunk = value;
      }
      const take = Math.min(size - filled, this.chunk.length);
      into.set(this.chunk.subarray(0, take), filled);
      this.chunk = this.chunk.subarray(take);
      filled += take;
    }
    return into;
  }
}

// Puts the kept pages where they belong, straight from the decompressor,
// so the unpacked copy never exists next to the image.
async function unpackSnapshot(reader) {
  const input = new ChunkReader(reader);
  const header = await input.read(20);
  const view = new DataView(header.buffer);
  const magic = new TextDecoder().decode(header.subarray(0, 8));
  if (magic !== 'XFSNAP1\n') throw new BootError('snapshot_invalid');
  const [page, total, runs] = [view.getUint32(8), view.getUint32(12), view.getUint32(16)];
  const table = new DataView((await input.read(8 * runs)).buffer);
  const image = new Uint8Array(total);
  for (let run = 0; run < runs; run += 1) {
    const start = table.getUint32(8 * run) * page;
    const size = table.getUint32(8 * run + 4) * page;
    const kept = Math.min(size, total - start);
    await input.read(kept, image.subarray(start, start + kept));
    if (kept < size) await input.read(size - kept);
  }
  return image;
}

// Pyodide loads its 1.2 MB JavaScript half only once it has the snapshot;
// importing it here lets both arrive side by side.
async function startPyodide(boot, snapshot) {
  const [{ loadPyodide }, asm] = await Promise.all([
    import(`${boot.pyodide}pyodide.mjs`),
    import(`${boot.pyodide}pyodide.asm.mjs`),
  ]);
  timings.pyodideImported = performance.now();
  const options = {
    indexURL: new URL(boot.pyodide, self.location.href).href,
    createPyodideModule: asm.default,
  };
  if (snapshot) options._loadSnapshot = snapshot;
  return loadPyodide(options);
}

// A snapshot that cannot be fetched or restored costs time, not the
// component: the runtime then boots the ordinary way.
async function startPyodideFast(boot) {
  if (!boot.snapshot) return { pyodide: await startPyodide(boot, null), restored: false };
  try {
    const snapshot = fetchSnapshot(boot.snapshot);
    const pyodide = await startPyodide(boot, snapshot);
    // Pyodide keeps the promise it restored from, and with it the image
    // (31 MB): detaching the image's buffer gives that memory back.
    (await snapshot).buffer.transfer?.(0);
    return { pyodide, restored: true };
  } catch (error) {
    console.warn('xinfeng: memory snapshot not usable, booting without it:', error);
    return { pyodide: await startPyodide(boot, null), restored: false };
  }
}

// The addresses come from the container page; the runtime loads code from
// nowhere else than these places on its own origin.
function checkBoot(boot) {
  const snapshot = boot.snapshot ? boot.snapshot.url : '/runtime/';
  if (!boot.pyodide.startsWith('/pyodide/') || !snapshot.startsWith('/runtime/')) {
    throw new BootError('boot_invalid');
  }
}

async function loadRuntime(boot) {
  checkBoot(boot);
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

// When each of the runtime's files arrived (performance.now() marks).
function resourceTimings() {
  return performance.getEntriesByType('resource').map((entry) => ({
    name: entry.name.split('/').pop(),
    start: Math.round(entry.startTime),
    end: Math.round(entry.responseEnd),
    bytes: entry.transferSize,
  }));
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

  // From Python: emit('ready'), emit('error', code), emit('size', null,
  // height), emit('selection', ref).
  emit(type, detail, height) {
    const message = { type };
    if (typeof detail === 'string') message[type === 'selection' ? 'ref' : 'code'] = detail;
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
    if (message.type === 'refresh') runtime.refresh(this.instance);
    if (message.type === 'visibility') runtime.visibility(this.instance, message.hidden === true);
    if (message.type === 'click') {
      runtime.click(this.instance, Number(message.x) || 0, Number(message.y) || 0);
    }
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
      return { ...timings, ...this.timings, ...steps, resources: resourceTimings() };
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
