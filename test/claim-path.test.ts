/**
 * The claim path's parts against a real nats-server: single-message pulls on one shared inbox
 * (expiry, abort, hand-back of an unwanted message, a server restart), the doorbell's record
 * snapshot (a stale one falls back to reading the record), and claims that go straight to
 * `running` when there is nothing to prepare.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Claimer, type ClaimerOptions } from "../daemon/claim/claim.js";
import type { Daemon } from "../daemon/index.js";
import { validateTaskSpec } from "../daemon/index.js";
import { createLogger } from "../daemon/log.js";
import { poolConsumerName, TASKS_STREAM, taskSubject } from "../daemon/nats/names.js";
import { type Delivery, parseAckSubject } from "../daemon/queue/delivery.js";
import { doorbellSnapshot, ringDoorbell } from "../daemon/queue/doorbell.js";
import { Puller } from "../daemon/queue/puller.js";
import { Sweeper } from "../daemon/queue/sweeper.js";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import { WorkerDirectory } from "../daemon/registry/directory.js";
import type { WorkerInfo } from "../daemon/registry/worker-info.js";
import { newTaskRecord, type VersionedRecord } from "../daemon/tasks/record.js";
import { TaskStore } from "../daemon/tasks/store.js";
import { freePort, NatsServer, waitFor } from "./harness/index.js";
import { type MeshClient, openClient, startDaemon, waitForState } from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let nc: NatsConnection;
let topo: Topology;
let store: TaskStore;
const log = createLogger("silent");

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500 });
  store = new TaskStore(topo);
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

function puller(pool: string, graceMs = 2000): Puller {
  return new Puller(nc, {
    apiPrefix: "$JS.API",
    stream: TASKS_STREAM,
    consumer: poolConsumerName(pool),
    log,
    graceMs,
  });
}

async function pending(jsm: JetStreamManager, pool: string) {
  const c = await jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool));
  return { waiting: c.num_pending, ackPending: c.num_ack_pending };
}

/** A puller on a fresh pool's consumer, closed after `fn`. */
async function withPuller(fn: (p: Puller, pool: string) => Promise<void>, graceMs?: number): Promise<void> {
  const pool = uniqueId("pull");
  await topo.consumer(pool);
  const p = puller(pool, graceMs);
  try {
    await fn(p, pool);
  } finally {
    p.close();
  }
}

/** A pull aborted at once: it ends with null, and the server still holds its request. */
async function abandonOnePull(p: Puller): Promise<void> {
  const ac = new AbortController();
  const waiting = p.pull(10_000, ac.signal);
  ac.abort();
  expect(await waiting).toBeNull();
}

describe("Puller: one message per pull over a shared inbox", () => {
  it("returns null when a pull expires, a message when one is there, and acks settle it", () =>
    withPuller(async (p, pool) => {
      expect(await p.pull(200)).toBeNull();
      await ringDoorbell(topo.js, pool, "t1", "t1#a");
      const first = await p.pull(2000);
      expect(first).not.toBeNull();
      expect(first!.subject).toBe(taskSubject(pool, "t1"));
      expect(first!.deliveryCount).toBe(1);
      expect(first!.json<{ id: string }>().id).toBe("t1");
      first!.nak();
      const again = await p.pull(2000);
      expect(again!.deliveryCount).toBe(2);
      expect(again!.streamSequence).toBe(first!.streamSequence);
      again!.ack();
      again!.nak(); // only the first settlement counts
      await waitFor(async () => (await pending(topo.jsm, pool)).ackPending === 0, {
        name: "ack applied",
        timeoutMs: 5000,
      });
      expect(await pending(topo.jsm, pool)).toEqual({ waiting: 0, ackPending: 0 });
    }));

  it("an aborted pull ends at once, and a message that then arrives is handed back, not held", () =>
    withPuller(async (p, pool) => {
      await abandonOnePull(p);
      // The server still holds that pull request: the message goes to our inbox, nobody waits
      // for it, and it must come straight back rather than sit until AckWait.
      await ringDoorbell(topo.js, pool, "t2", "t2#a");
      // Wait until the server has sent it to the abandoned pull, and (flush: PONG comes after
      // it) until we have read it. A held message would stay away until AckWait (3 s) expired,
      // longer than the next pull waits; one handed back comes at once, delivered a second time.
      await waitFor(
        async () =>
          (await topo.jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool))).delivered.consumer_seq >= 1,
        { name: "message sent to the abandoned pull", timeoutMs: 2000, intervalMs: 20 },
      );
      await nc.flush();
      const got = await p.pull(1500);
      expect(got).not.toBeNull();
      expect(got!.deliveryCount).toBe(2);
      got!.ack();
    }));

  it("a pull after a given-up one adopts its open request instead of sending another", () =>
    withPuller(async (p, pool) => {
      await abandonOnePull(p);
      expect(p.outstanding).toBe(1); // the server still holds that request
      const second = p.pull(10_000);
      expect(p.outstanding).toBe(1); // adopted, not a second request
      await ringDoorbell(topo.js, pool, "t5", "t5#a");
      const got = await second;
      expect(got!.deliveryCount).toBe(1); // it went straight to the waiting pull
      expect(p.outstanding).toBe(0);
      got!.ack();
    }));

  it("an expired pull is settled by the server's 408, not by giving up locally", () =>
    withPuller(async (p) => {
      expect(await p.pull(200)).toBeNull();
      // A local give-up (grace 60 s here) would have kept the request open.
      expect(p.outstanding).toBe(0);
    }, 60_000));

  it("ackAck waits for the server's confirmation", () =>
    withPuller(async (p, pool) => {
      await ringDoorbell(topo.js, pool, "t3", "t3#a");
      const m = await p.pull(2000);
      expect(await m!.ackAck(2000)).toBe(true);
      expect(await m!.ackAck(2000)).toBe(false); // already settled
      expect(await pending(topo.jsm, pool)).toEqual({ waiting: 0, ackPending: 0 });
    }));

  it("a pull lost with a server restart is given up, and pulling works again afterwards", () =>
    withPuller(async (p, pool) => {
      const lost = p.pull(1000);
      await nats.restart();
      expect(await lost).toBeNull();
      await waitFor(() => !nc.isClosed() && nc.info !== undefined, {
        name: "reconnected",
        timeoutMs: 10_000,
      });
      await waitFor(
        async () => {
          try {
            await ringDoorbell(topo.js, pool, "t4", "t4#a");
            return true;
          } catch {
            return false;
          }
        },
        { name: "publish after restart", timeoutMs: 15_000, intervalMs: 200 },
      );
      const got = await waitFor(async () => (await p.pull(1000)) ?? undefined, {
        name: "message pulled after restart",
        timeoutMs: 15_000,
      });
      expect(got.subject).toBe(taskSubject(pool, "t4"));
      got.ack();
    }, 300));

  it("reads delivery info from both ack subject forms", () => {
    expect(parseAckSubject("$JS.ACK.MESH_TASKS.pool-a.3.17.20.1795858341680620227.4")).toEqual({
      deliveryCount: 3,
      streamSequence: 17,
    });
    expect(parseAckSubject("$JS.ACK.hub.ACCHASH.MESH_TASKS.pool-a.2.9.11.1795858341680620227.0.tok")).toEqual(
      { deliveryCount: 2, streamSequence: 9 },
    );
    expect(parseAckSubject("_INBOX.abc.def")).toBeUndefined();
  });
});

describe("claims from doorbell snapshots", () => {
  const me = {
    workerId: "w-test",
    host: "h",
    pools: [] as string[],
    labels: {},
    runners: ["noop", "command"],
  };

  async function queued(pool: string, extra: Record<string, unknown> = {}) {
    const spec = validateTaskSpec({ id: uniqueId("snap"), prompt: "p", runner: "noop", pool, ...extra });
    const created = await store.create(newTaskRecord(spec, new Date()));
    return created!;
  }

  /**
   * A queued task whose doorbell was rung with its snapshot; `change` then moves the record on
   * (or not); `check` gets the pulled doorbell and a claimer for the pool.
   */
  async function onDoorbell(
    claimerOpts: Partial<ClaimerOptions>,
    change: (v: VersionedRecord) => Promise<VersionedRecord | undefined>,
    check: (c: {
      v: VersionedRecord;
      moved: VersionedRecord | undefined;
      msg: Delivery;
      claimer: Claimer;
      pool: string;
    }) => Promise<void>,
  ): Promise<void> {
    const pool = uniqueId("snap");
    await topo.consumer(pool);
    const v = await queued(pool);
    await ringDoorbell(topo.js, pool, v.record.id, `${v.record.id}#s`, v);
    const moved = await change(v);
    const p = puller(pool);
    try {
      const msg = (await p.pull(2000))!;
      expect(doorbellSnapshot(msg, v.record.id)).toEqual(v);
      const claimer = new Claimer(store, { ...me, pools: [pool] }, { leaseMs: 3000, ...claimerOpts });
      await check({ v, moved, msg, claimer, pool });
    } finally {
      p.close();
    }
  }

  it("claims on a fresh snapshot without reading, straight into running when nothing is prepared", () =>
    onDoorbell(
      { startsAtClaim: () => true },
      async () => undefined,
      async ({ v, msg, claimer }) => {
        const d = await claimer.decide(msg, () => false);
        expect(d.kind).toBe("claimed");
        if (d.kind !== "claimed") return;
        expect(d.claimed.record.state).toBe("running");
        const a = d.claimed.record.attempts[0]!;
        expect(a.startedAt).toBe(a.claimedAt);
        expect(await store.get(v.record.id)).toEqual(d.claimed);
        msg.ack();
      },
    ));

  it("a stale snapshot falls back to the record as it is now", () =>
    onDoorbell(
      {},
      // The record moves on after the doorbell was rung (here: more attempts set by hand).
      (v) => store.update(v, { ...structuredClone(v.record), maxAttempts: 7 }),
      async ({ moved, msg, claimer }) => {
        const d = await claimer.decide(msg, () => false);
        expect(d.kind).toBe("claimed");
        if (d.kind !== "claimed") return;
        // Claimed from the current record (revision and content), not the snapshot.
        expect(d.claimed.revision).toBeGreaterThan(moved!.revision);
        expect(d.claimed.record.maxAttempts).toBe(7);
        expect(d.claimed.record.state).toBe("claimed");
        msg.ack();
      },
    ));

  it("a snapshot of a task cancelled since is not claimed", () =>
    onDoorbell(
      {},
      (v) =>
        store.update(v, {
          ...structuredClone(v.record),
          state: "cancelled",
          finishedAt: new Date().toISOString(),
        }),
      async ({ v, msg, claimer, pool }) => {
        const d = await claimer.decide(msg, () => false);
        expect(d).toMatchObject({ kind: "skip", why: "already cancelled" });
        expect((await store.get(v.record.id))!.record.state).toBe("cancelled");
        await waitFor(async () => (await pending(topo.jsm, pool)).ackPending === 0, {
          name: "doorbell acked",
          timeoutMs: 5000,
        });
      },
    ));
});

describe("JsPublisher: PubAcks over one shared reply subscription", () => {
  it("acks a publish, refuses a wrong expected sequence with the API error, and dedups by msgID", async () => {
    const pub = topo.publisher;
    const subject = taskSubject(uniqueId("pub"), "x");
    const first = await pub.publish(subject, "a", { expectLastSubjectSequence: 0 });
    expect(first.stream).toBe(TASKS_STREAM);
    expect(first.seq).toBeGreaterThan(0);
    await expect(pub.publish(subject, "b", { expectLastSubjectSequence: 0 })).rejects.toMatchObject({
      name: "JetStreamApiError",
      code: 10071,
    });
    const second = await pub.publish(subject, "c", { expectLastSubjectSequence: first.seq, msgID: "m-1" });
    expect(second.seq).toBeGreaterThan(first.seq);
    const again = await pub.publish(subject, "c", { msgID: "m-1" });
    expect(again).toMatchObject({ seq: second.seq, duplicate: true });
  });

  it("the task store turns a lost compare-and-set into CONFLICT", async () => {
    const spec = validateTaskSpec({ id: uniqueId("cas"), prompt: "p", runner: "noop" });
    const v = (await store.create(newTaskRecord(spec, new Date())))!;
    const moved = await store.update(v, { ...structuredClone(v.record), maxAttempts: 2 });
    expect(moved.revision).toBeGreaterThan(v.revision);
    await expect(store.update(v, { ...structuredClone(v.record), maxAttempts: 3 })).rejects.toMatchObject({
      code: "CONFLICT",
    });
    expect((await store.get(spec.id))!.record.maxAttempts).toBe(2);
  });

  it("no stream on the subject is UNAVAILABLE; no answer at all times out as unknown", async () => {
    await expect(topo.publisher.publish(`nostream.${uniqueId("x")}`, "a")).rejects.toMatchObject({
      code: "UNAVAILABLE",
    });
    const silent = nc.subscribe("silent.listener"); // interest, but it never answers
    try {
      await expect(topo.publisher.publish("silent.listener", "a", { timeoutMs: 300 })).rejects.toThrow(
        /outcome is unknown/,
      );
    } finally {
      silent.unsubscribe();
    }
  });
});

describe("a daemon behind a leaf node (JetStream domain)", () => {
  it("claims and finishes tasks through a leaf that only dials out to the hub", async () => {
    const leafPort = await freePort();
    const hub = await NatsServer.start({
      jetstreamDomain: "hub",
      extraConfig: `leafnodes { listen: "127.0.0.1:${leafPort}" }`,
    });
    const leaf = await NatsServer.start({
      jetstream: false,
      extraConfig: `leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${leafPort}" } ] }`,
    });
    let client: MeshClient | undefined;
    let daemon: Daemon | undefined;
    try {
      client = await waitFor(
        async () => {
          try {
            return await openClient(leaf.url, { domain: "hub" });
          } catch {
            return undefined;
          }
        },
        { name: "JetStream of the hub reachable through the leaf", timeoutMs: 20_000, intervalMs: 250 },
      );
      daemon = await startDaemon(leaf.url, { pools: ["leafy"], nats: { domain: "hub" } as never });
      const noop = validateTaskSpec({ id: uniqueId("leaf"), prompt: "p", runner: "noop", pool: "leafy" });
      const cmd = nodeTask("process.exit(0)", { pool: "leafy" });
      await client.api.submit([noop, cmd]);
      for (const id of [noop.id, cmd.id]) {
        const done = await waitForState(client.api, id, ["succeeded", "failed", "dead"]);
        expect(done.record.state).toBe("succeeded");
        expect(done.record.attempts[0]?.workerId).toBe(daemon.workerId);
      }
    } finally {
      await daemon?.stop(1000);
      await client?.close();
      await leaf.cleanup();
      await hub.cleanup();
    }
  });
});

describe("retention of finished tasks", () => {
  async function record(state: "queued" | "succeeded" | "dead", finishedDaysAgo?: number) {
    const spec = validateTaskSpec({ id: uniqueId("ret"), prompt: "p", runner: "noop", pool: "retention" });
    const r = newTaskRecord(spec, new Date());
    r.state = state;
    if (finishedDaysAgo !== undefined)
      r.finishedAt = new Date(Date.now() - finishedDaysAgo * 86_400_000).toISOString();
    return (await store.create(r))!;
  }

  it("purging a record keeps a newer write of it, and frees the id", async () => {
    const v1 = await record("dead", 30);
    const v2 = await store.update(v1, { ...structuredClone(v1.record), state: "queued" }); // a retry
    await store.purge(v1);
    expect(await store.get(v1.record.id)).toEqual(v2);
    await store.purge(v2);
    expect(await store.get(v1.record.id)).toBeUndefined();
    expect(await store.create(newTaskRecord(v1.record.spec, new Date()))).toBeDefined();
  });

  it("the sweeper deletes tasks finished longer ago than the retention, and nothing else", async () => {
    const old = await record("succeeded", 10);
    const recent = await record("succeeded", 0);
    const waiting = await record("queued");
    const sweeper = (retentionMs: number) =>
      new Sweeper(store, topo.js, topo.jsm, log, { intervalMs: 60_000, minAgeMs: 1e12, retentionMs });
    await sweeper(0).sweep(); // 0 keeps everything
    expect(await store.get(old.record.id)).toEqual(old);
    await sweeper(86_400_000).sweep();
    expect(await store.get(old.record.id)).toBeUndefined();
    expect(await store.get(recent.record.id)).toEqual(recent);
    expect(await store.get(waiting.record.id)).toEqual(waiting);
  });
});

describe("sweeps between full passes", () => {
  it("read the unfinished tasks and what was written since, by key; every fullEvery-th reads all", async () => {
    // A server of its own, so that the records read are only this test's.
    const own = await NatsServer.start();
    const onc = await connect({ servers: own.url });
    try {
      const t = await ensureTopology(onc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500 });
      const s = new TaskStore(t);
      const pool = "incr";
      const make = async (state: "queued" | "succeeded", finishedDaysAgo = 0) => {
        const spec = validateTaskSpec({ id: uniqueId("inc"), prompt: "p", runner: "noop", pool });
        const r = newTaskRecord(spec, new Date());
        r.state = state;
        if (state !== "queued") r.finishedAt = new Date(Date.now() - finishedDaysAgo * 86_400_000).toISOString();
        return (await s.create(r))!;
      };
      const finished: VersionedRecord[] = [];
      for (let i = 0; i < 150; i++) finished.push(await make("succeeded"));
      const q1 = await make("queued"); // no doorbell: lost
      const sweeper = new Sweeper(s, t.js, t.jsm, log, {
        intervalMs: 60_000,
        minAgeMs: 0,
        retentionMs: 86_400_000,
        fullEvery: 4,
      });
      // 1: full (the first).
      expect(await sweeper.pass()).toMatchObject({ full: true, read: 151, rung: 1 });
      // 2: what was queued (q1) and what was written since: a new lost task, a finished one
      // rewritten, and one written as finished ten days ago (past the retention: deleted).
      const q2 = await make("queued");
      const touched = await s.update(finished[0]!, { ...structuredClone(finished[0]!.record), reason: "note" });
      const old = await make("succeeded", 10);
      expect(await sweeper.pass()).toMatchObject({ full: false, read: 4, rung: 1, purged: 1 });
      expect(await s.get(old.record.id)).toBeUndefined();
      expect(await s.get(touched.record.id)).toEqual(touched);
      // 3: nothing written since; the queued tasks are read again, and one whose doorbell was
      // lost meanwhile is rung again.
      await t.jsm.streams.purge(TASKS_STREAM, { filter: taskSubject(pool, q1.record.id) });
      expect(await sweeper.pass()).toMatchObject({ full: false, read: 2, rung: 1 });
      // 4: a deleted task drops out...
      await s.purge((await s.get(q2.record.id))!);
      expect(await sweeper.pass()).toMatchObject({ full: false, read: 1, rung: 0 });
      // 5: ...and the fourth pass after the first reads the whole bucket again.
      expect(await sweeper.pass()).toMatchObject({ full: true, read: 151, rung: 0 });
      // fullEvery 1: every pass reads everything.
      const always = new Sweeper(s, t.js, t.jsm, log, { intervalMs: 60_000, minAgeMs: 0, fullEvery: 1 });
      await always.pass();
      expect(await always.pass()).toMatchObject({ full: true, read: 151 });
    } finally {
      await onc.close();
      await own.cleanup();
    }
  });
});

describe("one sweeper per mesh", () => {
  it("the live worker with the lowest id sweeps; when it leaves, the next one takes over", async () => {
    // A server of its own: workers of other tests must not take part in the election.
    const own = await NatsServer.start();
    const daemons: Daemon[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        daemons.push(await startDaemon(own.url, { pools: ["sweep"], sweepInterval: "100ms" }));
      }
      const sweepers = (ds: Daemon[]) => ds.filter((d) => d.sweeping).map((d) => d.workerId);
      const lowest = (ds: Daemon[]) => [...ds.map((d) => d.workerId)].sort()[0];
      // Once every directory lists all three, exactly one sweeps: the lowest id.
      await waitFor(() => sweepers(daemons).length === 1 && sweepers(daemons)[0] === lowest(daemons), {
        name: "one sweeper elected",
        timeoutMs: 15_000,
      });
      const first = daemons.find((d) => d.sweeping)!;
      const others = daemons.filter((d) => d !== first);
      // Its timer sweeps; the others' timers do not.
      const before = others.map((d) => d.sweepPasses);
      const firstBefore = first.sweepPasses;
      await waitFor(() => first.sweepPasses >= firstBefore + 3, {
        name: "elected sweeper swept",
        timeoutMs: 10_000,
      });
      expect(others.map((d) => d.sweepPasses)).toEqual(before);
      await first.stop();
      await waitFor(() => sweepers(others).length === 1 && sweepers(others)[0] === lowest(others), {
        name: "the next worker took over sweeping",
        timeoutMs: 15_000,
      });
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await own.cleanup();
    }
  });

  it("a live first worker that stops reporting sweeps is passed over", async () => {
    const directory = new WorkerDirectory(topo.workers, topo.jsm, {
      refreshMs: 60_000,
      staleMs: 60_000,
      log,
    });
    const now = Date.now();
    const ago = (ms: number) => new Date(now - ms).toISOString();
    const worker = (workerId: string, extra: Partial<WorkerInfo>): WorkerInfo => ({
      v: 1,
      workerId,
      name: workerId,
      host: "h",
      pools: ["p"],
      labels: {},
      runners: ["noop"],
      slotsTotal: 1,
      slotsFree: 1,
      running: [],
      version: "test",
      startedAt: ago(3_600_000),
      updatedAt: ago(0),
      ...extra,
    });
    const put = (w: WorkerInfo) => topo.workers.put(w.workerId, JSON.stringify(w));
    const sweptAt = (w: WorkerInfo) => w.sweptAt;
    const tag = uniqueId("0chore").replace(/[^a-zA-Z0-9-]/g, "-");
    await put(worker(`${tag}-a`, { sweptAt: ago(1_000) })); // first, sweeping
    await put(worker(`${tag}-b`, {})); // second, never swept (it was not first)
    await directory.refresh();
    expect(directory.isChoreHolder(`${tag}-a`, sweptAt, 30_000)).toBe(true);
    expect(directory.isChoreHolder(`${tag}-b`, sweptAt, 30_000)).toBe(false);
    expect(directory.isChoreHolder(`${tag}-c`, sweptAt, 30_000)).toBe(false);
    // The first one is alive but has not finished a pass for longer than staleMs: the next takes
    // over. A directory that first sees it so dates it by its stamp...
    await put(worker(`${tag}-a`, { sweptAt: ago(60_000) }));
    const fresh = new WorkerDirectory(topo.workers, topo.jsm, { refreshMs: 60_000, staleMs: 60_000, log });
    await fresh.refresh();
    expect(fresh.isChoreHolder(`${tag}-b`, sweptAt, 30_000)).toBe(true);
    // ...while to one that saw an earlier stamp a changed one is news heard now, whatever the
    // wall clocks say (the first may run behind ours), and it is passed over once it stays the
    // same for staleMs, timed here.
    await directory.refresh();
    expect(directory.isChoreHolder(`${tag}-b`, sweptAt, 30_000)).toBe(false);
    await waitFor(() => directory.isChoreHolder(`${tag}-b`, sweptAt, 300), {
      name: "passed over after 300 ms without a new stamp",
      timeoutMs: 10_000,
    });
    // A first one that just started has not had time to sweep: nobody passes it over yet.
    await put(worker(`${tag}-a`, { startedAt: ago(1_000) }));
    await directory.refresh();
    expect(directory.isChoreHolder(`${tag}-b`, sweptAt, 30_000)).toBe(false);
    // A draining first one does not count.
    await put(worker(`${tag}-a`, { startedAt: ago(1_000), draining: true }));
    await directory.refresh();
    expect(directory.isChoreHolder(`${tag}-b`, sweptAt, 30_000)).toBe(true);
  });

  it("a sweeper that is not elected does not sweep on its timer", async () => {
    let elected = false;
    let asked = 0;
    const sweeper = new Sweeper(store, topo.js, topo.jsm, log, {
      intervalMs: 50,
      minAgeMs: 1e12,
      elected: () => {
        asked++;
        return elected;
      },
    });
    sweeper.start();
    try {
      // Several ticks ask and pass without sweeping; the first tick after election sweeps.
      await waitFor(() => asked >= 3, { name: "ticks asked", timeoutMs: 5_000 });
      expect(sweeper.passes).toBe(0);
      elected = true;
      await waitFor(() => sweeper.passes > 0, { name: "elected sweeper swept", timeoutMs: 5_000 });
    } finally {
      sweeper.stop();
    }
  });
});
