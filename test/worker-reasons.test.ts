// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
// Why a worker does not offer a runner, as a new user sees it: the built `mesh` CLI as a child
// process against real `meshd` children without an API key (A) and without a `claude` command
// (B). `mesh workers` and `mesh task <id>` of a Claude task that waits say why, and the fix.
// Needs `npm run build` first.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { CLAUDE_BIN } from "./mock-anthropic/claude-cli.js";
import { MESH_BIN, type MeshdProcess, spawnMeshd } from "./support/mesh.js";

let nats: NatsServer;
let work: string;
const procs: MeshdProcess[] = [];
let socket: string;

async function meshd(name: string, options: Record<string, unknown>, env: NodeJS.ProcessEnv) {
  const cfg = join(work, `${name}.json`);
  await writeFile(
    cfg,
    JSON.stringify({ name, presenceInterval: "500ms", http: { enabled: false }, ...options }),
  );
  const p = await spawnMeshd(["-c", cfg, "--nats", nats.url, "--log-level", "warn"], env);
  procs.push(p);
  const sock = join(p.stateDir, "meshd.sock");
  await waitFor(() => existsSync(sock), { name: `meshd ${name} socket`, timeoutMs: 60_000 });
  return { proc: p, socket: sock };
}

async function mesh(args: string[]) {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    reject: false,
    env: { NO_COLOR: "1", MESH_DAEMON: socket },
    timeout: 60_000,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error(`${MESH_BIN} missing: run \`npm run build\` first`);
  nats = await NatsServer.start();
  work = await makeTempDir("reasons-");
  // A: Claude Code is there, the API key is not.
  const a = await meshd("nokey", { claude: { command: [CLAUDE_BIN] } }, { ANTHROPIC_API_KEY: "" });
  // B: a key, but no Claude Code; and the noop runner switched off.
  await meshd(
    "nocmd",
    { runners: ["claude", "command"], claude: { command: [join(work, "no-such-claude")] } },
    { ANTHROPIC_API_KEY: "sk-test-not-used" },
  );
  socket = a.socket;
  await waitFor(
    async () => {
      const r = await mesh(["workers", "--json"]);
      return r.code === 0 && JSON.parse(r.stdout).workers.length === 2;
    },
    { name: "both workers live", timeoutMs: 30_000 },
  );
}, 120_000);

afterAll(async () => {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.exited));
  await nats?.cleanup();
  await removeTempDirs();
});

describe("why a worker does not offer a runner", () => {
  it("mesh workers names each missing runner with its reason and fix", async () => {
    const r = await mesh(["workers", "--json"]);
    expect(r.code).toBe(0);
    const byName = Object.fromEntries(JSON.parse(r.stdout).workers.map((w: any) => [w.name, w]));
    const nokey = byName.nokey;
    expect(nokey.runners).not.toContain("claude");
    const claudeA = nokey.unavailableRunners.find((u: any) => u.runner === "claude");
    expect(claudeA.reason).toContain("ANTHROPIC_API_KEY");
    expect(claudeA.reason).toContain("claude.apiKeyFile");
    const nocmd = byName.nocmd;
    expect(nocmd.runners).toEqual(["command"]);
    const claudeB = nocmd.unavailableRunners.find((u: any) => u.runner === "claude");
    expect(claudeB.reason).toContain("not found");
    expect(claudeB.reason).toContain("claude.command");
    const noopB = nocmd.unavailableRunners.find((u: any) => u.runner === "noop");
    expect(noopB.reason).toContain("not enabled");

    const human = await mesh(["workers"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`${nokey.workerId} does not offer claude: `);
    expect(human.stdout).toContain(`${nocmd.workerId} does not offer claude: `);
  });

  it("mesh task of a waiting Claude task says which worker lacks what, and why", async () => {
    const spec = join(work, "claude.yaml");
    await writeFile(spec, "id: wants-claude\nprompt: write a haiku\n");
    expect((await mesh(["submit", spec])).code).toBe(0);
    const ids = Object.fromEntries(
      JSON.parse((await mesh(["workers", "--json"])).stdout).workers.map((w: any) => [w.name, w.workerId]),
    );

    const j = await mesh(["task", "wants-claude", "--json"]);
    expect(j.code).toBe(0);
    const why: string = JSON.parse(j.stdout).task.unschedulable;
    expect(why).toContain('runner "claude"');
    expect(why).toContain(`${ids.nokey} does not offer runner "claude": `);
    expect(why).toContain("ANTHROPIC_API_KEY");
    expect(why).toContain(`${ids.nocmd} does not offer runner "claude": `);
    expect(why).toContain("claude.command");

    const human = await mesh(["task", "wants-claude"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/unschedulable.*ANTHROPIC_API_KEY/);
  });

  it("mesh task of a task needing a label no worker has names the label", async () => {
    const spec = join(work, "gpu.yaml");
    await writeFile(
      spec,
      "id: wants-gpu\nprompt: p\nrunner: command\ncommand: [echo]\nlabels: {gpu: 'true'}\n",
    );
    expect((await mesh(["submit", spec])).code).toBe(0);
    const j = await mesh(["task", "wants-gpu", "--json"]);
    expect(JSON.parse(j.stdout).task.unschedulable).toContain("lacks label gpu=true");
  });
});
