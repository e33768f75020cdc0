// `npm start`: builds only when a source is newer than dist/, then becomes `mesh up` in this
// very process, so the signals npm forwards (and a terminal's Ctrl-C) reach mesh up itself.
// package.json runs it with `exec`, so no shell stands between npm and this process either.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const SOURCE_DIRS = ["daemon", "cli", "agent-shim", "proto", "test", "bench"];
const OUTPUTS = ["dist/cli/main.js", "dist/daemon/main.js", "dist/agent-shim/main.js"];

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (/\.m?ts$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Why a build is needed, or undefined when dist/ is up to date (or there are no sources). */
export function staleReason() {
  const outputs = OUTPUTS.map((f) => join(root, f));
  if (outputs.some((f) => !existsSync(f))) return "dist/ is missing";
  const dirs = SOURCE_DIRS.map((d) => join(root, d)).filter((d) => existsSync(d));
  if (dirs.length === 0) return undefined;
  const built = Math.min(...outputs.map((f) => statSync(f).mtimeMs));
  const configs = ["tsconfig.json", "package.json"].map((f) => statSync(join(root, f)).mtimeMs);
  const sources = Math.max(...configs, ...dirs.map(newestSource));
  return sources > built ? "sources changed since the last build" : undefined;
}

function run(argv) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { cwd: root, stdio: "inherit" });
    const stop = (sig) => child.kill(sig);
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    child.once("exit", (code, signal) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(signal ? 130 : (code ?? 1));
    });
  });
}

const reason = staleReason();
if (reason) {
  process.stderr.write(`building (${reason})...\n`);
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const code = (await run([tsc, "-p", "tsconfig.json"])) || (await run(["scripts/chmod-bins.mjs"]));
  if (code !== 0) process.exit(code);
}
const main = join(root, "dist/cli/main.js");
process.argv = [process.argv[0], main, "up", ...process.argv.slice(2)];
await import(pathToFileURL(main).href);
