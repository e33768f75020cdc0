/**
 * Presence with many workers, on a real nats-server: the worker directory follows joins, leaves,
 * updates and staleness from its watch (no refresh timer needed), and neither the directory,
 * `listWorkers` nor a daemon's `/sd` reads the presence keys one by one. A plain subscriber on
 * `$JS.API.>` sees every JetStream request and counts the per-key reads.
 */
import type { KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig, startDaemon } from "../daemon/index.js";
import { createLogger } from "../daemon/log.js";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import { listWorkers, WorkerDirectory, type WorkerInfo } from "../daemon/registry/index.js";
import type { TargetGroup } from "../daemon/servers/http/sd.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { FAST } from "./support/mesh.js";

const log = createLogger("silent");
const TTL_MS = 60_000;
let nats: NatsServer;
let nc: NatsConnection;
let spy: NatsConnection;
let topo: Topology;
let kv: KV;
/** Per-key reads seen on the bus (direct gets and stream message gets). */
let keyReads = 0;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  spy = await connect({ servers: nats.url });
  spy.subscribe("$JS.API.>", {
    callback: (_err, m) => {
      if (/^\$JS\.API\.(DIRECT\.GET|STREAM\.MSG\.GET)\.KV_mesh-workers/.test(m.subject)) keyReads++;
    },
  });
  await spy.flush();
  topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: TTL_MS });
  kv = topo.workers;
});
afterAll(async () => {
  await spy?.close();
  await nc?.close();
  await nats?.stop();
  await removeTempDirs();
});

const worker = (tag: string, i: number, extra: Partial<WorkerInfo> = {}): WorkerInfo => ({
  v: 1,
  workerId: `${tag}-${String(i).padStart(3, "0")}`,
  name: `${tag}-${String(i).padStart(3, "0")}`,
  host: `host-${i}`,
  pools: ["default"],
  labels: {},
  runners: ["noop"],
  slotsTotal: 2,
  slotsFree: 2,
  running: [],
  version: "test",
  startedAt: new Date().toISOString(),
  updatedAt: new Date().toISOString(),
  staleAfterMs: TTL_MS,
  httpUrl: `http://127.0.0.1:${(tag === "simsd" ? 31_000 : 30_000) + i}`,
  ...extra,
});
const put = (w: WorkerInfo) => kv.put(w.workerId, JSON.stringify(w));
const ids = (ws: readonly WorkerInfo[], tag: string) =>
  ws.filter((w) => w.workerId.startsWith(tag)).map((w) => w.workerId);
/** The requests in flight reach the spy before this resolves. */
const settled = async () => {
  await nc.flush();
  await spy.flush();
};

describe("presence with many workers", () => {
  it("the directory follows joins, leaves, updates and staleness from its watch, reading no key one by one", async () => {
    const tag = "simdir";
    await Promise.all(Array.from({ length: 60 }, (_, i) => put(worker(tag, i))));
    await settled();
    const readsBefore = keyReads;
    // One pass over the bucket, not a read per worker.
    expect(ids(await listWorkers(kv, topo.jsm, TTL_MS), tag)).toHaveLength(60);

    // A refresh timer far away: whatever the directory learns below comes from its watch.
    const directory = new WorkerDirectory(kv, topo.jsm, { refreshMs: 600_000, staleMs: TTL_MS, log });
    await directory.start();
    try {
      expect(ids(directory.list(), tag)).toHaveLength(60);
      // Joins.
      await Promise.all(Array.from({ length: 20 }, (_, i) => put(worker(tag, 60 + i))));
      await waitFor(() => ids(directory.list(), tag).length === 80, { name: "20 joined", timeoutMs: 10_000 });
      expect(directory.isLive(`${tag}-079`)).toBe(true);
      // Leaves: a stopping daemon deletes its key.
      await Promise.all(Array.from({ length: 10 }, (_, i) => kv.delete(worker(tag, i).workerId)));
      await waitFor(() => ids(directory.list(), tag).length === 70, { name: "10 left", timeoutMs: 10_000 });
      expect(directory.isLive(`${tag}-000`)).toBe(false);
      // Stale: not heard from for longer than its staleAfterMs (a key NATS 2.9 expires silently).
      await Promise.all(
        Array.from({ length: 5 }, (_, i) => put(worker(tag, 10 + i, { staleAfterMs: 1000 }))),
      );
      await waitFor(() => ids(directory.list(), tag).length === 65, {
        name: "5 went stale",
        timeoutMs: 10_000,
      });
      // Going stale makes the directory read the bucket once (a stalled watch looks like that):
      // let that pass end before the next write, which it would otherwise read by key.
      await directory.refresh();
      // A key first seen with a stamp older than its staleness (a dead worker's, or one whose
      // clock is far behind) is not live; its next update, heard now, makes it live whatever
      // its stamp says (silence is timed here, not read off the writer's clock).
      const old = new Date(Date.now() - 120_000).toISOString();
      await put(worker(tag, 90, { updatedAt: old }));
      await put(worker(tag, 91));
      await waitFor(() => directory.isLive(`${tag}-091`), { name: "a later join seen", timeoutMs: 10_000 });
      expect(directory.isLive(`${tag}-090`)).toBe(false);
      await directory.refresh();
      await put(worker(tag, 90, { updatedAt: old }));
      await waitFor(() => directory.isLive(`${tag}-090`), {
        name: "its next update heard",
        timeoutMs: 10_000,
      });
      await Promise.all([90, 91].map((i) => kv.delete(worker(tag, i).workerId)));
      await waitFor(() => ids(directory.list(), tag).length === 65, { name: "both left", timeoutMs: 10_000 });
      // An update of a live worker replaces what was seen.
      await put(worker(tag, 20, { draining: true }));
      await waitFor(() => directory.list().find((w) => w.workerId === `${tag}-020`)?.draining === true, {
        name: "the update seen",
        timeoutMs: 10_000,
      });
      expect(directory.servedByAnother(`${tag}-021`, "default", {}, "noop")).toBe(true);
      expect(directory.servedByAnother(`${tag}-021`, "default", {}, "claude")).toBe(false);
      // Sorted by name, like listWorkers.
      const names = ids(directory.list(), tag);
      expect(names).toEqual([...names].sort());
      await settled();
      expect(keyReads - readsBefore).toBe(0);
    } finally {
      await directory.stop();
    }
  }, 60_000);

  it("a daemon's /sd lists every live worker with an HTTP side, reading no key one by one", async () => {
    const tag = "simsd";
    await Promise.all(Array.from({ length: 50 }, (_, i) => put(worker(tag, i))));
    const d = await startDaemon(
      compileConfig({
        ...FAST,
        logLevel: "silent",
        name: "sd-daemon",
        runners: ["noop"],
        http: { enabled: true, port: 0 },
        nats: { servers: [nats.url] },
        stateDir: await makeTempDir("registry-sd-"),
      }),
    );
    try {
      await settled();
      const readsBefore = keyReads;
      const res = await fetch(`${d.snapshot().httpUrl}/sd`);
      expect(res.status).toBe(200);
      const groups = (await res.json()) as TargetGroup[];
      const sd = groups.filter((g) => g.labels.__meta_agentmesh_worker_id?.startsWith(`${tag}-`));
      expect(sd).toHaveLength(50);
      expect(sd.map((g) => g.targets[0])).toContain("127.0.0.1:31049");
      expect(sd.find((g) => g.labels.__meta_agentmesh_worker_id === `${tag}-007`)?.labels).toMatchObject({
        __meta_agentmesh_worker: `${tag}-007`,
        __meta_agentmesh_host: "host-7",
        __meta_agentmesh_pools: ",default,",
      });
      // The daemon itself is there too.
      expect(groups.some((g) => g.labels.__meta_agentmesh_worker_id === d.workerId)).toBe(true);
      await settled();
      expect(keyReads - readsBefore).toBe(0);
    } finally {
      await d.stop();
    }
  }, 60_000);
});
