/**
 * The lease beacon (daemon/claim/beacon.ts) keeps the lifecycle contract of every long-running
 * part, against a real nats-server: a guarded start, a memoized stop after which nothing more is
 * heard, `closed`, `await using`, state changes logged with its component, and a subscription
 * the server ends (here refused) as the part's death with a coded error, not a silent deafness.
 */
import { Writable } from "node:stream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsLeaseBeacon } from "../daemon/claim/index.js";
import { NatsServer, waitFor } from "./harness/index.js";

let nats: NatsServer;
let nc: NatsConnection;
const silent = pino({ level: "silent" });

beforeAll(async () => {
  nats = await NatsServer.start({ jetstream: false });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

function capture(): { logger: pino.Logger; entries: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return {
    logger: pino({ level: "debug" }, sink),
    entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe("the lease beacon is a part", () => {
  it("hears revisions once started, refuses a second start, stops once, and hears nothing after", async () => {
    const { logger, entries } = capture();
    const heard: Array<[string, number]> = [];
    const listener = new NatsLeaseBeacon(nc, logger, (id, rev) => heard.push([id, rev]));
    const owner = new NatsLeaseBeacon(nc, silent);
    await listener.start();
    expect(listener.state).toBe("running");
    await expect(listener.start()).rejects.toMatchObject({
      name: "LifecycleError",
      code: "FAILED_PRECONDITION",
    });
    owner.announce("t1", 7);
    await waitFor(() => heard.length === 1, { name: "beacon heard" });
    expect(heard).toEqual([["t1", 7]]);
    const stopping = listener.stop();
    expect(listener.stop()).toBe(stopping);
    await stopping;
    await expect(listener.closed).resolves.toBeUndefined();
    expect(listener.state).toBe("stopped");
    owner.announce("t1", 8);
    await nc.flush();
    // A sleep only to prove that nothing more arrives.
    await new Promise((r) => setTimeout(r, 100));
    expect(heard).toEqual([["t1", 7]]);
    const states = entries()
      .filter((e) => e.msg === "state" && e.component === "lease-beacon")
      .map((e) => e.to);
    expect(states).toEqual(["starting", "running", "stopping", "stopped"]);
  });

  it("disposes with await using", async () => {
    let part: NatsLeaseBeacon | undefined;
    {
      await using b = new NatsLeaseBeacon(nc, silent);
      await b.start();
      part = b;
    }
    expect(part.state).toBe("stopped");
  });

  it("dies with a coded error when the server ends its subscription (the connection stays)", async () => {
    const s = await NatsServer.start({
      jetstream: false,
      extraConfig: `authorization { users: [ { user: mesh, password: pw, permissions: { subscribe: { deny: ["mesh.lease.*"] } } } ] }`,
    });
    const own = await connect({ servers: s.url, user: "mesh", pass: "pw" });
    try {
      const b = new NatsLeaseBeacon(own, silent);
      await b.start();
      const err = await b.closed.catch((e: unknown) => e);
      expect(err).toMatchObject({ name: "MeshError", code: "UNAVAILABLE" });
      expect(String((err as Error).message)).toMatch(/lease beacon subscription ended/);
      expect(b.state).toBe("failed");
      expect(own.isClosed()).toBe(false);
    } finally {
      await own.close();
      await s.cleanup();
    }
  });
});
