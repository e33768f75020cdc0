// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * A limited queued listing (`mesh tasks --state queued --limit n`) lists the tasks parked
 * because no live worker serves them, which have no doorbell (daemon/queue/parked.ts), against
 * a real nats-server:
 * - real `meshd` children park tasks nobody serves; the listing in process (from the doorbells
 *   and the index, never a scan), the built CLI (with and without `--pool`, a small `--limit`)
 *   and the daemon's ListTasks list them, newest change first, as a scan would; once a worker
 *   that serves them joins and runs them, they leave the listing and the index;
 * - the sweeper keeps the index in step: it indexes a parked task that has no entry, removes the
 *   entries of tasks no longer queued (a deleted record is never listed again) and of tasks it
 *   rings, and a removal never takes an entry written after the pass read the index;
 * - a claimer acks a parked doorbell only once the task is indexed: while the index cannot be
 *   written, the doorbell comes back instead.
 * Needs `npm run build` first.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskFilter } from "../daemon/api/index.js";
import { validateTaskSpec } from "../daemon/index.js";
import { createLogger } from "../daemon/log.js";
import { PARKED_STREAM, poolConsumerName, TASKS_STREAM } from "../daemon/nats/names.js";
import { doorbellIds, ringDoorbell } from "../daemon/queue/doorbell.js";
import { markParked, readParked, unmarkParked } from "../daemon/queue/parked.js";
import { Sweeper } from "../daemon/queue/sweeper.js";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import { findTasks, type ListingDeps, taskMatcher } from "../daemon/task-listing.js";
import { newTaskRecord, type TaskRecord, type VersionedRecord } from "../daemon/tasks/record.js";
import type { TaskSpec } from "../daemon/tasks/spec.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  MESH_BIN,
  type MeshClient,
  type MeshdProcess,
  openClient,
  spawnMeshd,
  startDaemon,
} from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let client: MeshClient;
let topo: Topology;
let deps: ListingDeps;
let work: string;
const procs: MeshdProcess[] = [];
const log = createLogger("silent");

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error(`${MESH_BIN} missing: run \`npm run build\` first`);
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  topo = await ensureTopology(client.nc, { replicas: 1, leaseMs: 2000, presenceTtlMs: 1500 });
  deps = { store: client.store, jsm: topo.jsm };
  work = await makeTempDir("parked-");
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop(5000)));
  await client?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

/** A real meshd child; returns its socket once it answers. */
async function meshd(name: string, options: Record<string, unknown>): Promise<string> {
  const cfg = join(work, `${name}.json`);
  await writeFile(
    cfg,
    JSON.stringify({ name, lease: "2s", presenceInterval: "500ms", http: { enabled: false }, ...options }),
  );
  const p = await spawnMeshd(["-c", cfg, "--nats", nats.url, "--log-level", "warn"]);
  procs.push(p);
  const sock = join(p.stateDir, "meshd.sock");
  await waitFor(() => existsSync(sock), { name: `meshd ${name} socket`, timeoutMs: 60_000 });
  return sock;
}

async function mesh(socket: string, args: string[]) {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    reject: false,
    env: { NO_COLOR: "1", MESH_DAEMON: socket },
    timeout: 60_000,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The task ids `mesh tasks <args> --json` lists, in its order. */
async function listed(socket: string, args: string[]): Promise<string[]> {
  const r = await mesh(socket, ["tasks", ...args, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).tasks.map((t: any) => t.id);
}

/** What a scan of the whole bucket answers for a limited listing: matches, newest change first. */
async function scanned(filter: TaskFilter): Promise<string[]> {
  const match = taskMatcher(filter);
  return (await client.store.list())
    .filter((v) => match(v.record))
    .sort((a, b) => b.revision - a.revision)
    .slice(0, filter.limit)
    .map((v) => v.record.id);
}

const ids = (l: { records: VersionedRecord[] }) => l.records.map((v) => v.record.id);

const gpuTask = (pool: string): TaskSpec =>
  validateTaskSpec({ id: uniqueId("gpu"), prompt: "p", runner: "noop", pool, labels: { gpu: "yes" } });

describe("parked tasks in limited queued listings", () => {
  it("are listed while parked (API, CLI, ListTasks), and leave the listing once a serving worker runs them", async () => {
    const [a, b] = [uniqueId("pka"), uniqueId("pkb")];
    const plain = await meshd("plain", { pools: [a, b], sweepInterval: "10m" });
    const parkedA = [gpuTask(a), gpuTask(a), gpuTask(a)];
    const parkedB = [gpuTask(b)];
    // A pool nobody pulls from: its task keeps its doorbell (listed from the doorbells as before).
    const unpulled = validateTaskSpec({
      id: uniqueId("np"),
      prompt: "p",
      runner: "noop",
      pool: uniqueId("pkn"),
    });
    for (const s of [...parkedA, ...parkedB, unpulled]) await client.api.submit([s]);

    // The daemon parks them: their doorbells acked, their records still queued.
    await waitFor(
      async () => {
        const rung = new Set([...(await doorbellIds(topo.jsm, a)), ...(await doorbellIds(topo.jsm, b))]);
        return [...parkedA, ...parkedB].every((s) => !rung.has(s.id));
      },
      { name: "the gpu tasks parked (no doorbell)", timeoutMs: 30_000 },
    );
    for (const s of [...parkedA, ...parkedB])
      expect((await client.store.get(s.id))?.record.state).toBe("queued");

    // In process: from the doorbells and the index, never a scan of the bucket.
    const inA: TaskFilter = { state: ["queued"], pool: a, limit: 50 };
    const gotA = await findTasks(deps, inA);
    expect(gotA.path).toBe("doorbells");
    expect(ids(gotA)).toEqual(await scanned(inA));
    expect(new Set(ids(gotA))).toEqual(new Set(parkedA.map((s) => s.id)));
    const every: TaskFilter = { state: ["queued"], limit: 50 };
    const all = await findTasks(deps, every);
    expect(all.path).toBe("doorbells");
    expect(ids(all)).toEqual(await scanned(every));
    expect(ids(all)).toHaveLength(parkedA.length + parkedB.length + 1);

    // The CLI through the daemon's ListTasks: with --pool, across pools, and a small limit.
    expect(await listed(plain, ["--state", "queued", "--limit", "50", "--pool", a])).toEqual(ids(gotA));
    expect(await listed(plain, ["--state", "queued", "--limit", "50"])).toEqual(ids(all));
    expect(await listed(plain, ["--state", "queued", "--limit", "2"])).toEqual(
      await scanned({ ...every, limit: 2 }),
    );
    // Without a state filter (the bucket's tail) they are there too.
    expect(await listed(plain, ["--limit", "50", "--pool", b])).toEqual([parkedB[0]!.id]);

    // A worker that serves them joins: they run, and leave the listing and the index.
    const gpu = await meshd("gpu", { pools: [a, b], labels: { gpu: "yes" }, sweepInterval: "10m" });
    await waitFor(
      async () => {
        for (const s of [...parkedA, ...parkedB])
          if ((await client.store.get(s.id))?.record.state !== "succeeded") return false;
        return true;
      },
      { name: "the parked tasks ran", timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(await listed(gpu, ["--state", "queued", "--limit", "50"])).toEqual([unpulled.id]);
    await waitFor(
      async () => {
        const index = await readParked(topo.jsm);
        return [...parkedA, ...parkedB].every((s) => !index.pools.has(s.id));
      },
      { name: "the index holds none of them", timeoutMs: 30_000 },
    );
  }, 180_000);
});

describe("the sweeper keeps the index of parked tasks in step", () => {
  /** A record in `state` last changed a minute ago (older than a sweep's minimum age). */
  async function stored(pool: string, state: TaskRecord["state"] = "queued"): Promise<VersionedRecord> {
    const at = new Date(Date.now() - 60_000);
    const spec = validateTaskSpec({ id: uniqueId("sw"), prompt: "p", runner: "noop", pool });
    const r: TaskRecord = { ...newTaskRecord(spec, at), state };
    if (state !== "queued") r.finishedAt = at.toISOString();
    return (await client.store.create(r))!;
  }

  const sweeper = (served: string[]) =>
    new Sweeper(client.store, topo.js, topo.jsm, log, {
      intervalMs: 60_000,
      minAgeMs: 5_000,
      // One live worker, serving only the pools in `served`.
      liveWorkers: async () => [{ workerId: "w-1", pools: served, labels: {}, runners: ["noop"] }],
    });

  it("indexes a parked task that has no entry, and removes the entries of tasks no longer queued", async () => {
    const pool = uniqueId("swp");
    // Parked before the index existed: queued, no doorbell, no entry.
    const orphan = await stored(pool);
    // Stale entries: a finished task, a deleted one.
    const finished = await stored(pool, "succeeded");
    const deleted = await stored(pool);
    await markParked(topo.js, pool, finished.record.id);
    await markParked(topo.js, pool, deleted.record.id);
    await client.store.purge(deleted);
    const filter: TaskFilter = { state: ["queued"], pool, limit: 50 };
    // A stale entry costs a read, never a wrong answer: nothing deleted or finished is listed.
    expect(ids(await findTasks(deps, filter))).toEqual([]);

    await sweeper([]).sweep();
    const index = await readParked(topo.jsm, pool);
    expect([...index.pools.keys()]).toEqual([orphan.record.id]);
    const got = await findTasks(deps, filter);
    expect(got.path).toBe("doorbells");
    expect(ids(got)).toEqual([orphan.record.id]);
  });

  it("a task it rings again leaves the index once its doorbell is there", async () => {
    const pool = uniqueId("swr");
    const v = await stored(pool);
    await markParked(topo.js, pool, v.record.id);
    await sweeper([pool]).sweep();
    expect(await doorbellIds(topo.jsm, pool)).toEqual([v.record.id]);
    expect((await readParked(topo.jsm, pool)).pools.size).toBe(0);
    // Listed once, from its doorbell.
    expect(ids(await findTasks(deps, { state: ["queued"], pool, limit: 50 }))).toEqual([v.record.id]);
  });

  it("a removal takes only the entries the pass read: a task parked again since stays indexed", async () => {
    const pool = uniqueId("swb");
    const v = await stored(pool);
    await markParked(topo.js, pool, v.record.id);
    const read = await readParked(topo.jsm, pool);
    expect(read.pools.get(v.record.id)).toBe(pool);
    // A claimer parks it again (rung, then parked once more) after the read...
    await ringDoorbell(topo.publisher, pool, v.record.id, `${v.record.id}#again`, v);
    await markParked(topo.js, pool, v.record.id);
    // ...so the removal the read allowed leaves the newer entry.
    await unmarkParked(topo.jsm, pool, v.record.id, read.lastSeq);
    expect((await readParked(topo.jsm, pool)).pools.has(v.record.id)).toBe(true);
    await unmarkParked(topo.jsm, pool, v.record.id, (await readParked(topo.jsm, pool)).lastSeq);
    expect((await readParked(topo.jsm, pool)).pools.has(v.record.id)).toBe(false);
  });
});

describe("a claimer parks a task only once it is indexed", () => {
  it("while the index cannot be written, the parked doorbell comes back instead of being acked", async () => {
    const pool = uniqueId("pki");
    const d = await startDaemon(nats.url, { pools: [pool], sweepInterval: "10m" });
    try {
      // The index is gone: every write to it fails.
      await topo.jsm.streams.delete(PARKED_STREAM);
      const s = gpuTask(pool);
      await client.api.submit([s]);
      await waitFor(
        async () =>
          (await topo.jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool))).delivered.consumer_seq >= 2,
        { name: "the doorbell delivered again", timeoutMs: 30_000 },
      );
      expect(await doorbellIds(topo.jsm, pool)).toEqual([s.id]);
      // The index is back: the next delivery indexes the task, then acks its doorbell.
      await ensureTopology(client.nc, { replicas: 1, leaseMs: 2000, presenceTtlMs: 1500 });
      await waitFor(
        async () =>
          (await readParked(topo.jsm, pool)).pools.has(s.id) &&
          (await doorbellIds(topo.jsm, pool)).length === 0,
        { name: "the task indexed and its doorbell acked", timeoutMs: 30_000 },
      );
      expect(ids(await findTasks(deps, { state: ["queued"], pool, limit: 50 }))).toEqual([s.id]);
    } finally {
      await ensureTopology(client.nc, { replicas: 1, leaseMs: 2000, presenceTtlMs: 1500 });
      await d.stop(1000);
    }
  }, 90_000);
});
