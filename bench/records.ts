/**
 * Scenario `records`: a task bucket of `records` records (default 100,000), and what reading it
 * costs. The bucket is filled fast, straight into KV, with the records the state machine writes
 * (daemon/tasks/machine: submit, claim, start, settle, cancel): mostly finished, 1% queued with
 * their doorbells rung as submit rings them, 0.1% queued and parked (no doorbell, an entry in the
 * index of parked tasks, as a claimer leaves a task no live worker serves), 0.2% running, and 1%
 * of the finished ones past the retention (7 days). Each record that is not queued is written twice (its submit, then its
 * state now), so the stream has the gaps a real one has. At a tenth, half and all of the
 * records it measures:
 *
 * - through the real CLI against a real meshd (one that serves another pool, so it takes none of
 *   them, and sweeps once an hour): `mesh tasks --state queued --limit 50 --json`, `mesh tasks
 *   --limit 50 --json` and `mesh task <id> --json` (wall time, CLI start included), next to
 *   `mesh tasks --state queued --json` (no limit: the full scan, the baseline);
 * - the same calls in process (MeshService on a connection of its own): time, and the bytes and
 *   messages the connection received;
 * - one sweeper pass (its own connection): time, bytes and messages read, and per record.
 *
 * Each measure is the median of `reps` runs. Nothing is asserted.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  cancel,
  claim,
  createLogger,
  ensureTopology,
  expectState,
  kvSubject,
  markParked,
  ringDoorbell,
  Sweeper,
  settle,
  start,
  submit,
  TASKS_BUCKET,
  type TaskFilter,
  type TaskRecord,
  TaskStore,
  TRANSITIONS,
  type Topology,
  validateTaskSpec,
} from "../daemon/index.js";
import { makeTempDir, NatsServer, removeTempDir, waitFor } from "../test/harness/index.js";
import { MESH_BIN, openClient, shebangNodeFlags, spawnMeshd } from "../test/support/mesh.js";
import { percentile, round } from "./stats.js";

const run = promisify(execFile);

export interface RecordsOptions {
  records: number;
  /** Runs per measure (the median is shown). */
  reps?: number;
}

const POOL = "bench-records";
const TEMPLATE_ID = "zz-template-zz";
const DAY = 86_400_000;
const RETENTION_MS = 7 * DAY;
const who = { workerId: "bench-w-1", host: "bench", leaseMs: 15_000 };

/** One record per kind, as the state machine writes it, under TEMPLATE_ID. */
function templates(): Record<"succeeded" | "dead" | "cancelled" | "expired" | "running" | "queued", string> {
  const spec = validateTaskSpec({
    id: TEMPLATE_ID,
    pool: POOL,
    runner: "command",
    command: ["sh", "-c", "make test"],
    prompt: "Run the test suite of the service and fix the first failing test you find. ".repeat(3),
    labels: { os: "linux" },
    maxAttempts: 1,
  });
  const t0 = new Date(Date.now() - 60_000);
  const queued = submit(spec, t0).record;
  const claimed = claim(
    expectState(structuredClone(queued), "claim", TRANSITIONS.claim.from),
    who,
    t0,
  ).record;
  const running = start(expectState(claimed, "start", TRANSITIONS.start.from), who.workerId, t0).record;
  const end = (outcome: "succeeded" | "failed", at: Date) =>
    settle(
      expectState(structuredClone(running), "settle", TRANSITIONS.settle.from),
      { outcome, workerId: who.workerId, exitCode: outcome === "succeeded" ? 0 : 1 },
      { retryDelayMs: 1000 },
      at,
    ).record;
  const cancelled = cancel(
    expectState(structuredClone(queued), "cancel", TRANSITIONS.cancel.from),
    t0,
  ).record;
  const expired = end("succeeded", new Date(Date.now() - RETENTION_MS - DAY));
  const j = (r: TaskRecord) => JSON.stringify(r);
  return {
    succeeded: j(end("succeeded", new Date())),
    dead: j(end("failed", new Date())),
    cancelled: j(cancelled),
    expired: j(expired),
    running: j(running),
    queued: j(queued),
  };
}

/**
 * The kind of record number i: 1% queued, 0.1% queued and parked, 0.2% running, 1% past the
 * retention, the rest finished.
 */
function kindOf(i: number): keyof ReturnType<typeof templates> | "parked" {
  if (i % 1000 === 57) return "parked";
  if (i % 100 === 7) return "queued";
  if (i % 500 === 3) return "running";
  if (i % 100 === 41) return "expired";
  if (i % 20 === 11) return "dead";
  if (i % 50 === 13) return "cancelled";
  return "succeeded";
}

const idOf = (i: number) => `rec-${i.toString(36).padStart(7, "0")}`;

/** Writes records [from, to) straight into the bucket (and the queued ones' doorbells, the parked ones' entries). */
async function fill(
  topo: Topology,
  t: ReturnType<typeof templates>,
  from: number,
  to: number,
  backlog?: { pool: string; idOf: (i: number) => string },
): Promise<void> {
  const enc = new TextEncoder();
  const WINDOW = 1000;
  for (let i = from; i < to; i += WINDOW) {
    const batch = Array.from({ length: Math.min(WINDOW, to - i) }, (_, k) => i + k);
    await Promise.all(
      batch.map(async (n) => {
        const id = (backlog?.idOf ?? idOf)(n);
        const kind = backlog ? "queued" : kindOf(n);
        const pool = backlog?.pool ?? POOL;
        let text = t[kind === "parked" ? "queued" : kind].split(TEMPLATE_ID).join(id);
        if (backlog) {
          const r = JSON.parse(text) as TaskRecord;
          text = JSON.stringify({ ...r, spec: { ...r.spec, pool } });
        }
        const subject = kvSubject(TASKS_BUCKET, id);
        // Its submit first, as in a real bucket, where every later write leaves a gap behind.
        if (kind !== "queued" && kind !== "parked")
          await topo.js.publish(subject, enc.encode(t.queued.split(TEMPLATE_ID).join(id)));
        const ack = await topo.js.publish(subject, enc.encode(text));
        // Parked: its doorbell was acked by a claimer, which indexed it first.
        if (kind === "parked") await markParked(topo.publisher, pool, id);
        if (kind === "queued") {
          const record = JSON.parse(text) as TaskRecord;
          await ringDoorbell(topo.publisher, pool, id, `${id}#submit`, { record, revision: ack.seq });
        }
      }),
    );
  }
}

/** Median wall time of `reps` runs of `f`, and what `nc` received during the last one. */
async function measure(
  reps: number,
  f: () => Promise<unknown>,
  nc?: NatsConnection,
): Promise<{ ms: number; kB: number | string; msgs: number | string }> {
  const times: number[] = [];
  let kB: number | string = "";
  let msgs: number | string = "";
  for (let r = 0; r < reps; r++) {
    const before = nc?.stats();
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
    const after = nc?.stats();
    if (before && after) {
      kB = round((after.inBytes - before.inBytes) / 1024, 0);
      msgs = after.inMsgs - before.inMsgs;
    }
  }
  return { ms: round(percentile(times, 50), 1), kB, msgs };
}

export async function recordsScenario(opts: RecordsOptions) {
  const reps = Math.max(1, opts.reps ?? 3);
  const total = Math.max(1000, opts.records);
  const sizes = [...new Set([Math.round(total / 10), Math.round(total / 2), total])];
  const nats = await NatsServer.start();
  const dir = await makeTempDir("bench-records-");
  const log = createLogger("silent");
  const fillNc = await connect({ servers: nats.url });
  const sweepNc = await connect({ servers: nats.url });
  const client = await openClient(nats.url);
  const rows: Array<Record<string, string | number>> = [];
  const fills: Array<{ records: number; seconds: number; perSec: number }> = [];
  /** Adds a row of the table at `size` records; `vs` is the same size's scan (ms). */
  const rowAt =
    (size: number) => (what: string, path: string, m: Awaited<ReturnType<typeof measure>>, vs?: number) =>
      rows.push({
        records: size,
        measure: what,
        path,
        ms: m.ms,
        readKB: m.kB,
        readMsgs: m.msgs,
        vsScan: vs === undefined ? "" : round(m.ms / vs, 3),
      });
  let meshd: Awaited<ReturnType<typeof spawnMeshd>> | undefined;
  try {
    const topo = await ensureTopology(fillNc, { replicas: 1, leaseMs: 15_000, presenceTtlMs: 15_000 });
    const sweepTopo = await ensureTopology(sweepNc, { replicas: 1, leaseMs: 15_000, presenceTtlMs: 15_000 });
    const sweeper = new Sweeper(new TaskStore(sweepTopo), sweepTopo.js, sweepTopo.jsm, log, {
      intervalMs: 3_600_000,
      minAgeMs: 0,
      retentionMs: RETENTION_MS,
      fullEvery: 1, // every pass of this one reads the whole bucket
    });
    const config = join(dir, "meshd.json");
    await writeFile(config, JSON.stringify({ sweepInterval: "1h" }));
    meshd = await spawnMeshd([
      ...["--nats", nats.url, "-c", config, "--pools", "bench-elsewhere", "--name", "records"],
      ...["--runners", "noop", "--no-http", "--log-level", "warn", "--state-dir", join(dir, "meshd")],
    ]);
    const socket = join(dir, "meshd", "meshd.sock");
    const cli = (args: string[]) =>
      run(process.execPath, [...shebangNodeFlags(MESH_BIN), MESH_BIN, "--json", ...args], {
        env: { ...process.env, NO_COLOR: "1", MESH_DAEMON: socket, MESH_TOKEN: "" },
        maxBuffer: 512 * 1024 * 1024,
      });
    await waitFor(async () => (await cli(["workers"]).catch(() => undefined)) !== undefined, {
      name: "meshd answering",
      timeoutMs: 60_000,
    });
    const t = templates();
    let filled = 0;
    for (const size of sizes) {
      const t0 = performance.now();
      await fill(topo, t, filled, size);
      const seconds = (performance.now() - t0) / 1000;
      fills.push({
        records: size - filled,
        seconds: round(seconds, 1),
        perSec: round((size - filled) / seconds, 0),
      });
      filled = size;
      const aQueued = idOf(7 + 100 * Math.floor(size / 200));
      const row = rowAt(size);
      // In process: the listing paths, each next to the full scan.
      const api = client.api;
      const call = (f: TaskFilter) => measure(reps, () => api.listTasks(f), client.nc);
      const scan = await call({ state: ["queued"] });
      row("listTasks state=queued (no limit: scan, baseline)", "scan", scan);
      row(
        "listTasks state=queued limit=50",
        "doorbells",
        await call({ state: ["queued"], limit: 50 }),
        scan.ms,
      );
      row("listTasks limit=50", "tail", await call({ limit: 50 }), scan.ms);
      row("listTasks state=dead limit=50", "tail", await call({ state: ["dead"], limit: 50 }), scan.ms);
      row(
        "listTasks plan=none limit=50 (nothing matches: tail budget, then scan)",
        "tail+scan",
        await call({ plan: "no-such-plan", limit: 50 }),
        scan.ms,
      );
      row("getTask <queued id>", "get", await measure(reps, () => api.getTask(aQueued), client.nc), scan.ms);
      // Through the CLI and meshd (wall time with the CLI's start).
      const cliScan = await measure(reps, () => cli(["tasks", "--state", "queued"]));
      row("mesh tasks --state queued (no limit: scan, baseline)", "cli scan", cliScan);
      row(
        "mesh tasks --state queued --limit 50",
        "cli doorbells",
        await measure(reps, () => cli(["tasks", "--state", "queued", "--limit", "50"])),
        cliScan.ms,
      );
      row(
        "mesh tasks --limit 50",
        "cli tail",
        await measure(reps, () => cli(["tasks", "--limit", "50"])),
        cliScan.ms,
      );
      row("mesh task <queued id>", "cli get", await measure(reps, () => cli(["task", aQueued])), cliScan.ms);
      row(
        "mesh workers (the CLI's own start, for scale)",
        "cli",
        await measure(reps, () => cli(["workers"])),
      );
      // One sweeper pass (the first one at this size also deletes what is past the retention).
      let first = true;
      let res = sweeper.last;
      const pass = await measure(
        reps,
        async () => {
          const r = await sweeper.pass();
          if (first) res = r;
          first = false;
        },
        sweepNc,
      );
      rows.push({
        records: size,
        measure: `sweeper pass (first: ${res.purged ?? 0} deleted, ${res.rung} rung)`,
        path: "scan",
        ms: pass.ms,
        readKB: pass.kB,
        readMsgs: pass.msgs,
        vsScan: `${round((pass.ms * 1000) / size, 1)} us/record`,
      });
      // The passes between full ones (9 in 10 by default): the tasks unfinished at the last pass
      // and the ones written since, read by key. First with nothing written since, then after
      // 1,000 records were written again.
      const between = new Sweeper(new TaskStore(sweepTopo), sweepTopo.js, sweepTopo.jsm, log, {
        intervalMs: 3_600_000,
        minAgeMs: 0,
        retentionMs: RETENTION_MS,
        fullEvery: Number.MAX_SAFE_INTEGER, // only its first pass is a full one, whatever --reps
      });
      await between.pass(); // the first reads the whole bucket
      const quiet = await measure(reps, () => between.pass(), sweepNc);
      rows.push({
        records: size,
        measure: `sweeper pass between full ones, nothing written since (${between.last.read} read)`,
        path: "changes",
        ms: quiet.ms,
        readKB: quiet.kB,
        readMsgs: quiet.msgs,
        vsScan: `${round(quiet.ms / pass.ms, 3)} of a full pass`,
      });
      await fill(topo, t, 0, Math.min(1000, size));
      const busy = await measure(1, () => between.pass(), sweepNc);
      rows.push({
        records: size,
        measure: `sweeper pass between full ones, 1,000 written since (${between.last.read} read)`,
        path: "changes",
        ms: busy.ms,
        readKB: busy.kB,
        readMsgs: busy.msgs,
        vsScan: `${round(busy.ms / pass.ms, 3)} of a full pass`,
      });
    }
    // A backlog: half as many again, all queued with their doorbells, in a pool nobody serves
    // (submits while no worker runs). The doorbells are then too many to read each: the limited
    // queued listing reads the bucket's newest writes.
    const backlog = Math.round(total / 2);
    const bt0 = performance.now();
    await fill(topo, t, 0, backlog, {
      pool: "bench-backlog",
      idOf: (i) => `bkl-${i.toString(36).padStart(7, "0")}`,
    });
    const bSeconds = (performance.now() - bt0) / 1000;
    fills.push({ records: backlog, seconds: round(bSeconds, 1), perSec: round(backlog / bSeconds, 0) });
    const size = total + backlog;
    const brow = rowAt(size);
    const bcall = (f: TaskFilter) => measure(reps, () => client.api.listTasks(f), client.nc);
    const bscan = await bcall({ state: ["queued"] });
    brow(`backlog of ${backlog} queued: listTasks state=queued (no limit: scan, baseline)`, "scan", bscan);
    brow(
      "backlog: listTasks state=queued limit=50",
      "tail",
      await bcall({ state: ["queued"], limit: 50 }),
      bscan.ms,
    );
    brow(
      "backlog: listTasks state=queued pool=bench-backlog limit=50",
      "tail",
      await bcall({ state: ["queued"], pool: "bench-backlog", limit: 50 }),
      bscan.ms,
    );
    const bcli = await measure(reps, () => cli(["tasks", "--state", "queued"]));
    brow("backlog: mesh tasks --state queued (no limit: scan, baseline)", "cli scan", bcli);
    brow(
      "backlog: mesh tasks --state queued --limit 50",
      "cli tail",
      await measure(reps, () => cli(["tasks", "--state", "queued", "--limit", "50"])),
      bcli.ms,
    );
  } finally {
    await meshd?.stop(5000);
    await client.close();
    await fillNc.close();
    await sweepNc.close();
    await nats.cleanup();
    await removeTempDir(dir);
  }
  return {
    records: total,
    reps,
    mix: "1% queued (with doorbells), 0.1% queued and parked (no doorbell, indexed), 0.2% running, 1% finished past the 7-day retention, the rest finished; then a backlog of records/2 queued tasks with doorbells in another pool",
    fills,
    note: "vsScan: the row's time over the same size's no-limit scan (same run); sweeper rows: time per record. readKB/readMsgs: bytes and messages the measuring connection received (in-process rows), the last of the runs",
    rows,
  };
}
