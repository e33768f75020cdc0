/**
 * The claim path's concurrency and what each daemon reads beside it (issue 17), against a real
 * nats-server and a real daemon: a pool pulls on one lane while idle and on its share of the
 * slots once doorbells come (their pull and claim round trips overlap), back to one lane when
 * they stop; and the activity feed reads runner and agent events only, keeping just the tasks
 * whose agents wait on a tool or had one denied.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActivityFeed } from "../daemon/activity-feed.js";
import { type Daemon, validateTaskSpec } from "../daemon/index.js";
import { createLogger } from "../daemon/log.js";
import { EVENTS_STREAM, poolConsumerName, RUN_EVENTS_FILTER, TASKS_STREAM } from "../daemon/nats/names.js";
import type { TaskEvent } from "../daemon/tasks/events.js";
import { NatsServer, waitFor } from "./harness/index.js";
import { type MeshClient, openClient, startDaemon, waitForState } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let nc: NatsConnection;
let client: MeshClient;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  client = await openClient(nats.url);
});

afterAll(async () => {
  await client?.close();
  await nc?.close();
  await nats?.cleanup();
});

describe("claim lanes", () => {
  it("an idle pool pulls on one lane, on all its slots once a doorbell comes, and on one again after", async () => {
    const pool = uniqueId("lanes");
    const daemon: Daemon = await startDaemon(nats.url, { pools: [pool], slots: 4, runners: ["noop"] });
    try {
      const m = await jetstreamManager(nc);
      const waiting = async () => (await m.consumers.info(TASKS_STREAM, poolConsumerName(pool))).num_waiting;
      await waitFor(async () => (await waiting()) === 1, { name: "one pull while idle" });
      const spec = validateTaskSpec({ id: uniqueId("lane"), prompt: "p", runner: "noop", pool });
      await client.api.submit([spec]);
      await waitForState(client.api, spec.id, ["succeeded"]);
      // The doorbell woke the other lanes: each holds a pull of its own.
      await waitFor(async () => (await waiting()) === 4, { name: "a pull on every lane" });
      // Their pulls expire empty and they park: an idle daemon pulls on one lane again.
      await waitFor(async () => (await waiting()) === 1, {
        name: "one pull once idle again",
        timeoutMs: 20_000,
      });
    } finally {
      await daemon.stop();
    }
  });

  it("two pools share the slots: each pulls on its share of them, half", async () => {
    const a = uniqueId("share-a");
    const b = uniqueId("share-b");
    const daemon: Daemon = await startDaemon(nats.url, { pools: [a, b], slots: 4, runners: ["noop"] });
    try {
      const m = await jetstreamManager(nc);
      const waiting = async (p: string) =>
        (await m.consumers.info(TASKS_STREAM, poolConsumerName(p))).num_waiting;
      const specs = [a, b].map((pool) =>
        validateTaskSpec({ id: uniqueId("share"), prompt: "p", runner: "noop", pool }),
      );
      await client.api.submit(specs);
      for (const s of specs) await waitForState(client.api, s.id, ["succeeded"]);
      await waitFor(async () => (await waiting(a)) === 2 && (await waiting(b)) === 2, {
        name: "two pulls per pool",
      });
    } finally {
      await daemon.stop();
    }
  });
});

describe("activity feed", () => {
  const log = createLogger("silent");
  const at = new Date().toISOString();
  const agent = (taskId: string, kind: string, data: Record<string, unknown>): TaskEvent => ({
    type: "agent",
    kind,
    data,
    taskId,
    at,
    attempt: 1,
    workerId: "w",
  });

  it("keeps only what says something: a tool in flight or denied, not state events or a finished tool", async () => {
    const feed = new ActivityFeed(jetstream(nc), log);
    feed.note({ type: "state", taskId: "t1", at, state: "running", attempt: 1 });
    expect(feed.of("t1")).toBeUndefined();
    feed.note(agent("t1", "tool_use", { toolUseId: "u1", tool: "Bash" }));
    expect(feed.of("t1")?.inFlight).toEqual({ u1: "Bash" });
    feed.note(agent("t1", "tool_result", { toolUseId: "u1" }));
    expect(feed.of("t1")).toBeUndefined();
    feed.note(agent("t2", "tool_use", { toolUseId: "u2", tool: "Write" }));
    feed.note(agent("t2", "tool_denied", { toolUseId: "u2", tool: "Write" }));
    expect(feed.of("t2")).toEqual({ attempt: 1, inFlight: {}, denied: "Write" });
  });

  it("reads the runner and agent events of MESH_EVENTS only, never the state events", async () => {
    const m = await jetstreamManager(nc);
    const before = new Set<string>();
    for await (const c of m.consumers.list(EVENTS_STREAM)) before.add(c.name);
    const feed = new ActivityFeed(jetstream(nc), log);
    feed.start();
    try {
      const mine = await waitFor(
        async () => {
          for await (const c of m.consumers.list(EVENTS_STREAM)) if (!before.has(c.name)) return c;
          return undefined;
        },
        { name: "the feed's consumer" },
      );
      const filters = mine.config.filter_subjects ?? [mine.config.filter_subject];
      expect(filters).toEqual([RUN_EVENTS_FILTER]);
    } finally {
      await feed.close();
    }
  });
});
