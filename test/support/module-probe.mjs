// Preloaded into a meshd under test (`NODE_OPTIONS=--import <this file>`, MODULE_PROBE_OUT=<file>):
// keeps <file> holding every module the process has loaded so far, one path or URL a line, ES
// modules (seen by a load hook) and CommonJS ones (require's cache). The footprint test reads it
// to tell what an idle daemon loads.
import { writeFileSync } from "node:fs";
import { createRequire, register } from "node:module";

const out = process.env.MODULE_PROBE_OUT;
if (out) {
  const esmOut = `${out}.esm`;
  // The hooks run on their own thread: they append each loaded ES module's URL to a file.
  const hooks = `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  appendFileSync(${JSON.stringify(esmOut)}, url + "\\n");
  return next(url, context);
}`;
  register(`data:text/javascript,${encodeURIComponent(hooks)}`);
  const require = createRequire(import.meta.url);
  const dump = () => {
    let esm = "";
    try {
      esm = require("node:fs").readFileSync(esmOut, "utf8");
    } catch {
      // no ES module loaded yet
    }
    writeFileSync(out, `${esm}${Object.keys(require.cache).join("\n")}\n`);
  };
  setInterval(dump, 100).unref();
}
