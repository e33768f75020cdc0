/**
 * TaskStore.create (the first write of every submit) against a real nats-server: it creates a
 * record once, says "exists" for a live one, writes over a delete marker left by a deleted key
 * (as kv.create does), and reports a full bucket as RESOURCE_EXHAUSTED naming the limit.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import { newTaskRecord } from "../daemon/tasks/record.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { TaskStore } from "../daemon/tasks/store.js";
import { NatsServer } from "./harness/index.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let nc: NatsConnection;
let topo: Topology;
let store: TaskStore;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500, tasksMaxBytes: 64 * 1024 });
  store = new TaskStore(topo);
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

const record = (id: string, prompt = "p") =>
  newTaskRecord(validateTaskSpec({ id, pool: "nobody", runner: "noop", prompt }), new Date());

describe("TaskStore.create", () => {
  it("creates once; a live record is reported as existing and left as it is", async () => {
    const id = uniqueId("create");
    const made = await store.create(record(id));
    expect(made?.revision).toBeGreaterThan(0);
    expect(await store.create(record(id, "other"))).toBeUndefined();
    const got = await store.get(id);
    expect(got?.revision).toBe(made?.revision);
    expect(got?.record.spec.prompt).toBe("p");
  });

  it("writes over the delete marker of a deleted key", async () => {
    const id = uniqueId("recreate");
    await store.create(record(id));
    await topo.tasks.delete(id);
    expect(await store.get(id)).toBeUndefined();
    const again = await store.create(record(id, "second"));
    expect(again).toBeDefined();
    const got = await store.get(id);
    expect(got?.revision).toBe(again?.revision);
    expect(got?.record.spec.prompt).toBe("second");
  });

  it("a full bucket is RESOURCE_EXHAUSTED naming limits.tasksMaxBytes, and nothing is written", async () => {
    let id = "";
    let err: unknown;
    for (let i = 0; i < 10 && err === undefined; i++) {
      id = uniqueId("full");
      err = await store.create(record(id, "x".repeat(20 * 1024))).then(
        () => undefined,
        (e: unknown) => e,
      );
    }
    expect(isMeshError(err, "RESOURCE_EXHAUSTED")).toBe(true);
    expect((err as { field?: string }).field).toBe("limits.tasksMaxBytes");
    expect(await store.get(id)).toBeUndefined();
  });
});
