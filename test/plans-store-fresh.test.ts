/**
 * A fresh read of a plan record (what the scheduler does once per settled task) reads the
 * record only when the bucket changed since: an unchanged 5,000-task record is not sent again
 * for every settle. Two stores (two daemons) on a real nats-server; a plain subscriber on
 * `$JS.API.>` counts the record reads. A change by the other store (a delegation's append), a
 * new plan and a purge are all seen.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPlanRecord, PlanStore, validatePlanSubmit } from "../daemon/plans/index.js";
import { NatsServer } from "./harness/index.js";

let nats: NatsServer;
let nc: NatsConnection;
let spy: NatsConnection;
let reads = 0;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  spy = await connect({ servers: nats.url });
  spy.subscribe("$JS.API.>", {
    callback: (_e, m) => {
      if (/^\$JS\.API\.(DIRECT\.GET|STREAM\.MSG\.GET)\.KV_mesh-plans/.test(m.subject)) reads++;
    },
  });
  await spy.flush();
});
afterAll(async () => {
  await spy?.close();
  await nc?.close();
  await nats?.stop();
});

const record = (id: string, n: number) => {
  const names = Array.from({ length: n }, (_, i) => `w${i}`);
  const plan = validatePlanSubmit({
    plan: id,
    defaults: { prompt: "p", runner: "noop" },
    tasks: [{ id: "root" }, ...names.map((x) => ({ id: x, needs: ["root"] }))],
  });
  return buildPlanRecord(plan, new Date(), "me@here", "0".repeat(64));
};

/** Record reads the spy saw while `fn` ran. */
async function readsDuring<T>(fn: () => Promise<T>): Promise<{ value: T; reads: number }> {
  await spy.flush();
  const before = reads;
  const value = await fn();
  await nc.flush();
  await spy.flush();
  return { value, reads: reads - before };
}

describe("plan store: fresh reads", () => {
  it("reads an unchanged record once, and again only after the bucket changed", async () => {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const writer = await PlanStore.open(js, jsm, 1);
    const reader = await PlanStore.open(js, jsm, 1);
    const big = record("fresh-big", 2000);
    await writer.create(big);

    const first = await readsDuring(() => reader.get(big.id, { fresh: true }));
    expect(first.value?.tasks).toHaveLength(2001);
    expect(first.reads).toBe(1);
    // Unchanged: fresh reads answer from the cache after one stream-info request each.
    for (let i = 0; i < 5; i++) {
      const again = await readsDuring(() => reader.get(big.id, { fresh: true }));
      expect(again.value?.tasks).toHaveLength(2001);
      expect(again.reads).toBe(0);
    }

    // The other store appends a task (a delegation): the reader's next fresh read sees it.
    const cur = (await writer.getVersioned(big.id))!;
    await writer.update(
      { ...cur.record, tasks: [...cur.record.tasks, "added"], needs: [...cur.record.needs, [0]] },
      cur.revision,
    );
    const grown = await readsDuring(() => reader.get(big.id, { fresh: true }));
    expect(grown.value?.tasks.at(-1)).toBe("added");
    expect(grown.reads).toBe(1);
    expect((await readsDuring(() => reader.get(big.id, { fresh: true }))).reads).toBe(0);

    // Another plan written: the bucket changed, so the record is read again (and is the same).
    const other = record("fresh-other", 3);
    await writer.create(other);
    const afterOther = await readsDuring(() => reader.get(big.id, { fresh: true }));
    expect(afterOther.value?.tasks).toHaveLength(2002);
    expect(afterOther.reads).toBe(1);

    // A purge (a failed submit taking its record back) changes the bucket too.
    expect((await readsDuring(() => reader.get(other.id, { fresh: true }))).reads).toBe(1);
    await writer.remove(other.id);
    const gone = await readsDuring(() => reader.get(other.id, { fresh: true }));
    expect(gone.value).toBeUndefined();
    expect(gone.reads).toBe(1);
  }, 30_000);
});
