/**
 * Retention keeps the task bucket bounded: the mesh's elected sweeper (here the one daemon, its
 * `taskRetention` and `sweepInterval` from its config) deletes the records of tasks finished
 * longer ago than the retention, at every pass, and leaves every other record as it was:
 * finished more recently, or not finished however old. A real nats-server and a real daemon.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../daemon/index.js";
import { validateTaskSpec } from "../daemon/index.js";
import { newTaskRecord, type TaskRecord, type TaskState } from "../daemon/tasks/record.js";
import { NatsServer, waitFor } from "./harness/index.js";
import { type MeshClient, openClient, startDaemon } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let daemon: Daemon;
let client: MeshClient;

beforeAll(async () => {
  nats = await NatsServer.start();
  daemon = await startDaemon(nats.url, {
    pools: [uniqueId("ret-served")],
    taskRetention: "1m",
    sweepInterval: "200ms",
  });
  client = await openClient(nats.url);
});

afterAll(async () => {
  await daemon?.stop();
  await client?.close();
  await nats?.cleanup();
});

const MINUTE = 60_000;

/** A record in `state`, last changed `agoMs` ago (finished then, unless `finished` is false). */
async function stored(state: TaskState, agoMs: number, finished = true) {
  const at = new Date(Date.now() - agoMs).toISOString();
  // A pool no live worker serves: the sweeper leaves its live tasks parked, untouched.
  const spec = validateTaskSpec({ id: uniqueId("ret"), prompt: "p", runner: "noop", pool: "nobody-serves" });
  const r: TaskRecord = { ...newTaskRecord(spec, new Date(at)), state, updatedAt: at };
  if (finished) r.finishedAt = at;
  return (await client.store.create(r))!;
}

describe("retention of finished tasks' records", () => {
  it("the sweeper deletes what finished before the retention, and keeps everything else", async () => {
    const expired = [
      await stored("succeeded", 2 * MINUTE),
      await stored("failed", 3 * MINUTE),
      await stored("cancelled", 2 * MINUTE),
      // Finished without its finishedAt (an old writer's record): its last change counts.
      await stored("dead", 2 * MINUTE, false),
    ];
    const kept = [
      await stored("succeeded", 0),
      await stored("dead", 10_000),
      // Not finished, however old: never deleted.
      await stored("queued", 10 * MINUTE, false),
      await stored("running", 10 * MINUTE, false),
    ];
    await waitFor(
      async () => (await Promise.all(expired.map((v) => client.store.get(v.record.id)))).every((v) => !v),
      { name: "expired records deleted", timeoutMs: 15_000 },
    );
    // Two more passes: nothing else goes.
    const passes = daemon.sweepPasses;
    await waitFor(() => daemon.sweepPasses >= passes + 2, { name: "two more sweeps", timeoutMs: 15_000 });
    for (const v of kept) expect(await client.store.get(v.record.id)).toEqual(v);
    expect(await client.store.count()).toBe(kept.length);
  });
});
