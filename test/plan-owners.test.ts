/**
 * The owners the ownership hook names (daemon/runner/plan-owners.ts), against a real
 * nats-server: the plan's other tasks' `owns`, read by key from the tasks the plan record names
 * (and those delegated into it, from the plan record while their record is not written yet);
 * tasks of another plan, and the task itself, are not owners.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateTaskSpec } from "../daemon/index.js";
import type { PlanRecord } from "../daemon/plans/index.js";
import { ensureTopology } from "../daemon/queue/topology.js";
import { planOwners } from "../daemon/runner/index.js";
import { submit } from "../daemon/tasks/index.js";
import { TaskStore } from "../daemon/tasks/store.js";
import { NatsServer } from "./harness/index.js";

let nats: NatsServer;
let nc: NatsConnection;
let store: TaskStore;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  store = new TaskStore(await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500 }));
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

const task = (id: string, plan: string, owns?: string[]) =>
  store.create(
    submit(validateTaskSpec({ id, prompt: "p", runner: "noop", plan, ...(owns ? { owns } : {}) }), new Date())
      .record,
  );

describe("plan owners", () => {
  it("names the plan's other tasks by their owns, from the plan record's tasks, by key", async () => {
    await task("p1-api", "p1", ["src/api/**"]);
    await task("p1-ui", "p1", ["src/ui/**"]);
    await task("p1-docs", "p1");
    await task("p2-api", "p2", ["src/**"]);
    const plan: PlanRecord = {
      v: 1,
      id: "p1",
      createdAt: new Date().toISOString(),
      submitter: "t@h",
      tasks: ["api", "ui", "docs"],
      needs: [[], [], [0, 1]],
      digest: "x",
      delegated: { "api-tests": { parent: "p1-api", owns: ["src/api/tests/**"] } },
    };
    const asked: string[] = [];
    const owners = planOwners({
      store,
      plan: async (id) => {
        asked.push(id);
        return id === "p1" ? plan : undefined;
      },
    });
    const spec = validateTaskSpec({
      id: "p1-ui",
      prompt: "p",
      runner: "noop",
      plan: "p1",
      owns: ["src/ui/**"],
    });
    expect(await owners(spec)).toEqual({
      "p1-api": ["src/api/**"],
      // Delegated, its record not written yet: what the plan record says it owns.
      "p1-api-tests": ["src/api/tests/**"],
    });
    expect(asked).toEqual(["p1"]);
    // No plan, or a plan without a record: nobody owns anything.
    expect(await owners(validateTaskSpec({ id: "solo", prompt: "p", runner: "noop" }))).toEqual({});
    expect(await owners(validateTaskSpec({ id: "p3-a", prompt: "p", runner: "noop", plan: "p3" }))).toEqual(
      {},
    );
  });
});
