/**
 * The tasks bucket's admission check keeps stream info reads off a quiet submit's path (issue
 * 17, idle pickup): a reading that is a few seconds old and far from the limit admits at once
 * and is read again behind the submit; a reading near the limit, or too old, is waited for.
 * Against a real nats-server; the stream info read is held back (a gate around the real call)
 * to tell a submit that waited for it from one that did not. The clock is the check's own.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TASKS_BUCKET_STREAM } from "../daemon/nats/names.js";
import { BucketCapacity, MAX_STALE_MS, SOFT_RATIO } from "../daemon/queue/capacity.js";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import { NatsServer, settledWithin, waitFor } from "./harness/index.js";

const MAX = 1024 * 1024;
let nats: NatsServer;
let nc: NatsConnection;
let topo: Topology;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500, tasksMaxBytes: MAX });
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

/** The real stream info call, each one held until `open()`; counts the calls. */
function gatedInfo() {
  let release: () => void = () => undefined;
  let gate = Promise.resolve();
  const state = { calls: 0 };
  const jsm = {
    streams: {
      info: async (name: string) => {
        state.calls++;
        await gate;
        return topo.jsm.streams.info(name);
      },
    },
  } as unknown as JetStreamManager;
  return {
    jsm,
    state,
    hold() {
      gate = new Promise<void>((r) => {
        release = r;
      });
    },
    open: () => release(),
  };
}

describe("tasks bucket admission", () => {
  it("a submit after a quiet second does not wait for the stream read: it is read behind it", async () => {
    let clock = 0;
    const g = gatedInfo();
    const cap = new BucketCapacity(g.jsm, TASKS_BUCKET_STREAM, "limits.tasksMaxBytes", () => clock);
    await cap.admit(100); // the first reading is always waited for
    expect(g.state.calls).toBe(1);
    clock = 2_000;
    g.hold();
    // With the read held back, this resolves only if the submit did not wait for it.
    await cap.admit(100);
    await waitFor(() => g.state.calls === 2, { name: "the read behind it went out" });
    g.open();
  });

  it("a reading near the soft limit, or older than MAX_STALE_MS, is waited for", async () => {
    let clock = 0;
    const g = gatedInfo();
    const cap = new BucketCapacity(g.jsm, TASKS_BUCKET_STREAM, "limits.tasksMaxBytes", () => clock);
    await cap.admit(0);
    // Too old: waits for the new reading.
    clock = MAX_STALE_MS + 1;
    g.hold();
    const old = cap.admit(100);
    expect(await settledWithin(old, 200)).toBe(false);
    g.open();
    await old;
    // Near the limit (by this check's own count of what it admitted since): waits too.
    await cap.admit(Math.floor(MAX * SOFT_RATIO * 0.85));
    clock += 2_000;
    g.hold();
    const near = cap.admit(Math.floor(MAX * 0.1));
    expect(await settledWithin(near, 200)).toBe(false);
    g.open();
    await near;
    expect(g.state.calls).toBe(3);
  });
});
