/**
 * Scenario `claims`: no-op tasks through the full mesh claim path (submit -> KV record ->
 * doorbell -> claim CAS -> running -> succeeded) with 1 and 4 meshd processes, next to a raw
 * JetStream baseline (publish + one shared durable pull consumer + ackAck) and the protocol
 * floor (the same fenced protocol in plain nats.js calls, see floor-worker.ts), with the same
 * message count and concurrency, in the same run on the same nats-server.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { credentials, Metadata } from "@grpc/grpc-js";
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import {
  JsPublisher,
  kvSubject,
  poolConsumerName,
  STATE_EVENTS_FILTER,
  TASKS_STREAM,
  validateTaskSpec,
} from "../daemon/index.js";
import { freePort, makeTempDir, NatsServer, removeTempDir, waitFor } from "../test/harness/index.js";
import { MeshServiceClient } from "../proto/index.js";
import { openClient, spawnMeshd } from "../test/support/mesh.js";
import { type LightOptions, type LightResult, type LightSide, measureLight } from "./light.js";
import { type CpuPerTask, cpuMeter, percentile, round, rssMb } from "./stats.js";

const SLOTS = 4;

export interface ClaimsRow {
  system: "mesh" | "protocol-floor" | "raw-jetstream" | "bullmq-redis";
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
 * `processes` children running `script` (bench/*.js) with `args`, each printing a line per
 * finished message: its latency and when it finished (see lanes.ts).
 */
function spawnWorkers(script: string, args: string[], processes: number) {
  const file = fileURLToPath(new URL(script, import.meta.url));
  const state = { latencies: [] as number[], lastDoneAt: 0, stopping: false, failure: "" };
  const kids: ChildProcess[] = [];
  for (let i = 0; i < processes; i++) {
    const k = spawn(process.execPath, [file, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    createInterface({ input: k.stdout! }).on("line", (l) => {
      const [latency, doneAt] = l.split(" ").map(Number);
      state.latencies.push(latency!);
      state.lastDoneAt = Math.max(state.lastDoneAt, doneAt!);
    });
    k.once("exit", (code, signal) => {
      if (!state.stopping) state.failure ||= `${script} exited (${code ?? signal}) during the run`;
    });
    kids.push(k);
  }
  return { state, kids };
}

/**
 * The latencies the workers of `spawnWorkers` report, taken in order for each `finished(ids)` of a
 * latency side (light.ts): resolves once as many more have come as `ids` names.
 */
function reportedLatencies(state: ReturnType<typeof spawnWorkers>["state"], name: string) {
  let taken = 0;
  return async (ids: string[]): Promise<number[]> => {
    await waitFor(() => state.failure || state.latencies.length >= taken + ids.length, {
      name: `${name} finished`,
      timeoutMs: 60_000,
      intervalMs: 2,
    });
    if (state.failure) throw new Error(`${name}: ${state.failure}`);
    const out = state.latencies.slice(taken, taken + ids.length);
    taken += ids.length;
    return out;
  };
}

/** Publishes `count` messages with at most 64 awaiting their acks, as both baselines do. */
async function publishAll(count: number, one: () => Promise<unknown>): Promise<void> {
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    inflight.push(one());
    if (inflight.length >= 64) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
}

/**
 * A baseline: `processes` workers running `script` (each prints one latency per finished
 * message), fed by the bench with `submit`; `cleanup` removes what the baseline created.
 */
function baselineFleet(
  name: string,
  processes: number,
  script: string,
  args: string[],
  serverPid: number | undefined,
  submit: () => Promise<unknown>,
  cleanup: () => Promise<void>,
): Fleet {
  const { state, kids } = spawnWorkers(script, args, processes);
  return {
    async run(count) {
      state.latencies = [];
      state.lastDoneAt = 0;
      const meter = cpuMeter(
        serverPid,
        kids.map((k) => k.pid!),
      );
      const start = Date.now();
      await publishAll(count, submit);
      await waitFor(() => state.failure || state.latencies.length >= count, {
        name: `${name} drained`,
        timeoutMs: 300_000,
        intervalMs: 20,
      });
      if (state.failure) throw new Error(`${name}: ${state.failure}`);
      const cpu = meter.end(count);
      // Ends when the last message was done, as the mesh's rounds end at the last finishedAt.
      const perSec = count / ((state.lastDoneAt - start) / 1000);
      return { perSec, latencies: state.latencies, cpu };
    },
    async stop() {
      state.stopping = true;
      for (const k of kids) k.kill("SIGTERM");
      await cleanup();
    },
  };
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
  const js = jetstream(nc);
  let seq = 0;
  return baselineFleet(
    "raw baseline",
    processes,
    "./raw-worker.js",
    [url, stream, "w", String(SLOTS)],
    serverPid,
    () =>
      js.publish(`raw${processes}.t`, JSON.stringify({ t: Date.now() }), { msgID: `r${processes}-${seq++}` }),
    async () => {
      await jsm.streams.delete(stream);
      await nc.close();
    },
  );
}

/**
 * The protocol floor: issue 2's fenced protocol with plain nats.js calls and nothing else. The
 * bench creates each task record in a KV bucket (compare-and-set on "no message yet") and rings a
 * doorbell carrying the record and its revision; floor-worker.ts claims and finishes it with two
 * compare-and-set writes and an ackAck() (as raw does). Same counts, concurrency and
 * bucket/stream settings as the mesh.
 */
async function floorFleet(url: string, processes: number, serverPid?: number): Promise<Fleet> {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  const stream = `FLOOR${processes}`;
  const bucket = `floor${processes}`;
  await jsm.streams.add({
    name: stream,
    subjects: [`floor${processes}.>`],
    retention: RetentionPolicy.Workqueue,
  });
  await jsm.consumers.add(stream, {
    durable_name: "w",
    ack_policy: AckPolicy.Explicit,
    max_deliver: -1,
    filter_subject: `floor${processes}.*`,
  });
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  const js = jetstream(nc);
  let seq = 0;
  return baselineFleet(
    "protocol floor",
    processes,
    "./floor-worker.js",
    [url, stream, "w", bucket, String(SLOTS)],
    serverPid,
    async () => {
      const id = `f${processes}-${seq++}`;
      const t = Date.now();
      const record = { id, state: "queued", attempt: 0, submittedAt: new Date(t).toISOString() };
      const created = await js.publish(kvSubject(bucket, id), JSON.stringify(record), {
        expect: { lastSubjectSequence: 0 },
      });
      const bell = JSON.stringify({ id, revision: created.seq, record, t });
      await js.publish(`floor${processes}.${id}`, bell, { msgID: `${id}#submit` });
    },
    async () => {
      await jsm.streams.delete(stream);
      await kv.destroy();
      await nc.close();
    },
  );
}

/**
 * The protocol's own pickup latency, for the latency rows (light.ts): pickup-floor-worker.ts with the
 * same lanes, and nothing of the mesh around it. `shape` is what the submit stores before a
 * worker can claim: "record-then-doorbell", the mesh's (create the queued record, then a doorbell
 * carrying its revision: two stored messages, one after the other), or "doorbell-only" (one
 * stored message, the claim creating the record: the least any design waking its workers through
 * a JetStream message can store). The worker stamps when it decides to claim, as a daemon stamps
 * `startedAt`.
 */
async function floorLightSide(
  url: string,
  shape: "record-then-doorbell" | "doorbell-only",
): Promise<LightSide> {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  const tag = shape === "doorbell-only" ? "pickup1" : "pickup2";
  const stream = tag.toUpperCase();
  await jsm.streams.add({ name: stream, subjects: [`${tag}.>`], retention: RetentionPolicy.Workqueue });
  await jsm.consumers.add(stream, {
    durable_name: "w",
    ack_policy: AckPolicy.Explicit,
    max_deliver: -1,
    filter_subject: `${tag}.*`,
  });
  const kv = await new Kvm(nc).create(tag, { history: 1 });
  // The mesh's own thin publisher (publish, await the PubAck on one shared reply subscription):
  // the least client code a JetStream publish can cost.
  const js = new JsPublisher(nc);
  const { state, kids } = spawnWorkers("./pickup-floor-worker.js", [url, stream, "w", tag, String(SLOTS)], 1);
  return {
    async submit(id, t) {
      const record = { id, state: "queued", attempt: 0, submittedAt: new Date(t).toISOString() };
      const key = id.replace(/[^-\w]/g, "_");
      if (shape === "doorbell-only") {
        await js.publish(`${tag}.${key}`, JSON.stringify({ id: key, record, t }), { msgID: `${key}#submit` });
        return;
      }
      const created = await js.publish(kvSubject(tag, key), JSON.stringify(record), {
        expectLastSubjectSequence: 0,
      });
      const bell = JSON.stringify({ id: key, revision: created.seq, record, t });
      await js.publish(`${tag}.${key}`, bell, { msgID: `${key}#submit` });
    },
    finished: reportedLatencies(state, `${shape} floor`),
    async stop() {
      state.stopping = true;
      for (const k of kids) k.kill("SIGTERM");
      await Promise.all(
        kids.map((k) => (k.exitCode === null ? new Promise((r) => k.once("exit", r)) : null)),
      );
      js.close();
      await jsm.streams.delete(stream).catch(() => undefined);
      await kv.destroy().catch(() => undefined);
      await nc.close();
    },
  };
}

/** Where Debian's redis-server is, or undefined (the BullMQ rows are then skipped with a message). */
function redisServerPath(): string | undefined {
  return ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find((p) => existsSync(p));
}

/**
 * A redis-server for the BullMQ peer, set up as production would run it: loopback only, a
 * password, append-only file fsynced every second (BullMQ's documented recommendation, with
 * `maxmemory-policy noeviction`).
 */
async function startRedis(bin: string) {
  const dir = await makeTempDir("bench-redis-");
  const port = await freePort();
  const password = randomBytes(16).toString("hex");
  const child = spawn(
    bin,
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--requirepass",
      password,
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
      "--save",
      "",
      "--maxmemory-policy",
      "noeviction",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout!.on("data", (b: Buffer) => {
    out += b.toString();
  });
  await waitFor(() => out.includes("Ready to accept connections") || child.exitCode !== null, {
    name: "redis-server ready",
    timeoutMs: 20_000,
    intervalMs: 20,
  });
  if (child.exitCode !== null) throw new Error(`redis-server exited: ${out.slice(-500)}`);
  return {
    port,
    password,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
      await removeTempDir(dir);
    },
  };
}

/**
 * The peer users would pick instead: BullMQ on Redis, `processes` workers each with SLOTS
 * concurrency on one queue, fed by the bench with Queue.add (64 awaiting at once, as the others).
 * Redis' CPU is counted where the others count nats-server's.
 */
async function bullmqFleet(redis: Awaited<ReturnType<typeof startRedis>>, processes: number): Promise<Fleet> {
  const { Queue } = await import("bullmq");
  const name = `claims${processes}-${Date.now().toString(36)}`;
  const queue = new Queue(name, {
    connection: { host: "127.0.0.1", port: redis.port, password: redis.password, maxRetriesPerRequest: null },
    defaultJobOptions: { removeOnComplete: { age: 3600 }, removeOnFail: { age: 86_400 } },
  });
  await queue.waitUntilReady();
  return baselineFleet(
    "bullmq peer",
    processes,
    "./bullmq-worker.js",
    [String(redis.port), redis.password, name, String(SLOTS)],
    redis.pid,
    () => queue.add("t", { t: Date.now() }),
    async () => {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    },
  );
}

/** The peer for the latency rows (light.ts): one BullMQ worker process with SLOTS concurrency. */
async function bullmqLightSide(redis: Awaited<ReturnType<typeof startRedis>>): Promise<LightSide> {
  const { Queue } = await import("bullmq");
  const name = `light-${Date.now().toString(36)}`;
  const queue = new Queue(name, {
    connection: { host: "127.0.0.1", port: redis.port, password: redis.password, maxRetriesPerRequest: null },
    defaultJobOptions: { removeOnComplete: { age: 3600 }, removeOnFail: { age: 86_400 } },
  });
  await queue.waitUntilReady();
  const { state, kids } = spawnWorkers(
    "./bullmq-worker.js",
    [String(redis.port), redis.password, name, String(SLOTS)],
    1,
  );
  return {
    async submit(id, t) {
      await queue.add("t", { t }, { jobId: id });
    },
    finished: reportedLatencies(state, "bullmq peer"),
    async stop() {
      state.stopping = true;
      for (const k of kids) k.kill("SIGTERM");
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    },
  };
}

/** Waits until the pool's doorbells are all acked: every task has reached a terminal state. */
async function drained(client: Awaited<ReturnType<typeof openClient>>, pool: string, timeoutMs: number) {
  const jsm = await jetstreamManager(client.nc);
  await waitFor(
    async () => {
      const c = await jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool));
      return c.num_pending === 0 && c.num_ack_pending === 0;
    },
    { name: "doorbells drained", timeoutMs, intervalMs: 25 },
  );
}

/**
 * Reads the timings of finished tasks from their records (submittedAt, the first attempt's
 * startedAt, finishedAt: all written on this machine's clock). Nothing watches the bus while
 * the tasks run, so the measurement costs the mesh no CPU; the baselines' workers likewise only
 * print a line per message. Called after drained(), outside the CPU measurement.
 */
async function readTimings(
  client: Awaited<ReturnType<typeof openClient>>,
  ids: string[],
): Promise<Map<string, { submitted: number; running: number; done: number }>> {
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
      await drained(client, pool, 600_000);
      const cpu = meter.end(count);
      const timings = [
        ...(
          await readTimings(
            client,
            specs.map((s) => s.id),
          )
        ).values(),
      ];
      const secs = (Math.max(...timings.map((x) => x.done)) - start) / 1000;
      return {
        perSec: count / secs,
        latencies: timings.map((x) => x.running - x.submitted),
        submitPerSec: count / submitSecs,
        cpu,
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

/**
 * The mesh for the latency rows (light.ts): one noop daemon with SLOTS slots, and two ways to
 * submit to it: `library`, the mesh API in this process (as BullMQ's Queue.add runs in the
 * caller's), and `grpc`, the daemon's SubmitTasks on its Unix socket (what `mesh submit` and
 * other clients use; it adds a hop and the daemon's own submit checks). Either learns that a
 * task ended from its state events, then reads its attempt's startedAt from the record. Also
 * measures the daemon's idle RSS, after start-up and before any work.
 */
async function meshLightSides(url: string) {
  const { daemons, client } = await startFleet(url, 1, "light");
  const d = daemons[0]!;
  const idleRssMb = rssMb(d.child.pid!);
  const grpc = new MeshServiceClient(`unix:${join(d.stateDir, "meshd.sock")}`, credentials.createInsecure());
  const t0 = new Map<string, number>();
  const ended = new Set<string>();
  const sub = client.nc.subscribe(STATE_EVENTS_FILTER, {
    callback: (_err, m) => {
      const e = m.json<{ taskId: string; state: string }>();
      if (TERMINAL.has(e.state)) ended.add(e.taskId);
    },
  });
  await client.nc.flush();
  const side = (submit: (id: string) => Promise<unknown>): LightSide => ({
    async submit(id, t) {
      t0.set(id, t);
      await submit(id);
    },
    async finished(ids) {
      await waitFor(() => ids.every((id) => ended.has(id)), {
        name: "mesh tasks finished",
        timeoutMs: 60_000,
        intervalMs: 2,
      });
      const timings = await readTimings(client, ids);
      return ids.map((id) => timings.get(id)!.running - t0.get(id)!);
    },
    async stop() {},
  });
  const task = (id: string) => ({ id, prompt: "noop", runner: "noop", pool: "light" });
  return {
    idleRssMb,
    library: side((id) => client.api.submit([validateTaskSpec(task(id))])),
    grpc: side(
      (id) =>
        new Promise((resolve, reject) =>
          grpc.submitTasks(
            { document: JSON.stringify(task(id)), source: "bench" },
            new Metadata(),
            { deadline: Date.now() + 30_000 },
            (err, res) => (err ? reject(err) : resolve(res)),
          ),
        ),
    ),
    async stop() {
      sub.unsubscribe();
      grpc.close();
      await client.close();
      d.kill("SIGTERM");
      await d.exited;
    },
  };
}

const TERMINAL = new Set(["succeeded", "failed", "dead", "cancelled"]);

/** Idle pickup and light load (light.ts) of the mesh and, when Redis is here, of BullMQ. */
async function latencyRows(
  url: string,
  redis: Awaited<ReturnType<typeof startRedis>> | undefined,
  opts: LightOptions,
) {
  const mesh = await meshLightSides(url);
  const floors: Array<[string, LightSide]> = [];
  let peer: LightSide | undefined;
  try {
    floors.push(["floor-record-then-doorbell", await floorLightSide(url, "record-then-doorbell")]);
    floors.push(["floor-doorbell-only", await floorLightSide(url, "doorbell-only")]);
    peer = redis ? await bullmqLightSide(redis) : undefined;
  } catch (err) {
    await mesh.stop();
    for (const [, f] of floors) await f.stop();
    throw err;
  }
  let res: Record<string, LightResult>;
  try {
    res = await measureLight(
      [
        ["mesh", mesh.library],
        ["mesh-grpc", mesh.grpc],
        ...floors,
        ...(peer ? [["bullmq-redis", peer] as [string, LightSide]] : []),
      ],
      opts,
    );
  } finally {
    await mesh.stop();
    for (const [, f] of floors) await f.stop();
    await peer?.stop();
  }
  const m = res.mesh!;
  const b = res["bullmq-redis"];
  type Key = "idlePickupP50Ms" | "lightLoadP99Ms";
  const over = (x: LightResult | undefined, y: LightResult | undefined, k: Key) =>
    x && y && y[k] > 0 ? round(x[k] / y[k], 2) : null;
  const floor = res["floor-record-then-doorbell"];
  const oneMessage = res["floor-doorbell-only"];
  return {
    idleDaemonRssMb: mesh.idleRssMb,
    latency: {
      concurrency: SLOTS,
      systems: res,
      // Below 1: the first is faster. The floors show what the protocol's stored messages cost
      // with nothing around them: the mesh's shape (record, then doorbell) and one stored message.
      ratios: {
        idlePickupP50MeshOverBullmq: over(m, b, "idlePickupP50Ms"),
        lightLoadP99MeshOverBullmq: over(m, b, "lightLoadP99Ms"),
        idlePickupP50MeshOverFloor: over(m, floor, "idlePickupP50Ms"),
        lightLoadP99MeshOverFloor: over(m, floor, "lightLoadP99Ms"),
        idlePickupP50FloorOverBullmq: over(floor, b, "idlePickupP50Ms"),
        idlePickupP50DoorbellOnlyFloorOverBullmq: over(oneMessage, b, "idlePickupP50Ms"),
        lightLoadP99DoorbellOnlyFloorOverBullmq: over(oneMessage, b, "lightLoadP99Ms"),
      },
    },
    targets: b
      ? {
          idlePickupP50AtOrBelowBullmq: m.idlePickupP50Ms <= b.idlePickupP50Ms,
          lightP99AtOrBelowBullmq: m.lightLoadP99Ms <= b.lightLoadP99Ms,
        }
      : {},
  };
}

/** A table row per system for the latency rows. */
function latencyTableRows(latency: { systems: Record<string, LightResult> }) {
  return Object.entries(latency.systems).map(([system, r]) => ({ system, processes: 1, ...r }));
}

export interface ClaimsOptions {
  /** Tasks per measured round. */
  count: number;
  /** Measured rounds per system; the table shows the median. */
  rounds: number;
  /** Unmeasured tasks first, through the same processes (JIT, connections, caches). */
  warmup: number;
  /** The latency rows (light.ts): tasks in each, and the light load's rate. */
  light: LightOptions;
  /** Only the latency rows (idle pickup, light load), not the throughput rounds. */
  lightOnly?: boolean;
}

export async function claimsScenario(opts: ClaimsOptions) {
  const nats = await NatsServer.start();
  const redisBin = redisServerPath();
  const bullmqSkipped = redisBin
    ? undefined
    : "redis-server not found (apt-get install redis-server): the BullMQ rows are skipped";
  if (bullmqSkipped) process.stderr.write(`claims: ${bullmqSkipped}\n`);
  const redis = redisBin ? await startRedis(redisBin) : undefined;
  try {
    const nc = await connect({ servers: nats.url });
    const natsVersion = nc.info?.version ?? "unknown";
    await nc.close();
    const rows: ClaimsRow[] = [];
    for (const n of opts.lightOnly ? [] : [1, 4]) {
      process.stderr.write(
        `claims: ${n} process(es): starting raw workers, floor workers and meshd daemons...\n`,
      );
      // Started one after another: a fleet that fails to start stops the ones before it.
      const fleets: Array<[ClaimsRow["system"], Fleet]> = [];
      try {
        fleets.push(["raw-jetstream", await rawFleet(nats.url, n, nats.pid)]);
        fleets.push(["protocol-floor", await floorFleet(nats.url, n, nats.pid)]);
        fleets.push(["mesh", await meshFleet(nats.url, n, `bench${n}`, nats.pid)]);
        if (redis) fleets.push(["bullmq-redis", await bullmqFleet(redis, n)]);
        process.stderr.write(`claims: ${n} process(es): warm-up, ${opts.warmup} tasks each...\n`);
        for (const [, f] of fleets) await f.run(opts.warmup);
        // Alternating rounds, each in a rotated order: a machine that slows down or speeds up
        // mid-run hits all alike, and none always runs right after the same other one.
        const rounds = fleets.map((): RoundResult[] => []);
        for (let i = 0; i < opts.rounds; i++) {
          process.stderr.write(`claims: ${n} process(es): round ${i + 1}/${opts.rounds}...\n`);
          for (let k = 0; k < fleets.length; k++) {
            const j = (i + k) % fleets.length;
            rounds[j]!.push(await fleets[j]![1].run(opts.count));
          }
        }
        for (const [j, [system]] of fleets.entries()) rows.push(summarize(system, n, opts.count, rounds[j]!));
      } finally {
        for (const [, f] of fleets) await f.stop();
      }
    }
    process.stderr.write(
      `claims: idle pickup and light load (${opts.light.count} tasks each, ${opts.light.ratePerSec}/s), idle memory...\n`,
    );
    const lat = await latencyRows(nats.url, redis, opts.light);
    const ratio = (n: number, a: ClaimsRow["system"] = "mesh", b: ClaimsRow["system"] = "raw-jetstream") => {
      const x = rows.find((r) => r.system === a && r.processes === n);
      const y = rows.find((r) => r.system === b && r.processes === n);
      return x && y ? round(x.throughputPerSec / y.throughputPerSec, 2) : null;
    };
    return {
      scenario: "claims",
      natsVersion,
      slotsPerProcess: SLOTS,
      ...(opts.lightOnly
        ? { lightOnly: true, rows: latencyTableRows(lat.latency) }
        : {
            rounds: opts.rounds,
            warmupTasks: opts.warmup,
            rows,
            ratios: {
              throughputMeshOverRaw1: ratio(1),
              throughputMeshOverRaw4: ratio(4),
              // What the prescribed protocol allows at best, and how close the mesh gets to that.
              throughputFloorOverRaw4: ratio(4, "protocol-floor"),
              throughputMeshOverFloor4: ratio(4, "mesh", "protocol-floor"),
              throughputMeshOverBullmq1: ratio(1, "mesh", "bullmq-redis"),
              throughputMeshOverBullmq4: ratio(4, "mesh", "bullmq-redis"),
            },
          }),
      latency: lat.latency,
      ...(bullmqSkipped ? { bullmqSkipped } : {}),
      // Right after start-up, start-up's garbage included; the idle target is footprint's (settled, 30 s idle).
      daemonRssAfterStartMb: lat.idleDaemonRssMb,
      targets: {
        ...(opts.lightOnly
          ? {}
          : { meshAtLeast085OfFloorAt4: (ratio(4, "mesh", "protocol-floor") ?? 0) >= 0.85 }),
        ...lat.targets,
      },
    };
  } finally {
    await redis?.stop();
    await nats.cleanup();
  }
}
