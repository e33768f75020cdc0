/**
 * Submits that race past the tasks bucket's 90% check (two daemons, each counting on its own
 * view of the bucket) against a real nats-server: the batch whose creates hit the bucket's hard
 * limit part-way is refused whole (RESOURCE_EXHAUSTED), leaving no record and no doorbell; and
 * two concurrent submits through one daemon cannot both pass on the same stream read.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import { createLogger } from "../daemon/log.js";
import { TASKS_BUCKET_STREAM, TASKS_STREAM } from "../daemon/nats/names.js";
import { BucketCapacity, SOFT_RATIO } from "../daemon/queue/capacity.js";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import { MeshService } from "../daemon/service.js";
import { EventPublisher } from "../daemon/tasks/event-publisher.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { TaskStore } from "../daemon/tasks/store.js";
import { NatsServer } from "./harness/index.js";
import { uniqueId } from "./support/tasks.js";

const MAX = 64 * 1024;
const log = createLogger("silent");
let nats: NatsServer;
let nc: NatsConnection;
let topo: Topology;
let store: TaskStore;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500, tasksMaxBytes: MAX });
  store = new TaskStore(topo);
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

/** A daemon's submit path; `capacity` is its view of the bucket. */
function service(capacity: BucketCapacity): MeshService {
  return new MeshService({
    nc,
    js: topo.js,
    publisher: topo.publisher,
    jsm: topo.jsm,
    store,
    workersKv: topo.workers,
    events: new EventPublisher(nc, log),
    log,
    presenceTtlMs: 1500,
    capacity,
  });
}

/** `n` queued tasks of about `bytes` each, in a pool nobody serves. */
function batch(n: number, bytes: number, tag: string) {
  return Array.from({ length: n }, () =>
    validateTaskSpec({ id: uniqueId(tag), pool: "nobody", runner: "noop", prompt: "p".repeat(bytes) }),
  );
}

const used = async () => (await topo.jsm.streams.info(TASKS_BUCKET_STREAM)).state.bytes;
const doorbells = async () => (await topo.jsm.streams.info(TASKS_STREAM)).state.messages;

describe("submits racing past the tasks bucket check", () => {
  it("two concurrent submits through one daemon share its stream read: the second is refused at 90%", async () => {
    const cap = new BucketCapacity(topo.jsm, TASKS_BUCKET_STREAM, "limits.tasksMaxBytes");
    const share = Math.floor(MAX * SOFT_RATIO * 0.6);
    const results = await Promise.allSettled([cap.admit(share), cap.admit(share)]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(isMeshError(refused.reason, "RESOURCE_EXHAUSTED")).toBe(true);
  });

  it("a batch that hits the hard limit part-way is refused whole: no record, no doorbell", async () => {
    // Daemon B read the bucket while it was empty; its next read is not due yet (its clock stands).
    const stale = new BucketCapacity(topo.jsm, TASKS_BUCKET_STREAM, "limits.tasksMaxBytes", () => 0);
    await stale.admit(0);
    // Daemon A fills half the bucket meanwhile.
    const a = service(new BucketCapacity(topo.jsm, TASKS_BUCKET_STREAM, "limits.tasksMaxBytes"));
    await a.submit(batch(4, 7 * 1024, "a"));
    const before = { bytes: await used(), doorbells: await doorbells() };
    expect(before.bytes).toBeGreaterThan(MAX / 3);

    // B's batch passes B's check (on its stale view) but does not fit in what is left.
    const specs = batch(7, 7 * 1024, "b");
    const err = await service(stale)
      .submit(specs)
      .catch((e: unknown) => e);
    expect(isMeshError(err, "RESOURCE_EXHAUSTED"), String(err)).toBe(true);
    for (const s of specs) expect(await store.get(s.id)).toBeUndefined();
    expect(await doorbells()).toBe(before.doorbells);
    expect(await used()).toBe(before.bytes);

    // Still serving: a task that fits goes in.
    const ok = await a.submit(batch(1, 100, "c"));
    expect(ok[0]?.created).toBe(true);
  });
});
