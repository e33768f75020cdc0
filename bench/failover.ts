/**
 * Scenario `failover`: how long a task is without a live run after its worker dies. Two meshd
 * processes serve one pool with one slot each; a task whose command runs until cancelled is
 * claimed by one of them, which is then killed with SIGKILL. Measured per kill: SIGKILL ->
 * the task's command running on the other worker, and the owner's last heartbeat (read from the
 * record right after the kill) -> claimed elsewhere (the claim's time in the record) and ->
 * running elsewhere (the command has started), against the documented bound lease + 2 s
 * after the last heartbeat. The killed worker is replaced before the next round.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { validateTaskSpec } from "../daemon/index.js";
import { makeTempDir, NatsServer, waitFor } from "../test/harness/index.js";
import { type MeshdProcess, openClient, spawnMeshd } from "../test/support/mesh.js";
import { percentile, round } from "./stats.js";

export interface FailoverOptions {
  kills: number;
  leaseMs: number;
}

export async function failoverScenario(opts: FailoverOptions) {
  const nats = await NatsServer.start();
  const client = await openClient(nats.url);
  const dir = await makeTempDir("bench-failover-");
  const pool = "failover";
  const lease = `${opts.leaseMs}ms`;
  const workers = new Map<string, MeshdProcess>();
  let gen = 0;
  const startWorker = async (): Promise<void> => {
    const name = `fo${gen++}`;
    const p = await spawnMeshd([
      ...["--nats", nats.url, "--pools", pool, "--slots", "1", "--lease", lease],
      ...["--name", name, "--runners", "command", "--no-http", "--log-level", "warn"],
    ]);
    workers.set(name, p);
    // Ready once it is in the presence registry (it listens for lease beacons before that).
    await waitFor(
      async () => (await client.api.listWorkers()).some((w) => w.workerId.startsWith(`${name}-`)),
      {
        name: `worker ${name} present`,
        timeoutMs: 30_000,
      },
    );
  };
  const killToRunning: number[] = [];
  const heartbeatToRunning: number[] = [];
  const heartbeatToClaimed: number[] = [];
  try {
    await startWorker();
    await startWorker();
    for (let k = 0; k < opts.kills; k++) {
      const starts = join(dir, `starts-${k}`);
      // Each attempt appends "<attempt> <worker> <ms>" when it starts, then runs until stopped.
      const spec = validateTaskSpec({
        id: `failover-${Date.now().toString(36)}-${k}`,
        prompt: "run until cancelled",
        pool,
        runner: "command",
        maxAttempts: 5,
        command: [
          process.execPath,
          "-e",
          `require("fs").appendFileSync(${JSON.stringify(starts)}, process.env.MESH_ATTEMPT + " " + process.env.MESH_WORKER_ID + " " + Date.now() + "\\n"); setInterval(() => {}, 1000);`,
        ],
      });
      await client.api.submit([spec]);
      const first = await waitFor(async () => (await startLines(starts))[0], {
        name: `round ${k}: first attempt running`,
        timeoutMs: 30_000,
      });
      // Let it run a random part of a heartbeat interval, so kills fall anywhere between beats.
      await new Promise((r) => setTimeout(r, 500 + Math.random() * (opts.leaseMs / 3)));
      const victimName = first.worker.slice(0, first.worker.lastIndexOf("-"));
      const victim = workers.get(victimName);
      if (!victim) throw new Error(`round ${k}: no worker ${victimName}`);
      const tKill = Date.now();
      victim.kill("SIGKILL");
      await victim.exited;
      workers.delete(victimName);
      const held = await client.api.getTask(spec.id);
      const lastBeat = Date.parse(held.record.heartbeatAt ?? held.record.updatedAt);
      const second = await waitFor(
        async () => (await startLines(starts)).find((l) => l.attempt > first.attempt),
        {
          name: `round ${k}: running elsewhere`,
          timeoutMs: 10 * opts.leaseMs + 30_000,
        },
      );
      killToRunning.push(second.at - tKill);
      heartbeatToRunning.push(second.at - lastBeat);
      const taken = (await client.api.getTask(spec.id)).record.attempts.find(
        (a) => a.attempt === second.attempt,
      );
      if (taken) heartbeatToClaimed.push(Date.parse(taken.claimedAt) - lastBeat);
      await client.api.cancel(spec.id);
      await waitFor(async () => (await client.api.getTask(spec.id)).record.state === "cancelled", {
        name: `round ${k}: cancelled`,
        timeoutMs: 30_000,
      });
      await startWorker();
      process.stderr.write(
        `failover: kill ${k + 1}/${opts.kills}: running elsewhere ${killToRunning[k]} ms after SIGKILL (bound ${opts.leaseMs + 2000} ms)\n`,
      );
    }
  } finally {
    for (const w of workers.values()) w.kill("SIGKILL");
    await Promise.all([...workers.values()].map((w) => w.exited));
    await client.close();
    await nats.cleanup();
  }
  const boundMs = opts.leaseMs + 2000;
  const row = (what: string, xs: number[]) => ({
    measure: what,
    kills: xs.length,
    p50Ms: round(percentile(xs, 50), 0),
    p99Ms: round(percentile(xs, 99), 0),
    maxMs: round(Math.max(...xs), 0),
    leaseMs: opts.leaseMs,
    boundMs,
    withinBound: xs.filter((x) => x <= boundMs).length,
  });
  const killP99 = round(percentile(killToRunning, 99), 0);
  const beatP99 = round(percentile(heartbeatToRunning, 99), 0);
  return {
    leaseMs: opts.leaseMs,
    boundMs,
    // Issue 17's target: SIGKILL of a worker -> its task running elsewhere, p99 over the kills,
    // at most lease + 2 s. The documented bound counts from the owner's last heartbeat (the
    // kill falls up to a third of a lease after it), so that p99 is shown against it too.
    targets: {
      kills: killToRunning.length,
      killToRunningP99Ms: killP99,
      killToRunningP99WithinBound: killP99 <= boundMs,
      heartbeatToRunningP99Ms: beatP99,
      heartbeatToRunningP99WithinBound: beatP99 <= boundMs,
    },
    rows: [
      row("SIGKILL -> running elsewhere", killToRunning),
      row("last heartbeat -> claimed elsewhere", heartbeatToClaimed),
      row("last heartbeat -> running elsewhere", heartbeatToRunning),
    ],
    killToRunningMs: killToRunning,
    heartbeatToRunningMs: heartbeatToRunning,
    heartbeatToClaimedMs: heartbeatToClaimed,
  };
}

async function startLines(file: string): Promise<Array<{ attempt: number; worker: string; at: number }>> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [a, w, t] = l.split(" ");
      return { attempt: Number(a), worker: w ?? "", at: Number(t) };
    });
}
