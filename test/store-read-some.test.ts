/**
 * Reading a set of task records the cheaper way (TaskStore.readSome), against a real
 * nats-server: a few among many are read by key (no pass over the bucket, which a plain
 * subscriber on the JetStream API sees as a consumer created on the bucket's stream), a big
 * share of the bucket in one pass; either way exactly the records that exist. `mesh plan list`
 * (listPlans), `mesh plan status` and a delegation's check of its plan read this way.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateTaskSpec } from "../daemon/index.js";
import { listPlans } from "../daemon/plan-service.js";
import { type PlanRecord, PlanStore } from "../daemon/plans/index.js";
import { ensureTopology } from "../daemon/queue/topology.js";
import { submit } from "../daemon/tasks/index.js";
import { TaskStore } from "../daemon/tasks/store.js";
import { NatsServer } from "./harness/index.js";

let nats: NatsServer;
let nc: NatsConnection;
let spy: NatsConnection;
let store: TaskStore;
let plans: PlanStore;
const api = { scans: 0, gets: 0 };

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  spy = await connect({ servers: nats.url });
  const topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500 });
  store = new TaskStore(topo);
  plans = await PlanStore.open(topo.js, topo.jsm, 1);
  spy.subscribe("$JS.API.CONSUMER.CREATE.KV_mesh-tasks.>", { callback: () => void api.scans++ });
  spy.subscribe("$JS.API.CONSUMER.CREATE.KV_mesh-tasks", { callback: () => void api.scans++ });
  spy.subscribe("$JS.API.DIRECT.GET.KV_mesh-tasks.>", { callback: () => void api.gets++ });
  await spy.flush();
});

afterAll(async () => {
  await spy?.close();
  await nc?.close();
  await nats?.cleanup();
});

const make = (id: string, plan?: string) =>
  store.create(
    submit(validateTaskSpec({ id, prompt: "p", runner: "noop", ...(plan ? { plan } : {}) }), new Date()).record,
  );

/** What the server saw between now and the end of `f`. */
async function seen<T>(f: () => Promise<T>): Promise<{ out: T; scans: number; gets: number }> {
  await spy.flush();
  const before = { ...api };
  const out = await f();
  await nc.flush();
  await spy.flush();
  return { out, scans: api.scans - before.scans, gets: api.gets - before.gets };
}

describe("TaskStore.readSome", () => {
  it("reads a few records among many by key, a big share of the bucket in one pass", async () => {
    const made: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) made.push(make(`other-${i}`));
    for (let i = 0; i < 120; i++) made.push(make(`big-t${i}`, "big"));
    await Promise.all(made);
    const planIds = Array.from({ length: 120 }, (_, i) => `big-t${i}`);

    // 120 of 720 records, and one id without a record: by key, one get each.
    const few = await seen(() => store.readSome([...planIds, "big-missing"]));
    expect(few.scans).toBe(0);
    expect(few.gets).toBe(121);
    expect(few.out.map((v) => v.record.id).sort()).toEqual([...planIds].sort());

    // 600 of 720: one pass over the bucket, no gets.
    const others = Array.from({ length: 600 }, (_, i) => `other-${i}`);
    const many = await seen(() => store.readSome(others));
    expect(many.scans).toBe(1);
    expect(many.gets).toBe(0);
    expect(many.out.map((v) => v.record.id).sort()).toEqual([...others].sort());
  });

  it("lists plans with their tasks' states without a pass over the bucket", async () => {
    const plan: PlanRecord = {
      v: 1,
      id: "big",
      createdAt: new Date().toISOString(),
      submitter: "t@h",
      tasks: Array.from({ length: 120 }, (_, i) => `t${i}`),
      needs: Array.from({ length: 120 }, () => []),
      digest: "x",
    };
    await plans.create(plan);
    const listed = await seen(() => listPlans({ store, plans }));
    expect(listed.scans).toBe(0);
    expect(listed.out.map((s) => [s.plan.id, s.states])).toEqual([["big", { queued: 120 }]]);
  });
});
