// The lean node flags (lib/node-flags.ts) reach every long-lived process: the three bins'
// shebangs, the npm scripts that run the CLI in-process (`npm start`, `npm run mesh -- up`),
// the shim the daemon spawns, and meshd as the tests and the bench spawn it.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { defaultShimCommand } from "../daemon/runner/claude-runner.js";
import { LEAN_NODE_FLAGS } from "../lib/index.js";
import { MESHD_BIN, REPO_ROOT, shebangNodeFlags } from "./support/mesh.js";

const pkg = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, "utf8")) as {
  bin: Record<string, string>;
  scripts: Record<string, string>;
};
const flags = LEAN_NODE_FLAGS.join(" ");

describe("lean node flags", () => {
  it("every bin's source starts with a shebang that gives them", () => {
    for (const [name, out] of Object.entries(pkg.bin)) {
      const src = `${REPO_ROOT}${out.replace(/^dist\//, "").replace(/\.js$/, ".ts")}`;
      expect(readFileSync(src, "utf8").split("\n", 1)[0], name).toBe(`#!/usr/bin/env -S node ${flags}`);
    }
  });

  it("the built meshd's shebang gives them, and shebangNodeFlags reads them back", () => {
    expect(shebangNodeFlags(MESHD_BIN)).toEqual([...LEAN_NODE_FLAGS]);
  });

  it("the npm scripts that run the CLI in their own process give them", () => {
    expect(pkg.scripts.mesh).toBe(`node ${flags} dist/cli/main.js`);
    expect(pkg.scripts.start).toBe(`exec node ${flags} scripts/start.mjs`);
  });

  it("the daemon spawns its shim with them", () => {
    const cmd = defaultShimCommand();
    expect(cmd[0]).toBe(process.execPath);
    expect(cmd.slice(1, 1 + LEAN_NODE_FLAGS.length)).toEqual([...LEAN_NODE_FLAGS]);
  });
});
