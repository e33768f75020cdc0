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
import { connect } from "@nats-io/transport-node";
import { validateTaskSpec } from "../daemon/index.js";
import { poolConsumerName, TASKS_STREAM } from "../daemon/queue/topology.js";
import { NatsServer, waitFor } from "../test/harness/index.js";
import { openClient, spawnMeshd } from "../test/support/mesh.js";
import { type CpuPerTask, cpuMeter, percentile, round, rssMb } from "./stats.js";

const SLOTS = 4;

export interface ClaimsRow {
  system: "mesh" | "raw-jetstream";
  processes: number;
  tasks: number;
  /** The median of the measured rounds. */
  throughputPerSec: number;
  /** Submit -> running (mesh) or publish -> received (raw), over all measured rounds. */
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Mesh only: how fast tasks were accepted (submit is part of the measured path). */
  submitPerSec?: number;
  /** Every measured round's throughput, in order. */
  roundsPerSec: number[];
  /** CPU ms per task (medians of the rounds): where the work goes on this machine. */
  cpuMsPerTask: CpuPerTask;
}

interface RoundResult {
  perSec: number;
  latencies: number[];
  submitPerSec?: number;
  cpu: CpuPerTask;
}

/** A warm set of processes that can run rounds of `count` tasks. */
interface Fleet {
  run(count: number): Promise<RoundResult>;
  stop(): Promise<void>;
}

/**
 * The raw JetStream baseline: `processes` workers, each with SLOTS lanes that share one durable
 * pull consumer (next() one message, ackAck(), report its latency); the bench publishes.
 */
async function rawFleet(url: string, processes: number, serverPid?: number): Promise<Fleet> {
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
  let latencies: number[] = [];
  const kids: ChildProcess[] = [];
  for (let i = 0; i < processes; i++) {
    const k = spawn(process.execPath, [workerJs, url, stream, "w", String(SLOTS)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    createInterface({ input: k.stdout! }).on("line", (l) => latencies.push(Number(l)));
    kids.push(k);
  }
  const js = jetstream(nc);
  let seq = 0;
  return {
    async run(count) {
      latencies = [];
      const meter = cpuMeter(
        serverPid,
        kids.map((k) => k.pid!),
      );
      const start = Date.now();
      const inflight: Promise<unknown>[] = [];
      for (let i = 0; i < count; i++) {
        inflight.push(
          js.publish(`raw${processes}.t`, JSON.stringify({ t: Date.now() }), {
            msgID: `r${processes}-${seq++}`,
          }),
        );
        if (inflight.length >= 64) await Promise.all(inflight.splice(0));
      }
      await Promise.all(inflight);
      await waitFor(() => latencies.length >= count, {
        name: "raw baseline drained",
        timeoutMs: 300_000,
        intervalMs: 20,
      });
      return { perSec: count / ((Date.now() - start) / 1000), latencies, cpu: meter.end(count) };
    },
    async stop() {
      for (const k of kids) k.kill("SIGTERM");
      await jsm.streams.delete(stream);
      await nc.close();
    },
  };
}

/**
 * Waits until every task is terminal, then reads the timings from the task records themselves
 * (submittedAt, the first attempt's startedAt, finishedAt: all written on this machine's clock).
 * Nothing watches the bus while the tasks run, so the measurement costs the mesh no CPU; the raw
 * baseline's workers likewise only print a line per message.
 */
async function settledTimings(
  client: Awaited<ReturnType<typeof openClient>>,
  pool: string,
  ids: string[],
  timeoutMs: number,
): Promise<Map<string, { submitted: number; running: number; done: number }>> {
  const jsm = await jetstreamManager(client.nc);
  await waitFor(
    async () => {
      const c = await jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool));
      return c.num_pending === 0 && c.num_ack_pending === 0;
    },
    { name: "doorbells drained", timeoutMs, intervalMs: 25 },
  );
  const out = new Map<string, { submitted: number; running: number; done: number }>();
  for (let i = 0; i < ids.length; i += 64) {
    const got = await Promise.all(ids.slice(i, i + 64).map((id) => client.store.get(id)));
    for (const v of got) {
      const r = v?.record;
      if (!r?.finishedAt) throw new Error(`task ${v?.record.id ?? "?"} is not finished (${r?.state})`);
      out.set(r.id, {
        submitted: Date.parse(r.submittedAt),
        running: Date.parse(r.attempts[0]?.startedAt ?? r.finishedAt),
        done: Date.parse(r.finishedAt),
      });
    }
  }
  return out;
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

/** `processes` noop meshd daemons serving `pool`; the bench submits through the mesh API. */
async function meshFleet(url: string, processes: number, pool: string, serverPid?: number): Promise<Fleet> {
  const { daemons, client } = await startFleet(url, processes, pool);
  let batch = 0;
  return {
    async run(count) {
      const tag = `b${processes}-${Date.now().toString(36)}-${batch++}`;
      const specs = Array.from({ length: count }, (_, i) =>
        validateTaskSpec({ id: `${tag}-${i}`, prompt: "noop", runner: "noop", pool }),
      );
      const meter = cpuMeter(
        serverPid,
        daemons.map((d) => d.child.pid!),
      );
      const start = Date.now();
      const inflight: Promise<unknown>[] = [];
      for (const s of specs) {
        inflight.push(client.api.submit([s]));
        if (inflight.length >= 64) await Promise.all(inflight.splice(0));
      }
      await Promise.all(inflight);
      const submitSecs = (Date.now() - start) / 1000;
      const timings = [
        ...(
          await settledTimings(
            client,
            pool,
            specs.map((s) => s.id),
            600_000,
          )
        ).values(),
      ];
      const secs = (Math.max(...timings.map((x) => x.done)) - start) / 1000;
      return {
        perSec: count / secs,
        latencies: timings.map((x) => x.running - x.submitted),
        submitPerSec: count / submitSecs,
        cpu: meter.end(count),
      };
    },
    async stop() {
      await client.close();
      for (const d of daemons) d.kill("SIGTERM");
      await Promise.all(daemons.map((d) => d.exited));
    },
  };
}

function summarize(
  system: ClaimsRow["system"],
  processes: number,
  count: number,
  rounds: RoundResult[],
): ClaimsRow {
  const perSec = rounds.map((r) => r.perSec);
  const lat = rounds.flatMap((r) => r.latencies);
  const submit = rounds.flatMap((r) => (r.submitPerSec ? [r.submitPerSec] : []));
  return {
    system,
    processes,
    tasks: count,
    throughputPerSec: round(percentile(perSec, 50)),
    latencyP50Ms: round(percentile(lat, 50)),
    latencyP99Ms: round(percentile(lat, 99)),
    ...(submit.length ? { submitPerSec: round(percentile(submit, 50)) } : {}),
    roundsPerSec: perSec.map((x) => round(x)),
    cpuMsPerTask: {
      natsServer: percentile(
        rounds.map((r) => r.cpu.natsServer),
        50,
      ),
      workers: percentile(
        rounds.map((r) => r.cpu.workers),
        50,
      ),
      benchClient: percentile(
        rounds.map((r) => r.cpu.benchClient),
        50,
      ),
    },
  };
}

/** Light load: one task at a time, each finished before the next; submit -> running. */
async function lightLoad(
  url: string,
  count: number,
): Promise<{ p50: number; p99: number; idleRssMb: number }> {
  const { daemons, client } = await startFleet(url, 1, "light");
  const d = daemons[0]!;
  // Idle RSS: after start-up, before any work.
  const idleRssMb = rssMb(d.child.pid!);
  const lat: number[] = [];
  for (let i = 0; i < count; i++) {
    const s = validateTaskSpec({
      id: `light-${Date.now().toString(36)}-${i}`,
      prompt: "noop",
      runner: "noop",
      pool: "light",
    });
    await client.api.submit([s]);
    const t = (await settledTimings(client, "light", [s.id], 30_000)).get(s.id)!;
    lat.push(t.running - t.submitted);
  }
  await client.close();
  d.kill("SIGTERM");
  await d.exited;
  return { p50: round(percentile(lat, 50)), p99: round(percentile(lat, 99)), idleRssMb };
}

export interface ClaimsOptions {
  /** Tasks per measured round. */
  count: number;
  /** Measured rounds per system; the table shows the median. */
  rounds: number;
  /** Unmeasured tasks first, through the same processes (JIT, connections, caches). */
  warmup: number;
  lightCount: number;
}

export async function claimsScenario(opts: ClaimsOptions) {
  const nats = await NatsServer.start();
  try {
    const nc = await connect({ servers: nats.url });
    const natsVersion = nc.info?.version ?? "unknown";
    await nc.close();
    const rows: ClaimsRow[] = [];
    for (const n of [1, 4]) {
      process.stderr.write(`claims: ${n} process(es): starting raw workers and meshd daemons...\n`);
      const raw = await rawFleet(nats.url, n, nats.pid);
      const mesh = await meshFleet(nats.url, n, `bench${n}`, nats.pid);
      try {
        process.stderr.write(`claims: ${n} process(es): warm-up, ${opts.warmup} tasks each...\n`);
        await raw.run(opts.warmup);
        await mesh.run(opts.warmup);
        // Alternating rounds: a machine that slows down or speeds up mid-run hits both alike.
        const rawRounds: RoundResult[] = [];
        const meshRounds: RoundResult[] = [];
        for (let i = 0; i < opts.rounds; i++) {
          process.stderr.write(`claims: ${n} process(es): round ${i + 1}/${opts.rounds}...\n`);
          rawRounds.push(await raw.run(opts.count));
          meshRounds.push(await mesh.run(opts.count));
        }
        rows.push(summarize("raw-jetstream", n, opts.count, rawRounds));
        rows.push(summarize("mesh", n, opts.count, meshRounds));
      } finally {
        await raw.stop();
        await mesh.stop();
      }
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
      natsVersion,
      slotsPerProcess: SLOTS,
      rounds: opts.rounds,
      warmupTasks: opts.warmup,
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
