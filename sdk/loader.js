// xinfeng embed loader, served by the provider at /embed/loader.js.
//
//   <script src="https://provider.example/embed/loader.js"></script>
//   xinfeng.mount(element, {provider, license, product, token, theme});
//
// mount() puts the provider's container page into a cross-origin iframe and
// turns its messages (events only: ready, error, size) into DOM events on
// the element: 'xinfeng:ready', 'xinfeng:error' (detail.code), 'xinfeng:size'.
// No eval, no inline code: it works under a strict host-page CSP.
(function () {
  'use strict';

  const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
  const MIN_HEIGHT = 120;
  const MAX_HEIGHT = 4000;
  const EVENTS = new Set(['ready', 'error', 'size']);
  // A container the provider refuses to serve (or the browser refuses to
  // frame) sends nothing, so silence is reported as an error too.
  const READY_TIMEOUT_MS = 60000;

  function containerUrl(options) {
    const provider = new URL(options.provider);
    if (provider.protocol !== 'https:' && provider.protocol !== 'http:') {
      throw new Error('xinfeng: provider must be an http(s) URL');
    }
    if (!ID.test(options.license) || !ID.test(options.product)) {
      throw new Error('xinfeng: license and product must be plain identifiers');
    }
    const theme = options.theme || 'light';
    const fragment = new URLSearchParams({ token: options.token, theme });
    const path = `/embed/${options.license}/${options.product}/`;
    return { origin: provider.origin, src: `${provider.origin}${path}#${fragment}` };
  }

  function sizeFrame(frame, options) {
    frame.title = options.title || `xinfeng ${options.product}`;
    frame.referrerPolicy = 'strict-origin';
    frame.style.border = '0';
    frame.style.display = 'block';
    frame.style.width = options.width || '100%';
    frame.style.height = options.height || '560px';
  }

  function mount(element, options) {
    const { origin, src } = containerUrl(options);
    const frame = document.createElement('iframe');
    sizeFrame(frame, options);
    const fire = (type, detail) =>
      element.dispatchEvent(new CustomEvent(`xinfeng:${type}`, { detail }));
    const timer = setTimeout(() => fire('error', { code: 'timeout' }),
      options.timeoutMs || READY_TIMEOUT_MS);

    function onMessage(event) {
      if (event.source !== frame.contentWindow || event.origin !== origin) return;
      const data = event.data;
      if (!data || data.source !== 'xinfeng' || !EVENTS.has(data.type)) return;
      const detail = {};
      if (typeof data.code === 'string') detail.code = data.code.slice(0, 64);
      if (data.type === 'size' && Number.isFinite(data.height)) {
        detail.height = Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, data.height));
        if (!options.height) frame.style.height = `${detail.height}px`;
      } else {
        clearTimeout(timer);
      }
      fire(data.type, detail);
    }

    window.addEventListener('message', onMessage);
    frame.src = src;
    element.replaceChildren(frame);
    return {
      frame,
      unmount() {
        clearTimeout(timer);
        window.removeEventListener('message', onMessage);
        frame.remove();
      },
    };
  }

  const api = Object.freeze({ mount });
  if (!window.xinfeng) {
    Object.defineProperty(window, 'xinfeng', { value: api, enumerable: true });
  }
})();
