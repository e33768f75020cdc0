// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * Issue 15 §2/§4: a mesh-wide cap held as leased slots. Three meshd processes with more local
 * slots than the cap run more tasks than it allows; one daemon is SIGKILLed mid-run. The side
 * effects the tasks log (an independent record, read without the daemon's code) show that no
 * more than the cap ever ran at once, every task succeeded exactly once, and the killed
 * daemon's slots came back (its tasks finished elsewhere, the slot record ends empty). The same
 * for a Claude account's cap with the real Claude Code: sessions run a side-effect-logging tool,
 * the mock API notes each conversation, and a daemon is SIGKILLed while a session of it runs.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { pause } from "../daemon/util/abort.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { answer, bash, FAKE_API_KEY, startMockAnthropic } from "./mock-anthropic/index.js";
import { checkChaos, openRun, waitAllTerminal, writeChaosScript } from "./support/chaos.js";
import { MESH_BIN, openClient } from "./support/mesh.js";
import {
  killFirstRunning,
  peakUse,
  rawHolders,
  runSpans,
  startClaudeFleet,
  startQuotaFleet,
} from "./support/quota.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

const CAP = 3;
const TASKS = 12;
const CLAUDE_CAP = 2;

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

/** Three daemons of pool `q` sharing `quota`; each is SIGKILLed at the end of the test. */
async function startFleet(url: string, quota: Record<string, unknown>, names?: string[]) {
  const fleet = await startQuotaFleet(url, quota, names);
  for (const p of fleet.values()) cleanup.push(() => p.kill("SIGKILL"));
  return fleet;
}

describe("quota slots across daemons", () => {
  it("never runs more than a pool's cap at once, with a daemon SIGKILLed mid-run, and its slots come back", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const client = await openClient([nats.url]);
    cleanup.push(() => client.close());
    const fleet = await startFleet(nats.url, { pools: { q: { maxSessions: CAP } } });
    await waitFor(() => client.api.listWorkers().then((ws) => ws.length === 3), {
      name: "three workers up",
      timeoutMs: 60_000,
    });
    const dir = await makeTempDir("quota-slots-");
    const script = await writeChaosScript(dir);
    const logFile = join(dir, "side-effects.log");
    const specs = Array.from({ length: TASKS }, () =>
      nodeTask("", {
        pool: "q",
        maxAttempts: 10,
        command: [process.execPath, script],
        env: { TASK_CHAOS_LOG: logFile, TASK_CHAOS_MS: "1000" },
      }),
    );
    const ids = specs.map((s) => s.id);
    await client.api.submit(specs);

    const { taskId: victim, onVictim } = await killFirstRunning(logFile, fleet);

    const records = await waitAllTerminal([nats.url], ids, 120_000);
    const report = await checkChaos(logFile, ids, records, onVictim);
    expect(report.problems).toEqual([]);
    // The killed daemon's task finished elsewhere, after a takeover.
    const taken = records.get(victim)!;
    expect(taken.state).toBe("succeeded");
    expect(taken.attempts.some((a) => a.outcome === "lost" && onVictim(a.workerId))).toBe(true);
    expect(onVictim(taken.attempts.at(-1)?.workerId ?? "")).toBe(false);

    const spans = await runSpans(logFile);
    const peak = peakUse(spans);
    console.log(`quota slots: ${spans.length} runs, peak ${peak} at once (cap ${CAP})`);
    expect(peak).toBeLessThanOrEqual(CAP);
    // Every slot came back: the killed daemon's too (nothing holds pool q any more).
    await waitFor(async () => (await rawHolders([nats.url], "pool.q")).length === 0, {
      name: "pool q's slot record empty",
      timeoutMs: 10_000,
    });
  });

  it("mesh quota shows each cap, the slots in use and by which task on which host", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const client = await openClient([nats.url]);
    cleanup.push(() => client.close());
    const fleet = await startFleet(
      nats.url,
      { pools: { q: { maxSessions: 1 } }, accounts: { team: { maxSessions: 2, startsPerMinute: 5 } } },
      ["qa"],
    );
    const socket = join(fleet.get("qa")!.stateDir, "meshd.sock");
    const quota = async () => {
      const r = await execa(process.execPath, [MESH_BIN, "quota", "--json"], {
        reject: false,
        env: { NO_COLOR: "1", MESH_DAEMON: socket },
      });
      expect(r.exitCode, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { entries: Array<Record<string, any>> };
    };
    await waitFor(() => existsSync(socket), { name: "qa's socket", timeoutMs: 60_000 });
    const dir = await makeTempDir("quota-cli-");
    const gate = join(dir, "go");
    // Runs until the test creates `gate`: it holds pool q's only slot meanwhile.
    const hold = nodeTask(
      `const f=${JSON.stringify(gate)};const t=setInterval(()=>{if(require("fs").existsSync(f)){clearInterval(t)}},20)`,
      {
        pool: "q",
      },
    );
    const next = nodeTask("", { pool: "q" });
    await client.api.submit([hold, next]);
    const held = await waitFor(
      async () => {
        const q = await quota();
        const pool = q.entries.find((e) => e.kind === "pool" && e.name === "q");
        return pool?.inUse === 1 && q;
      },
      { name: "pool q held", timeoutMs: 60_000 },
    );
    const pool = held.entries.find((e) => e.kind === "pool")!;
    expect(pool).toMatchObject({ capacity: 1, inUse: 1 });
    expect(pool.holders).toEqual([
      expect.objectContaining({
        taskId: hold.id,
        attempt: 1,
        units: 1,
        workerId: expect.stringMatching(/^qa-/),
      }),
    ]);
    expect(held.entries.find((e) => e.kind === "account")).toMatchObject({
      name: "team",
      capacity: 2,
      inUse: 0,
      startsPerMinute: 5,
      state: "ok",
    });
    // The second task waits for the slot: still queued while the first holds it.
    expect((await client.api.getTask(next.id)).record.state).toBe("queued");
    await writeFile(gate, "");
    await waitFor(
      async () =>
        ["succeeded"].includes((await client.api.getTask(next.id)).record.state) &&
        (await quota()).entries.find((e) => e.kind === "pool")?.inUse === 0,
      { name: "both done, the slot back", timeoutMs: 60_000 },
    );
  });
});

describe("quota: one Claude account across daemons (the real Claude Code, mock API)", () => {
  it("never has more sessions on the account at once than its cap, with a daemon SIGKILLed mid-session, and its slots come back", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const client = await openClient([nats.url]);
    cleanup.push(() => client.close());
    const dir = await makeTempDir("quota-claude-");
    const script = await writeChaosScript(dir);
    const logFile = join(dir, "side-effects.log");
    // Two independent logs. The mock API, in this process, notes when each request of a
    // conversation (one per attempt: its worktree) arrives and is answered. And each session's
    // first turn runs the chaos script through the Bash tool: `start`, a `tick` every 20 ms, `end`,
    // naming the task, attempt and worker (read off the session's worktree path, which is
    // <stateDir>/.../<task>/a<attempt>), so a session killed with its daemon stops ticking.
    const requests: Array<{ conversation: string; from: number; to: number }> = [];
    const workerOf = new Map<string, string>(); // a daemon's state dir's name -> its worker id
    const mock = await startMockAnthropic({
      script: async (ctx) => {
        const from = Date.now();
        const done = (r: ReturnType<typeof answer>) => {
          requests.push({ conversation: ctx.conversation, from, to: Date.now() });
          return r;
        };
        if (ctx.turn > 0) {
          await pause(500); // a slow model: sessions overlap unless the cap keeps them apart
          return done(answer("done"));
        }
        const parts = (ctx.workdir ?? "").split("/");
        const attempt = parts.at(-1)?.replace(/^a/, "") ?? "";
        const task = parts.at(-2) ?? "";
        const worker = [...workerOf].find(([d]) => parts.includes(d))?.[1] ?? "unknown";
        const env = `TASK_CHAOS_LOG=${logFile} TASK_CHAOS_MS=1000 MESH_TASK_ID=${task} MESH_ATTEMPT=${attempt} MESH_WORKER_ID=${worker}`;
        return done(bash(`${env} ${process.execPath} ${script}`));
      },
    });
    cleanup.push(() => mock.close());
    const keyFile = join(await makeTempDir("quota-key-"), "key");
    await writeFile(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
    const fleet = await startClaudeFleet(nats.url, {
      quota: { accounts: { team: { maxSessions: CLAUDE_CAP } } },
      apiUrl: mock.url,
      keyFile,
      allowedTools: ["Bash"],
    });
    for (const p of fleet.values()) cleanup.push(() => p.kill("SIGKILL"));
    const workers = await waitFor(() => client.api.listWorkers().then((ws) => ws.length === 3 && ws), {
      name: "three workers up",
      timeoutMs: 60_000,
    });
    for (const [name, p] of fleet) {
      const w = workers.find((x) => x.name === name)!;
      workerOf.set(basename(p.stateDir), w.workerId);
    }
    // Three times the cap: 3 daemons x 2 slots would run all 6 at once without it.
    const specs = Array.from({ length: 6 }, (_, i) =>
      validateTaskSpec({ id: uniqueId("qc"), prompt: `session ${i}`, pool: "qc", maxAttempts: 3 }),
    );
    const ids = specs.map((s) => s.id);
    await client.api.submit(specs);

    // Kill the daemon of the first session seen running its tool (it holds a slot then). Which
    // daemon wins the first slots is up to the claims, so the victim is whichever runs one first.
    const open = await waitFor(() => openRun(logFile), {
      name: "a session running its tool",
      timeoutMs: 120_000,
      intervalMs: 20,
    });
    const victim = open.taskId;
    const victimId = open.workerId;
    const victimName = workers.find((w) => w.workerId === victimId)?.name;
    expect(victimName, `the log's worker ${victimId} is one of the fleet's`).toBeDefined();
    const victimProc = fleet.get(victimName!)!;
    victimProc.kill("SIGKILL");
    await victimProc.exited;

    const records = await waitAllTerminal([nats.url], ids, 180_000);
    // Every task succeeded exactly once (a completed run of its winning attempt in the log).
    const report = await checkChaos(logFile, ids, records, (w) => w === victimId);
    expect(report.problems).toEqual([]);
    const taken = records.get(victim)!;
    expect(taken.attempts.some((a) => a.outcome === "lost" && a.workerId === victimId)).toBe(true);
    expect(taken.attempts.at(-1)?.workerId).not.toBe(victimId);

    // Neither log ever shows more sessions on the account at once than its cap.
    const runs = await runSpans(logFile);
    const conversations = new Map<string, { task: string; from: number; to: number }>();
    for (const r of requests) {
      const c = conversations.get(r.conversation) ?? { task: r.conversation, from: r.from, to: r.to };
      conversations.set(r.conversation, {
        task: c.task,
        from: Math.min(c.from, r.from),
        to: Math.max(c.to, r.to),
      });
    }
    const peakRuns = peakUse(runs);
    const peakSessions = peakUse([...conversations.values()]);
    console.log(
      `quota claude: ${conversations.size} sessions, peak ${peakSessions} at the API and ${peakRuns} in tools (cap ${CLAUDE_CAP})`,
    );
    expect(conversations.size).toBeGreaterThan(specs.length); // the killed session's too
    expect(peakSessions).toBeLessThanOrEqual(CLAUDE_CAP);
    expect(peakRuns).toBeLessThanOrEqual(CLAUDE_CAP);
    // The winning attempts ran on the account.
    const views = await Promise.all(ids.map((id) => client.api.getTask(id)));
    for (const v of views)
      expect(v.record.attempts.find((a) => a.outcome === "succeeded")?.account).toBe("team");
    // The killed daemon's slot came back: nothing holds the account any more.
    await waitFor(async () => (await rawHolders([nats.url], "acct.team")).length === 0, {
      name: "account team's slot record empty",
      timeoutMs: 10_000,
    });
    const live = await client.api.listWorkers();
    expect(live.map((w) => w.account)).toEqual(["team", "team"]);
    // The key never reaches presence or records.
    expect(JSON.stringify(live)).not.toContain(FAKE_API_KEY);
    expect(JSON.stringify(views)).not.toContain(FAKE_API_KEY);
  }, 180_000);
});
