// xinfeng embed loader, served by the provider at /embed/loader.js.
//
// Declarative:
//   <script src="https://provider.example/embed/loader.js"></script>
//   <xinfeng-component license="lic-…" product="gd-terrain" token="…"
//                      theme="dark" params="month=7"></xinfeng-component>
// or from script:
//   xinfeng.mount(element, {provider, license, product, token, theme, params});
//
// Either way the provider's container page goes into a cross-origin iframe,
// and its messages (events only, never product data) become DOM events on
// the element: 'xinfeng:ready', 'xinfeng:error' (detail.code),
// 'xinfeng:size' (detail.height) and 'xinfeng:selection' (detail.ref: an
// opaque reference to what the user clicked, such as a station number).
// No eval, no inline code: it works under a strict host-page CSP.
(function () {
  'use strict';

  const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
  const REF = /^[^\u0000-\u001f\u007f<>]{1,64}$/;
  const MIN_HEIGHT = 120;
  const MAX_HEIGHT = 4000;
  const EVENTS = new Set(['ready', 'error', 'size', 'selection']);
  const THEMES = new Set(['light', 'dark']);
  // A container the provider refuses to serve (or the browser refuses to
  // frame) sends nothing, so silence is reported as an error too.
  const READY_TIMEOUT_MS = 60000;
  const SCRIPT_ORIGIN = document.currentScript
    ? new URL(document.currentScript.src, location.href).origin
    : null;

  function queryOf(params) {
    if (!params) return '';
    if (typeof params === 'string') return new URLSearchParams(params).toString();
    return new URLSearchParams(Object.entries(params)).toString();
  }

  function containerUrl(options) {
    const provider = new URL(options.provider || SCRIPT_ORIGIN);
    if (provider.protocol !== 'https:' && provider.protocol !== 'http:') {
      throw new Error('xinfeng: provider must be an http(s) URL');
    }
    if (!ID.test(options.license) || !ID.test(options.product)) {
      throw new Error('xinfeng: license and product must be plain identifiers');
    }
    const theme = THEMES.has(options.theme) ? options.theme : 'light';
    const fragment = new URLSearchParams({ token: options.token || '', theme });
    const query = queryOf(options.params);
    if (query) fragment.set('q', query);
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

  function eventDetail(data, frame, options) {
    const detail = {};
    if (data.type === 'selection') {
      // The container may carry the reference as `ref` or in its `code` slot.
      const ref = typeof data.ref === 'string' ? data.ref : data.code;
      if (typeof ref !== 'string' || !REF.test(ref)) return null;
      detail.ref = ref;
      return detail;
    }
    if (typeof data.code === 'string') detail.code = data.code.slice(0, 64);
    if (data.type === 'size' && Number.isFinite(data.height)) {
      detail.height = Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, data.height));
      if (!options.height) frame.style.height = `${detail.height}px`;
    }
    return detail;
  }

  function mount(element, options) {
    const { origin, src } = containerUrl(options);
    const frame = document.createElement('iframe');
    sizeFrame(frame, options);
    const fire = (type, detail) =>
      element.dispatchEvent(new CustomEvent(`xinfeng:${type}`, { detail, bubbles: true }));
    const timer = setTimeout(() => fire('error', { code: 'timeout' }),
      options.timeoutMs || READY_TIMEOUT_MS);

    function onMessage(event) {
      if (event.source !== frame.contentWindow || event.origin !== origin) return;
      const data = event.data;
      if (!data || data.source !== 'xinfeng' || !EVENTS.has(data.type)) return;
      const detail = eventDetail(data, frame, options);
      if (detail === null) return;
      if (data.type === 'ready' || data.type === 'error') clearTimeout(timer);
      fire(data.type, detail);
    }

    window.addEventListener('message', onMessage);
    frame.src = src;
    element.replaceChildren(frame);
    return {
      frame,
      // Ask the component to fetch its data again.
      refresh() {
        frame.contentWindow?.postMessage({ source: 'xinfeng-host', type: 'refresh' }, origin);
      },
      unmount() {
        clearTimeout(timer);
        window.removeEventListener('message', onMessage);
        frame.remove();
      },
    };
  }

  // <xinfeng-component>: mounts when connected, again when an attribute
  // that changes what it shows changes, and unmounts when removed.
  const ATTRIBUTES = ['provider', 'license', 'product', 'token', 'theme', 'params'];

  function defineElement() {
    if (!window.customElements || customElements.get('xinfeng-component')) return;
    customElements.define('xinfeng-component', class extends HTMLElement {
      static get observedAttributes() { return ATTRIBUTES; }

      connectedCallback() { this.schedule(); }

      disconnectedCallback() {
        if (this.mounted) this.mounted.unmount();
        this.mounted = null;
      }

      attributeChangedCallback() { if (this.isConnected) this.schedule(); }

      // Several attributes changing together (or an upgrade, which reports
      // every attribute) mount once.
      schedule() {
        if (this.pending) return;
        this.pending = true;
        queueMicrotask(() => {
          this.pending = false;
          if (this.isConnected) this.remount();
        });
      }

      refresh() {
        if (this.mounted) this.mounted.refresh();
      }

      remount() {
        if (this.mounted) this.mounted.unmount();
        const options = { height: this.getAttribute('height') || undefined };
        for (const name of ATTRIBUTES) options[name] = this.getAttribute(name) || undefined;
        this.style.display = this.style.display || 'block';
        try {
          this.mounted = mount(this, options);
        } catch (error) {
          this.mounted = null;
          this.dispatchEvent(new CustomEvent('xinfeng:error',
            { detail: { code: 'bad_options' }, bubbles: true }));
        }
      }
    });
  }

  const api = Object.freeze({ mount });
  if (!window.xinfeng) {
    Object.defineProperty(window, 'xinfeng', { value: api, enumerable: true });
  }
  defineElement();
})();
