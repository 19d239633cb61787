// Builds a Pyodide memory snapshot with the component's code already
// imported, so that a browser restores a ready interpreter instead of
// booting one. Run by xinfeng.server.assets.ensure_snapshot:
//
//   node snapshot.mjs <pyodide dir> <code zip> <out file>
//
// The code zip holds the bundle without its generated key module: the
// snapshot carries no key and no secret, only public code and the state
// Python reaches by importing it. `_makeSnapshot` / `makeMemorySnapshot` are
// a private API of the pinned Pyodide build; a snapshot restores only into
// that exact build (Pyodide checks its build id).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pyodideDir, codeZip, outFile] = process.argv.slice(2);

// Python run before the snapshot is taken: import everything the component
// needs, and keep nothing of this machine in the environment (Emscripten
// sets its own defaults, and "_" to the path of this script).
const PREPARE = `
import os
from xinfeng.component import runtime
runtime.warm_up()
os.environ["_"] = "./this.program"
allowed = {"HOME", "LANG", "LD_LIBRARY_PATH", "LOGNAME", "PATH", "PWD",
           "PYTHONINSPECT", "USER", "_"}
assert set(os.environ) <= allowed, sorted(os.environ)
`;

async function main() {
  const pyodideUrl = pathToFileURL(join(pyodideDir, 'pyodide.mjs')).href;
  const { loadPyodide } = await import(pyodideUrl);
  const pyodide = await loadPyodide({
    indexURL: `${pyodideDir}/`,
    env: {},
    _makeSnapshot: true,
  });
  const site = pyodide.runPython('import sysconfig; sysconfig.get_path("purelib")');
  pyodide.unpackArchive(new Uint8Array(readFileSync(codeZip)), 'zip', { extractDir: site });
  pyodide.runPython(PREPARE);
  writeFileSync(outFile, pyodide.makeMemorySnapshot());
}

main().catch((error) => {
  console.error(String(error && error.message ? error.message : error).slice(-2000));
  process.exit(1);
});
