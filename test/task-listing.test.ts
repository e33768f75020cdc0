/**
 * `mesh tasks` with a limit, answered without reading the whole bucket (daemon/task-listing.ts),
 * against a real nats-server: the queued listing from the doorbells keeps exactly the tasks
 * still queued, however stale their doorbells (claimed, cancelled, purged since; a retry in
 * back-off keeps its own), newest change first; other limited listings read the bucket's tail;
 * both give what a scan of the whole bucket gives, and fall back to one past their budget.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskFilter } from "../daemon/api/index.js";
import { validateTaskSpec } from "../daemon/index.js";
import { ringDoorbell } from "../daemon/queue/doorbell.js";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import { findTasks, type ListingDeps, taskMatcher } from "../daemon/task-listing.js";
import {
  cancel,
  claim,
  expectState,
  settle,
  start,
  submit,
  TRANSITIONS,
  type VersionedRecord,
} from "../daemon/tasks/index.js";
import { TaskStore } from "../daemon/tasks/store.js";
import { NatsServer } from "./harness/index.js";
import { openClient } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let nc: NatsConnection;
let topo: Topology;
let store: TaskStore;
let deps: ListingDeps;
const who = { workerId: "w-1", host: "h", leaseMs: 3000 };

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500 });
  store = new TaskStore(topo);
  deps = { store, jsm: topo.jsm };
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

/** As `MeshService.submit` writes it: the record, then its doorbell. */
async function submitted(pool: string): Promise<VersionedRecord> {
  const spec = validateTaskSpec({ id: uniqueId("ls"), prompt: "p", runner: "noop", pool, maxAttempts: 3 });
  const v = (await store.create(submit(spec, new Date()).record))!;
  await ringDoorbell(topo.publisher, pool, spec.id, `${spec.id}#submit`, v);
  return v;
}

const claimed = (v: VersionedRecord) =>
  store.update(v, claim(expectState(v.record, "claim", TRANSITIONS.claim.from), who, new Date()).record);
const running = async (v: VersionedRecord) => {
  const c = await claimed(v);
  return store.update(
    c,
    start(expectState(c.record, "start", TRANSITIONS.start.from), who.workerId, new Date()).record,
  );
};
const ended = async (v: VersionedRecord, outcome: "succeeded" | "failed") => {
  const r = await running(v);
  const s = settle(
    expectState(r.record, "settle", TRANSITIONS.settle.from),
    { outcome, workerId: who.workerId },
    { retryDelayMs: 3_600_000 },
    new Date(),
  );
  return store.update(r, s.record);
};

/** What a scan of the whole bucket answers for a limited listing: matches, newest change first. */
async function scanned(filter: TaskFilter): Promise<string[]> {
  const match = taskMatcher(filter);
  return (await store.list())
    .filter((v) => match(v.record))
    .sort((a, b) => b.revision - a.revision)
    .slice(0, filter.limit)
    .map((v) => v.record.id);
}

const ids = (l: { records: VersionedRecord[] }) => l.records.map((v) => v.record.id);

describe("limited listings without the whole bucket", () => {
  it("the queued listing keeps exactly the tasks still queued, newest change first", async () => {
    const pool = uniqueId("lsq");
    const [a, b, c, d, e, f] = [
      await submitted(pool),
      await submitted(pool),
      await submitted(pool),
      await submitted(pool),
      await submitted(pool),
      await submitted(pool),
    ] as VersionedRecord[];
    await claimed(a!); // its doorbell outlives the claim
    await store.update(
      b!,
      cancel(expectState(b!.record, "cancel", TRANSITIONS.cancel.from), new Date()).record,
    );
    const backoff = await ended(c!, "failed"); // back to queued, not before an hour from now
    expect(backoff.record.state).toBe("queued");
    expect(backoff.record.notBefore).toBeDefined();
    await store.purge(d!); // gone (retention), its doorbell still there
    await ended(await submitted(pool), "succeeded");
    await submitted(uniqueId("other")); // queued in another pool

    const filter: TaskFilter = { state: ["queued"], pool, limit: 50 };
    const got = await findTasks(deps, filter);
    expect(got.path).toBe("doorbells");
    // The retry in back-off was written last, then f, then e.
    expect(ids(got)).toEqual([c!.record.id, f!.record.id, e!.record.id]);
    expect(ids(got)).toEqual(await scanned(filter));
    // The daemon's listTasks answers the same (newest change first, not newest submission).
    const client = await openClient(nats.url);
    try {
      expect((await client.api.listTasks(filter)).tasks.map((t) => t.record.id)).toEqual(ids(got));
    } finally {
      await client.close();
    }
    const two = await findTasks(deps, { ...filter, limit: 2 });
    expect(ids(two)).toEqual([c!.record.id, f!.record.id]);
    // Every pool: the other pool's queued task too, in the same order as a scan gives.
    const all = await findTasks(deps, { state: ["queued"], limit: 50 });
    expect(all.path).toBe("doorbells");
    expect(ids(all)).toEqual(await scanned({ state: ["queued"], limit: 50 }));
    expect(ids(all)).toHaveLength(4);
    // Past its budget of doorbells (a backlog), the bucket's newest writes answer the same, with
    // a pool and without; past the tail's budget too, a scan.
    const tail = await findTasks({ ...deps, budgets: { doorbells: 1 } }, filter);
    expect(tail.path).toBe("tail");
    expect(ids(tail)).toEqual(ids(got));
    const tailAll = await findTasks({ ...deps, budgets: { doorbells: 1 } }, { state: ["queued"], limit: 50 });
    expect(tailAll.path).toBe("tail");
    expect(ids(tailAll)).toEqual(ids(all));
    const scan = await findTasks({ ...deps, budgets: { doorbells: 1, tail: 1 } }, filter);
    expect(scan.path).toBe("scan");
    expect(ids(scan)).toEqual(ids(got));
  });

  it("other limited listings read the bucket's newest writes, and a scan past their budget", async () => {
    const pool = uniqueId("lst");
    const done = await ended(await submitted(pool), "succeeded");
    for (let i = 0; i < 6; i++) await submitted(pool);
    const late = await ended(await submitted(pool), "succeeded");
    // Deleted with a marker (the newest write of its key, then): never listed.
    const gone = await ended(await submitted(pool), "succeeded");
    await topo.tasks.delete(gone.record.id);
    const newest = await findTasks(deps, { limit: 3 });
    expect(newest.path).toBe("tail");
    expect(ids(newest)).toEqual(await scanned({ limit: 3 }));
    expect(ids(newest)[0]).toBe(late.record.id);
    expect(ids(newest)).not.toContain(gone.record.id);
    const succeeded: TaskFilter = { state: ["succeeded"], pool, limit: 2 };
    const tail = await findTasks(deps, succeeded);
    expect(tail.path).toBe("tail");
    expect(ids(tail)).toEqual([late.record.id, done.record.id]);
    // The older one lies deeper than a budget of 4 reads: the scan finds it all the same.
    const scan = await findTasks({ ...deps, budgets: { tail: 4 } }, succeeded);
    expect(scan.path).toBe("scan");
    expect(ids(scan)).toEqual(ids(tail));
    // Fewer matches than the limit: the whole tail is read and says so.
    const few = await findTasks(deps, { ...succeeded, limit: 50 });
    expect(few.path).toBe("tail");
    expect(ids(few)).toEqual([late.record.id, done.record.id]);
  });

  it("without a limit, every match in one scan, newest submission first", async () => {
    const pool = uniqueId("lsa");
    const first = await submitted(pool);
    const second = await submitted(pool);
    await claimed(first);
    const got = await findTasks(deps, { pool });
    expect(got.path).toBe("scan");
    const expected = [first, second]
      .sort(
        (x, y) =>
          y.record.submittedAt.localeCompare(x.record.submittedAt) || x.record.id.localeCompare(y.record.id),
      )
      .map((v) => v.record.id);
    expect(ids(got)).toEqual(expected);
  });
});
