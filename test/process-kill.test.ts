/**
 * kill -9 of a daemon takes every process its runs started with it: the command's own children,
 * one that called setsid and double-forked out of the run's process group, and for the claude
 * runner the shim, Claude Code and the processes its Bash tool started. Real meshd processes,
 * a real nats-server, real Claude Code against the mock Messages API.
 *
 * Each writer appends to its own file and records its pid; after the kill the files must stop
 * growing and every recorded process must be gone, and the attempt that takes over checks, as
 * its first act, that none of them is still alive.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { pause } from "../daemon/util/abort.js";
import { isAlive, makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  stall,
  startMockAnthropic,
} from "./mock-anthropic/index.js";
import { type MeshClient, type MeshdProcess, openClient, spawnMeshd, waitForState } from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let client: MeshClient;
const children: MeshdProcess[] = [];
const strays: number[] = [];

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  // Whatever a failing run left behind must not outlive the test.
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});
afterAll(async () => {
  await client?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

/**
 * A writer script: records its pid in `$2`, then appends a timestamp to `$1` every 50 ms. Run as
 * its own process (`sh writer.sh file pids`), so the pid it records is its own.
 */
const WRITER = 'echo $$ >> "$2"; while :; do date +%s%N >> "$1"; sleep 0.05; done\n';

/** Shell text starting a writer in the background, and one that leaves the process group
 * (setsid, and its parent exits at once: a double fork). */
function startWriters(dir: string, inGroup: string, escaped: string, pids: string): string {
  const w = join(dir, "writer.sh");
  return `sh ${w} ${inGroup} ${pids} > /dev/null 2>&1 & setsid sh -c 'sh ${w} ${escaped} ${pids} > /dev/null 2>&1 &'`;
}

/** Pids listed in `file`, once it holds `n` of them. */
async function pidsIn(file: string, n: number): Promise<number[]> {
  return waitFor(
    async () => {
      const pids = (await readFile(file, "utf8").catch(() => "")).split("\n").filter(Boolean).map(Number);
      return pids.length >= n ? pids : undefined;
    },
    { name: `${n} writer pids in ${file}`, timeoutMs: 60_000 },
  );
}

const size = (f: string) => stat(f).then((s) => s.size);

/** Resolves once none of `files` grows for `quietMs` (they must have started growing first). */
async function untilQuiet(files: string[], quietMs: number): Promise<void> {
  let last = await Promise.all(files.map(size));
  let since = Date.now();
  await waitFor(
    async () => {
      const now = await Promise.all(files.map(size));
      if (now.some((s, i) => s !== last[i])) {
        last = now;
        since = Date.now();
        return false;
      }
      return Date.now() - since >= quietMs;
    },
    { name: `writes to ${files.join(", ")} stopped`, timeoutMs: 10_000, intervalMs: 100 },
  );
}

/** The checks after the SIGKILL: the writers stop, stay stopped, and their processes are gone. */
async function assertAllGone(files: string[], pids: number[]): Promise<void> {
  strays.push(...pids);
  await untilQuiet(files, 1000);
  const sizes = await Promise.all(files.map(size));
  await pause(1000); // proving that nothing writes any more
  expect(await Promise.all(files.map(size))).toEqual(sizes);
  expect(pids.filter(isAlive)).toEqual([]);
}

describe("kill -9 of a daemon", () => {
  it("kills the command's whole tree, also what called setsid and double-forked", async () => {
    const dir = await makeTempDir("pkill-");
    const [inGroup, escaped, pids, check] = ["in-group.log", "escaped.log", "pids", "check.json"].map((f) =>
      join(dir, f),
    ) as [string, string, string, string];
    await writeFile(join(dir, "writer.sh"), WRITER);
    const pool = "pkill-cmd";
    const meshd = (name: string) =>
      spawnMeshd([
        "--nats",
        nats.url,
        "--pools",
        pool,
        "--slots",
        "1",
        "--lease",
        "2s",
        "--name",
        name,
        "--no-http",
      ]);
    const a = await meshd("victim");
    children.push(a);
    // Attempt 1 starts a writer in its group and one that leaves it (setsid, then the middle
    // process exits), then hangs. Attempt 2 reports which of those pids are still alive.
    const spec = nodeTask(
      `const { spawn } = require("child_process"); const fs = require("fs");
       if (process.env.MESH_ATTEMPT === "1") {
         spawn("sh", ["-c", ${JSON.stringify(startWriters(dir, inGroup, escaped, pids))}], { stdio: "ignore" });
         setInterval(() => {}, 1000);
       } else {
         const list = fs.readFileSync(${JSON.stringify(pids)}, "utf8").split("\\n").filter(Boolean).map(Number);
         const alive = list.filter((p) => { try { process.kill(p, 0); return true; } catch { return false; } });
         fs.writeFileSync(${JSON.stringify(check)}, JSON.stringify({ alive }));
       }`,
      { pool, maxAttempts: 3 },
    );
    await client.api.submit([spec]);
    const writers = await pidsIn(pids, 2);
    await waitFor(
      async () => (await size(inGroup).catch(() => 0)) > 0 && (await size(escaped).catch(() => 0)) > 0,
      {
        name: "both writers writing",
      },
    );
    const b = await meshd("heir");
    children.push(b);

    a.kill("SIGKILL");
    await a.exited;
    await assertAllGone([inGroup, escaped], writers);

    const done = await waitForState(client.api, spec.id, ["succeeded", "failed", "dead"], 60_000);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempts[0]?.outcome).toBe("lost");
    // The heir's attempt saw none of the first attempt's processes alive when it started.
    expect(JSON.parse(await readFile(check, "utf8"))).toEqual({ alive: [] });
  }, 90_000);

  it("a cancel stops what left the run's process group too (the daemon lives on)", async () => {
    const dir = await makeTempDir("pkill-cancel-");
    const [inGroup, escaped, pids] = ["in-group.log", "escaped.log", "pids"].map((f) => join(dir, f)) as [
      string,
      string,
      string,
    ];
    await writeFile(join(dir, "writer.sh"), WRITER);
    const pool = "pkill-cancel";
    const a = await spawnMeshd(["--nats", nats.url, "--pools", pool, "--slots", "1", "--no-http"]);
    children.push(a);
    const spec = nodeTask(
      `require("child_process").spawn("sh", ["-c", ${JSON.stringify(startWriters(dir, inGroup, escaped, pids))}], { stdio: "ignore" });
       setInterval(() => {}, 1000);`,
      { pool },
    );
    await client.api.submit([spec]);
    const writers = await pidsIn(pids, 2);
    await client.api.cancel(spec.id);
    const done = await waitForState(client.api, spec.id, ["cancelled", "succeeded", "failed", "dead"]);
    expect(done.record.state).toBe("cancelled");
    await assertAllGone([inGroup, escaped], writers);
  }, 60_000);

  it("kills the shim, Claude Code and what its Bash tool started", async () => {
    const mock: MockAnthropic = await startMockAnthropic({ script: () => answer("no script") });
    try {
      const dir = await makeTempDir("pkill-claude-");
      const [inGroup, escaped, pids] = ["in-group.log", "escaped.log", "pids"].map((f) => join(dir, f)) as [
        string,
        string,
        string,
      ];
      await writeFile(join(dir, "writer.sh"), WRITER);
      const pool = "pkill-claude";
      const cfg = join(dir, "meshd.json");
      await writeFile(
        cfg,
        JSON.stringify({
          pools: [pool],
          runners: ["claude"],
          slots: 1,
          lease: "2s",
          http: { enabled: false },
          claude: { command: [CLAUDE_BIN], env: { ANTHROPIC_BASE_URL: mock.url }, allowedTools: ["Bash"] },
        }),
      );
      const a = await spawnMeshd(["-c", cfg, "--nats", nats.url], { ANTHROPIC_API_KEY: FAKE_API_KEY });
      children.push(a);
      const id = uniqueId("pkill");
      // Turn 0: the Bash tool starts two background writers (one leaves the process group with
      // setsid); turn 1: the session hangs, as a long tool call or a slow API would.
      mock.setScript((ctx) => {
        if (ctx.turn === 0) {
          return bash(`${startWriters(dir, inGroup, escaped, pids)}; sleep 0.3; echo started`);
        }
        return stall();
      });
      await client.api.submit([
        validateTaskSpec({ id, prompt: "start the writers", pool, runner: "claude", maxAttempts: 1 }),
      ]);
      const writers = await pidsIn(pids, 2);
      await mock.waitForRequest((q) => q.turn === 1, {
        name: "the session hangs after its tool call",
        timeoutMs: 60_000,
      });
      const running = await waitForState(client.api, id, ["running"]);
      expect(running.record.result?.sessionId).toBeTruthy();
      // The shim and Claude Code: the meshd's process tree at this moment.
      const tree = await descendants(a.child.pid!);
      expect(tree.length).toBeGreaterThanOrEqual(3);

      a.kill("SIGKILL");
      await a.exited;
      await assertAllGone([inGroup, escaped], [...writers, ...tree]);
    } finally {
      await mock.close();
    }
  }, 120_000);
});

/** Every process below `root` (from /proc), now. */
async function descendants(root: number): Promise<number[]> {
  const { readdir } = await import("node:fs/promises");
  const parent = new Map<number, number[]>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const m = /\)\s+\S\s+(\d+)/.exec(s);
    if (!m) continue;
    const pp = Number(m[1]);
    parent.set(pp, [...(parent.get(pp) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    for (const c of parent.get(todo.shift()!) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}
