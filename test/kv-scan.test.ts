/**
 * Reading a whole KV bucket in one pass (daemon/nats/kv-scan.ts) against a real nats-server:
 * every live key once with its newest value and revision, deleted and purged keys left out, an
 * empty bucket answered at once, and a pass that ends while a writer keeps rewriting keys.
 */
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scanKv } from "../daemon/nats/kv-scan.js";
import { kvStream } from "../daemon/nats/names.js";
import { NatsServer, waitFor } from "./harness/index.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

async function bucket(history = 1): Promise<{ name: string; kv: KV }> {
  const name = uniqueId("scan").replace(/[^a-zA-Z0-9_-]/g, "_");
  return { name, kv: await new Kvm(nc).create(name, { history }) };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Consumers left on the bucket's stream (a scan must delete its own). */
async function consumersOn(name: string): Promise<number> {
  return (await jsm.consumers.list(kvStream(name)).next()).length;
}

describe("scanKv", () => {
  it("answers an empty bucket, and one whose keys were all purged, with nothing", async () => {
    const { name, kv } = await bucket();
    expect(await scanKv({ js, jsm }, kv, name)).toEqual([]);
    await kv.put("a", "1");
    await jsm.streams.purge(kvStream(name));
    expect(await scanKv({ js, jsm }, kv, name)).toEqual([]);
  });

  it("leaves out keys that hold only a delete or purge marker", async () => {
    const { name, kv } = await bucket();
    await kv.put("gone", "1");
    await kv.delete("gone");
    await kv.put("purged", "1");
    await kv.purge("purged");
    await kv.put("kept", "1");
    const got = await scanKv({ js, jsm }, kv, name);
    expect(got.map((e) => [e.key, text(e.value)])).toEqual([["kept", "1"]]);
    await kv.delete("kept");
    expect(await scanKv({ js, jsm }, kv, name)).toEqual([]);
    expect(await consumersOn(name)).toBe(0);
  });

  it("ends without waiting out its timeout when the records vanish after they were listed", async () => {
    const { name, kv } = await bucket();
    for (let i = 0; i < 20; i++) await kv.put(`v${i}`, "1");
    // Longer than the test's own timeout: only noticing that nothing is left can end it in time.
    const got = await scanKv({ js, jsm }, kv, name, {
      timeoutMs: 600_000,
      idleCheckMs: 200,
      // Removed without markers (as the retention sweep does) between listing and reading.
      afterListing: async () => {
        await jsm.streams.purge(kvStream(name));
      },
    });
    expect(got).toEqual([]);
    expect(await consumersOn(name)).toBe(0);
  });

  it("returns every live key once, with its newest value and revision", async () => {
    const { name, kv } = await bucket(5);
    const want = new Map<string, { value: string; revision: number }>();
    for (let i = 0; i < 300; i++) {
      const key = `k${i}`;
      let revision = await kv.put(key, `v${i}-0`);
      let value = `v${i}-0`;
      if (i % 3 === 0) {
        value = `v${i}-1`;
        revision = await kv.put(key, value);
      }
      want.set(key, { value, revision });
    }
    for (let i = 0; i < 300; i += 10) {
      await kv.delete(`k${i}`);
      want.delete(`k${i}`);
    }
    for (let i = 5; i < 300; i += 50) {
      await kv.purge(`k${i}`);
      want.delete(`k${i}`);
    }
    const got = await scanKv({ js, jsm }, kv, name);
    expect(await consumersOn(name)).toBe(0);
    expect(got.length).toBe(want.size);
    expect(new Set(got.map((e) => e.key)).size).toBe(got.length);
    for (const e of got) {
      expect({ key: e.key, value: text(e.value), revision: e.revision }).toEqual({
        key: e.key,
        ...want.get(e.key),
      });
    }
  });

  it("ends while a writer keeps rewriting keys, and misses none of them", async () => {
    const { name, kv } = await bucket();
    const keys = Array.from({ length: 400 }, (_, i) => `t${i}`);
    for (const k of keys) await kv.put(k, "0");
    let stop = false;
    let writes = 0;
    const writer = (async () => {
      while (!stop) {
        await Promise.all(keys.slice(0, 50).map((k) => kv.put(k, String(writes))));
        writes++;
      }
    })();
    try {
      for (let pass = 0; pass < 3; pass++) {
        const before = new Map<string, number>();
        for (const k of keys.slice(0, 50)) before.set(k, (await kv.get(k))!.revision);
        const writesBefore = writes;
        const got = await scanKv({ js, jsm }, kv, name);
        expect(got.map((e) => e.key).sort()).toEqual([...keys].sort());
        // Never older than what was there before the pass began.
        for (const e of got) expect(e.revision).toBeGreaterThanOrEqual(before.get(e.key) ?? 0);
        // The writer really rewrote keys while the pass read.
        await waitFor(() => writes > writesBefore, {
          name: "writer wrote during the pass",
          timeoutMs: 5_000,
        });
      }
    } finally {
      stop = true;
      await writer;
    }
  });
});
