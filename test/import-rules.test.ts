// Imports run one way (README "Architecture", docs/architecture.md): Biome's noRestrictedImports
// (per-folder overrides in biome.json) and noImportCycles make `npm run lint` fail on a
// back-import. Each case writes a small probe file into the real tree, lints it with the
// project's own config and reads the diagnostics' rule names (never their text).
import { execFile } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const BIOME = join(ROOT, "node_modules", ".bin", "biome");
const RESTRICTED = "lint/style/noRestrictedImports";
const CYCLE = "lint/suspicious/noImportCycles";

interface Probe {
  name: string;
  /** Folder in the tree the probe file goes into. */
  dir: string;
  source: string;
  /** Rule categories expected on the probe; empty: an allowed import, no diagnostic. */
  expected: string[];
}

const tag = `zz-import-probe-${process.pid}`;
const file = (p: Probe) => join(p.dir, `${tag}-${p.name}.ts`);

const PROBES: Probe[] = [
  {
    name: "lower-imports-higher",
    dir: "daemon/tasks",
    source: 'import type { Topology } from "../queue/index.js";\nexport type Probe = Topology;\n',
    expected: [RESTRICTED],
  },
  {
    name: "plugin-imports-daemon",
    dir: "daemon/metrics",
    source: 'import type { Daemon } from "../daemon.js";\nexport type Probe = Daemon;\n',
    expected: [RESTRICTED],
  },
  {
    name: "nats-imports-config",
    dir: "daemon/nats",
    source: 'import type { DaemonConfig } from "../config.js";\nexport type Probe = DaemonConfig;\n',
    expected: [RESTRICTED],
  },
  {
    name: "deep-import",
    dir: "daemon/claim",
    source: 'import { isTerminal } from "../tasks/record.js";\nexport const probe = isTerminal;\n',
    expected: [RESTRICTED],
  },
  {
    name: "shim-imports-daemon",
    dir: "agent-shim",
    source: 'import { MeshError } from "../daemon/index.js";\nexport const probe = MeshError;\n',
    expected: [RESTRICTED],
  },
  {
    name: "cli-deep-import",
    dir: "cli",
    source: 'import { TaskStore } from "../daemon/tasks/index.js";\nexport const probe = TaskStore;\n',
    expected: [RESTRICTED],
  },
  {
    name: "allowed-index-import",
    dir: "daemon/claim",
    source: 'import { isTerminal } from "../tasks/index.js";\nexport const probe = isTerminal;\n',
    expected: [],
  },
  {
    name: "cycle-a",
    dir: "daemon/util",
    source: `import { b } from "./${tag}-cycle-b.js";\nexport const a = (): number => b() + 1;\n`,
    expected: [CYCLE],
  },
  {
    name: "cycle-b",
    dir: "daemon/util",
    source: `import { a } from "./${tag}-cycle-a.js";\nexport const b = (): number => a() - 1;\n`,
    expected: [CYCLE],
  },
];

interface Diagnostic {
  category: string;
  location: { path: string };
}

let diagnostics: Diagnostic[] = [];

async function removeProbes(): Promise<void> {
  await Promise.all(PROBES.map((p) => rm(join(ROOT, file(p)), { force: true })));
}

beforeAll(async () => {
  try {
    await Promise.all(PROBES.map((p) => writeFile(join(ROOT, file(p)), p.source)));
    // Biome exits non-zero when it reports errors: the report is on stdout either way.
    const out = await promisify(execFile)(BIOME, ["lint", "--reporter=json", ...PROBES.map(file)], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
    }).then(
      (r) => r.stdout,
      (err: { stdout?: string }) => err.stdout ?? "",
    );
    diagnostics = (JSON.parse(out) as { diagnostics: Diagnostic[] }).diagnostics;
  } finally {
    await removeProbes();
  }
}, 60_000);

afterAll(removeProbes);

describe("import rules", () => {
  it.each(PROBES.map((p) => [p.name, p] as const))("%s", (_name, p) => {
    const rules = diagnostics.filter((d) => d.location.path === file(p)).map((d) => d.category);
    expect([...new Set(rules)].sort()).toEqual(p.expected);
  });
});
