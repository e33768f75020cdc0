import { join } from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { checkChaos, waitAllTerminal, writeChaosScript } from "./support/chaos.js";
import { MESH_BIN, openClient } from "./support/mesh.js";
import { killFirstRunning, peakUse, rawHolders, runSpans, startQuotaFleet } from "./support/quota.js";
import { nodeTask } from "./support/tasks.js";

const CAPACITY = 5;
const TASKS = 10;

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

describe("quota: a shared resource across daemons", () => {
  it("never runs tasks whose uses together pass the capacity, with a daemon SIGKILLed mid-run", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const client = await openClient([nats.url]);
    cleanup.push(() => client.close());
    const fleet = await startQuotaFleet(nats.url, { resources: { stagingdb: { capacity: CAPACITY } } });
    for (const p of fleet.values()) cleanup.push(() => p.kill("SIGKILL"));
    await waitFor(() => client.api.listWorkers().then((ws) => ws.length === 3), {
      name: "three workers up",
      timeoutMs: 60_000,
    });
    const dir = await makeTempDir("quota-res-");
    const script = await writeChaosScript(dir);
    const logFile = join(dir, "side-effects.log");
    const units = new Map<string, number>();
    const specs = Array.from({ length: TASKS }, (_, i) => {
      const s = nodeTask("", {
        pool: "q",
        maxAttempts: 10,
        uses: { stagingdb: 2 + (i % 2) },
        command: [process.execPath, script],
        env: { TASK_CHAOS_LOG: logFile, TASK_CHAOS_MS: "800" },
      });
      units.set(s.id, 2 + (i % 2));
      return s;
    });
    const ids = specs.map((s) => s.id);
    await client.api.submit(specs);

    const { taskId: victim, name: victimName, onVictim } = await killFirstRunning(logFile, fleet);
    const survivor = [...fleet.keys()].find((n) => n !== victimName)!;

    const records = await waitAllTerminal([nats.url], ids, 120_000);
    const report = await checkChaos(logFile, ids, records, onVictim);
    expect(report.problems).toEqual([]);
    expect(records.get(victim)!.attempts.some((a) => a.outcome === "lost" && onVictim(a.workerId))).toBe(
      true,
    );
    const peak = peakUse(await runSpans(logFile), (id) => units.get(id) ?? 0);
    console.log(`quota resources: peak ${peak} units at once (capacity ${CAPACITY})`);
    expect(peak).toBeLessThanOrEqual(CAPACITY);
    await waitFor(async () => (await rawHolders([nats.url], "res.stagingdb")).length === 0, {
      name: "the resource's slot record empty",
      timeoutMs: 10_000,
    });

    // Refused at submit, naming the field, and nothing submitted.
    const mesh = (input: string) =>
      execa(process.execPath, [MESH_BIN, "submit", "-"], {
        reject: false,
        input,
        env: { NO_COLOR: "1", MESH_DAEMON: join(fleet.get(survivor)!.stateDir, "meshd.sock") },
      });
    const over = await mesh(
      JSON.stringify({
        id: "too-big",
        prompt: "x",
        runner: "command",
        command: ["true"],
        uses: { stagingdb: 6 },
      }),
    );
    expect(over.exitCode).toBe(2);
    expect(over.stderr).toMatch(/uses\.stagingdb: 6 units, but resource "stagingdb" has a capacity of 5/);
    const unknown = await mesh(
      JSON.stringify({
        id: "unknown-res",
        prompt: "x",
        runner: "command",
        command: ["true"],
        uses: { nosuch: 1 },
      }),
    );
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/uses\.nosuch: no live daemon declares resource "nosuch"/);
    expect(await client.store.get("too-big")).toBeUndefined();
    expect(await client.store.get("unknown-res")).toBeUndefined();
  });
});
