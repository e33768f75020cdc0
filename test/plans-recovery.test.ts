/**
 * Plans: a daemon that dies between a need's success and the release leaves the dependent to
 * the sweeper's pass; a 5,000-task plan fits its record in one message and submits whole.
 * Real nats-server, a real daemon (in process, to give it a short sweep interval).
 */
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TASKS_BUCKET } from "../daemon/nats/names.js";
import { buildPlanRecord, MAX_PLAN_RECORD_BYTES, validatePlanSubmit } from "../daemon/plans/index.js";
import { NatsServer } from "./harness/index.js";
import { type MeshClient, openClient, startDaemon, waitForState } from "./support/mesh.js";

let nats: NatsServer;
let client: MeshClient;

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await nats?.cleanup();
});

describe("plans, recovery and scale", () => {
  it("a need that succeeded without its release (its daemon died in between) is released by the sweeper, once", async () => {
    const p = validatePlanSubmit({
      plan: `recover-${process.pid}`,
      defaults: { prompt: "p", runner: "noop" },
      tasks: [
        // Nobody serves the first pool: the test plays the daemon that ran it and died.
        { id: "a", pool: "nobody" },
        { id: "b", needs: ["a"], pool: "recovery" },
      ],
    });
    await client.api.submitPlan(p);
    const [a, b] = [`${p.id}-a`, `${p.id}-b`];
    // a's success, written as its daemon would, and nothing after it: no release of b.
    const nc = await connect({ servers: nats.url });
    try {
      const kv = await new Kvm(nc).open(TASKS_BUCKET);
      const rec = JSON.parse(new TextDecoder().decode((await kv.get(a))!.value));
      const at = new Date().toISOString();
      Object.assign(rec, {
        state: "succeeded",
        attempt: 1,
        finishedAt: at,
        updatedAt: at,
        attempts: [
          { attempt: 1, workerId: "gone-1", host: "gone", claimedAt: at, endedAt: at, outcome: "succeeded" },
        ],
      });
      await kv.put(a, JSON.stringify(rec));
    } finally {
      await nc.close();
    }
    expect((await client.api.getTask(b)).record.state).toBe("waiting");
    const d = await startDaemon(nats.url, { pools: ["recovery"], runners: ["noop"], sweepInterval: "500ms" });
    try {
      await waitForState(client.api, b, ["succeeded"]);
    } finally {
      await d.stop();
    }
    const queued: number[] = [];
    for await (const e of client.api.watchTask(b, new AbortController().signal)) {
      if (e.type === "state" && e.state === "queued") queued.push(e.attempt);
    }
    expect(queued).toEqual([1]);
  }, 60_000);

  it("a 5,000-task plan (1 -> 4,998 -> 1) keeps its record under one message and submits whole", async () => {
    const n = 4998;
    const wide = Array.from({ length: n }, (_, i) => `w${i}`);
    const doc = {
      plan: `scale-${process.pid}`,
      defaults: { prompt: "p", runner: "noop", pool: "nobody-scale" },
      tasks: [{ id: "root" }, ...wide.map((id) => ({ id, needs: ["root"] })), { id: "sink", needs: wide }],
    };
    let t = Date.now();
    const plan = validatePlanSubmit(doc);
    const validateMs = Date.now() - t;
    const bytes = Buffer.byteLength(
      JSON.stringify(buildPlanRecord(plan, new Date(), "me@here", "0".repeat(64))),
    );
    t = Date.now();
    const res = await client.api.submitPlan(plan);
    const submitMs = Date.now() - t;
    console.log(
      `5000-task plan: record ${Math.round(bytes / 1024)} KiB (limit ${MAX_PLAN_RECORD_BYTES / 1024} KiB), validated in ${validateMs} ms, submitted in ${submitMs} ms`,
    );
    expect(bytes).toBeLessThan(MAX_PLAN_RECORD_BYTES);
    expect(res.tasks).toHaveLength(5000);
    expect(res.tasks.filter((x) => x.state === "queued").map((x) => x.id)).toEqual([`${plan.id}-root`]);
    const view = await client.api.getPlan(plan.id);
    expect(view.tasks).toHaveLength(5000);
    expect(view.missing).toEqual([]);
  }, 120_000);
});
