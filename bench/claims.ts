/**
 * Scenario `claims`: no-op tasks through the full mesh claim path (submit -> KV record ->
 * doorbell -> claim CAS -> running -> succeeded) with 1 and 4 meshd processes, next to a raw
 * JetStream baseline (publish + one shared durable pull consumer + ackAck) with the same
 * message count and concurrency, in the same run on the same nats-server.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { validateTaskSpec } from "../daemon/index.js";
import type { TaskEvent } from "../daemon/tasks/events.js";
import { NatsServer, waitFor } from "../test/harness/index.js";
import { openClient, spawnMeshd } from "../test/support/mesh.js";
import { percentile, round, rssMb } from "./stats.js";

const SLOTS = 4;

export interface ClaimsRow {
  system: "mesh" | "raw-jetstream";
  processes: number;
  tasks: number;
  throughputPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Mesh only: how fast tasks were accepted (submit is part of the measured path). */
  submitPerSec?: number;
}

async function rawBaseline(url: string, processes: number, count: number): Promise<ClaimsRow> {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  const stream = `RAW${processes}`;
  await jsm.streams.add({
    name: stream,
    subjects: [`raw${processes}.>`],
    retention: RetentionPolicy.Workqueue,
  });
  await jsm.consumers.add(stream, { durable_name: "w", ack_policy: AckPolicy.Explicit, max_deliver: -1 });
  const workerJs = fileURLToPath(new URL("./raw-worker.js", import.meta.url));
  const latencies: number[] = [];
  const kids: ChildProcess[] = [];
  for (let i = 0; i < processes; i++) {
    const k = spawn(process.execPath, [workerJs, url, stream, "w", String(SLOTS)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    createInterface({ input: k.stdout! }).on("line", (l) => latencies.push(Number(l)));
    kids.push(k);
  }
  const js = jetstream(nc);
  const start = Date.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    inflight.push(
      js.publish(`raw${processes}.t`, JSON.stringify({ t: Date.now() }), { msgID: `r${processes}-${i}` }),
    );
    if (inflight.length >= 64) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  await waitFor(() => latencies.length >= count, {
    name: "raw baseline drained",
    timeoutMs: 300_000,
    intervalMs: 20,
  });
  const secs = (Date.now() - start) / 1000;
  for (const k of kids) k.kill("SIGTERM");
  await jsm.streams.delete(stream);
  await nc.close();
  return {
    system: "raw-jetstream",
    processes,
    tasks: count,
    throughputPerSec: round(count / secs),
    latencyP50Ms: round(percentile(latencies, 50)),
    latencyP99Ms: round(percentile(latencies, 99)),
  };
}

/** Collects `running`/terminal times per task from the state events (core subscription). */
function watchStates(nc: NatsConnection) {
  const running = new Map<string, number>();
  const done = new Map<string, number>();
  const sub = nc.subscribe("mesh.events.task.*.state", {
    callback: (_e, m) => {
      const e = m.json<TaskEvent>();
      if (e.type !== "state") return;
      if (e.state === "running" && !running.has(e.taskId)) running.set(e.taskId, Date.parse(e.at));
      if (e.state === "succeeded" || e.state === "dead" || e.state === "failed")
        done.set(e.taskId, Date.now());
    },
  });
  return { running, done, stop: () => sub.unsubscribe() };
}

/** `processes` noop-only meshd children serving `pool`, and a client once they are all listed. */
async function startFleet(url: string, processes: number, pool: string) {
  const daemons = [];
  for (let i = 0; i < processes; i++) {
    daemons.push(
      await spawnMeshd([
        "--nats",
        url,
        "--pools",
        pool,
        "--slots",
        String(SLOTS),
        "--runners",
        "noop",
        "--no-http",
        "--log-level",
        "warn",
      ]),
    );
  }
  const client = await openClient(url);
  await waitFor(
    async () => (await client.api.listWorkers()).filter((w) => w.pools.includes(pool)).length >= processes,
    {
      name: "daemons up",
      timeoutMs: 30_000,
    },
  );
  return { daemons, client };
}

async function meshRun(url: string, processes: number, count: number, pool: string): Promise<ClaimsRow> {
  const { daemons, client } = await startFleet(url, processes, pool);
  const watch = watchStates(client.nc);
  const specs = Array.from({ length: count }, (_, i) =>
    validateTaskSpec({
      id: `b${processes}-${Date.now().toString(36)}-${i}`,
      prompt: "noop",
      runner: "noop",
      pool,
    }),
  );
  const submitted = new Map<string, number>();
  const start = Date.now();
  const inflight: Promise<unknown>[] = [];
  for (const s of specs) {
    submitted.set(s.id, Date.now());
    inflight.push(client.api.submit([s]));
    if (inflight.length >= 64) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  const submitSecs = (Date.now() - start) / 1000;
  await waitFor(() => watch.done.size >= count, { name: "mesh drained", timeoutMs: 600_000, intervalMs: 50 });
  const secs = (Math.max(...watch.done.values()) - start) / 1000;
  const lat = specs
    .map((s) => (watch.running.get(s.id) ?? Number.NaN) - submitted.get(s.id)!)
    .filter(Number.isFinite);
  watch.stop();
  await client.close();
  for (const d of daemons) d.kill("SIGTERM");
  await Promise.all(daemons.map((d) => d.exited));
  return {
    system: "mesh",
    processes,
    tasks: count,
    throughputPerSec: round(count / secs),
    latencyP50Ms: round(percentile(lat, 50)),
    latencyP99Ms: round(percentile(lat, 99)),
    submitPerSec: round(count / submitSecs),
  };
}

/** Light load: one task at a time, each waited on before the next; submit -> running. */
async function lightLoad(
  url: string,
  count: number,
): Promise<{ p50: number; p99: number; idleRssMb: number }> {
  const { daemons, client } = await startFleet(url, 1, "light");
  const d = daemons[0]!;
  // Idle RSS: after start-up, before any work.
  const idleRssMb = rssMb(d.child.pid!);
  const watch = watchStates(client.nc);
  const lat: number[] = [];
  for (let i = 0; i < count; i++) {
    const s = validateTaskSpec({
      id: `light-${Date.now().toString(36)}-${i}`,
      prompt: "noop",
      runner: "noop",
      pool: "light",
    });
    const t = Date.now();
    await client.api.submit([s]);
    const at = await waitFor(() => watch.running.get(s.id), {
      name: "light task running",
      timeoutMs: 30_000,
      intervalMs: 1,
    });
    lat.push(at - t);
    await waitFor(() => watch.done.has(s.id), { name: "light task done", timeoutMs: 30_000, intervalMs: 1 });
  }
  watch.stop();
  await client.close();
  d.kill("SIGTERM");
  await d.exited;
  return { p50: round(percentile(lat, 50)), p99: round(percentile(lat, 99)), idleRssMb };
}

export async function claimsScenario(opts: { count: number; lightCount: number }) {
  const nats = await NatsServer.start();
  try {
    const rows: ClaimsRow[] = [];
    for (const n of [1, 4]) {
      process.stderr.write(`claims: raw JetStream, ${n} process(es)...\n`);
      rows.push(await rawBaseline(nats.url, n, opts.count));
      process.stderr.write(`claims: mesh, ${n} daemon(s)...\n`);
      rows.push(await meshRun(nats.url, n, opts.count, `bench${n}`));
    }
    process.stderr.write("claims: light-load latency and idle memory...\n");
    const light = await lightLoad(nats.url, opts.lightCount);
    const ratio = (n: number) => {
      const m = rows.find((r) => r.system === "mesh" && r.processes === n)!;
      const r = rows.find((x) => x.system === "raw-jetstream" && x.processes === n)!;
      return round(m.throughputPerSec / r.throughputPerSec, 2);
    };
    return {
      scenario: "claims",
      natsVersion: "2.9.10",
      slotsPerProcess: SLOTS,
      rows,
      ratios: { throughputMeshOverRaw1: ratio(1), throughputMeshOverRaw4: ratio(4) },
      lightLoad: { tasks: opts.lightCount, submitToRunningP50Ms: light.p50, submitToRunningP99Ms: light.p99 },
      idleDaemonRssMb: light.idleRssMb,
      targets: {
        throughputAtLeastHalfOfRawAt4: ratio(4) >= 0.5,
        lightP99Under50Ms: light.p99 < 50,
        idleRssUnder100Mb: light.idleRssMb < 100,
      },
    };
  } finally {
    await nats.cleanup();
  }
}
