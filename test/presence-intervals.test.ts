/**
 * Daemons of one mesh may beat their presence at different intervals. A worker is live for 3 of
 * ITS intervals after its last beat, whoever asks: a reader with a short interval (here the
 * client, 500 ms: 1.5 s) must not see a worker that beats every 4 s come and go, which made
 * `mesh workers`, `mesh task`'s "unschedulable", `submit --wait` (exit 6) and the workers-alive
 * gauges of such a reader flicker. That worker's key also outlives the bucket TTL set by a
 * first daemon with a shorter interval. Real nats-server, in-process daemons.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pause } from "../daemon/util/abort.js";
import { NatsServer, removeTempDirs } from "./harness/index.js";
import { type MeshClient, openClient, startDaemon } from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let client: MeshClient;

beforeAll(async () => {
  nats = await NatsServer.start();
  // The client creates the workers bucket with a 1.5 s TTL and judges liveness by 1.5 s.
  client = await openClient(nats.url);
});
afterAll(async () => {
  await client?.close();
  await nats?.stop();
  await removeTempDirs();
});

describe("presence at different intervals", () => {
  it("a worker that beats every 4 s stays live for a reader that beats every 500 ms", async () => {
    const pool = uniqueId("slowbeat");
    const d = await startDaemon(nats.url, { presenceInterval: "4s", pools: [pool], runners: ["command"] });
    try {
      const live = async () => (await client.api.listWorkers()).some((w) => w.workerId === d.workerId);
      expect(await live()).toBe(true);
      // Prove it does NOT vanish between its beats (the reader's 1.5 s and the bucket's TTL pass).
      await pause(2500);
      expect(await live()).toBe(true);
      const spec = nodeTask("", { id: uniqueId("slowbeat-task"), pool, labels: { never: "x" } });
      await client.api.submit([spec]);
      const view = await client.api.getTask(spec.id);
      // Unschedulable because of the label, not because its pool's only worker looked gone.
      expect(view.unschedulable).toContain(`${d.workerId} lacks label never=x`);
    } finally {
      await d.stop();
    }
  }, 30_000);
});
