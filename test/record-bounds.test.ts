/**
 * A task record is one NATS message and must never outgrow the server's max_payload, however
 * many attempts it collects (rate-limited and interrupted attempts do not count against
 * maxAttempts) and however long their reasons are. Against a real nats-server (1 MiB
 * max_payload): every write goes through, the newest attempts are kept and the rest counted.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTopology, type Topology } from "../daemon/queue/topology.js";
import {
  MAX_KEPT_ATTEMPTS,
  MAX_REASON_CHARS,
  MAX_RECORD_BYTES,
  newTaskRecord,
  rateLimitedAttempts,
  type VersionedRecord,
} from "../daemon/tasks/record.js";
import { MAX_PROMPT_BYTES, validateTaskSpec } from "../daemon/tasks/spec.js";
import { TaskStore } from "../daemon/tasks/store.js";
import { NatsServer } from "./harness/index.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let nc: NatsConnection;
let topo: Topology;
let store: TaskStore;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  topo = await ensureTopology(nc, { replicas: 1, leaseMs: 3000, presenceTtlMs: 1500 });
  store = new TaskStore(topo);
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

async function storedBytes(id: string): Promise<number> {
  const e = await topo.tasks.get(id);
  return e?.value.length ?? 0;
}

/** One more attempt, claimed and ended as `outcome` with `reason`, written like the claim path does. */
async function attemptOnce(cur: VersionedRecord, outcome: "rate_limited" | "interrupted", reason: string) {
  const claimed = structuredClone(cur.record);
  claimed.state = "claimed";
  claimed.attempt += 1;
  claimed.owner = { workerId: "w-1", host: "h" };
  const at = new Date().toISOString();
  claimed.attempts.push({ attempt: claimed.attempt, workerId: "w-1", host: "h", claimedAt: at });
  const c = await store.update(cur, claimed);
  const ended = structuredClone(c.record);
  const a = ended.attempts.at(-1)!;
  a.endedAt = at;
  a.outcome = outcome;
  a.reason = reason;
  ended.state = "queued";
  delete ended.owner;
  return store.update(c, ended);
}

describe("record size bound", () => {
  it("a largest spec with endless uncounted attempts and long reasons stays writable and under max_payload", async () => {
    const spec = validateTaskSpec({
      id: uniqueId("big"),
      prompt: "p".repeat(MAX_PROMPT_BYTES - 1024),
      runner: "noop",
    });
    const created = await store.create(newTaskRecord(spec, new Date()));
    let cur = created!;
    const long = "r".repeat(200 * 1024); // a runner's reason holding a whole stderr
    const total = 3 * MAX_KEPT_ATTEMPTS;
    for (let i = 0; i < total; i++) {
      cur = await attemptOnce(cur, i % 3 === 2 ? "interrupted" : "rate_limited", `${i}:${long}`);
      expect(await storedBytes(spec.id)).toBeLessThanOrEqual(MAX_RECORD_BYTES);
    }
    const back = (await store.get(spec.id))!.record;
    expect(back.attempt).toBe(total);
    expect(back.attempts).toHaveLength(MAX_KEPT_ATTEMPTS);
    // The newest are kept, in order; the oldest counted.
    expect(back.attempts.map((a) => a.attempt)).toEqual(
      Array.from({ length: MAX_KEPT_ATTEMPTS }, (_, i) => total - MAX_KEPT_ATTEMPTS + i + 1),
    );
    expect(back.droppedAttempts).toBe(total - MAX_KEPT_ATTEMPTS);
    // Every rate-limited attempt still counts towards the rate-limit cap, the dropped ones too.
    expect(rateLimitedAttempts(back)).toBe((total / 3) * 2);
    expect(back.attempts.every((a) => (a.reason ?? "").length <= MAX_REASON_CHARS)).toBe(true);
    expect(back.attempts.at(-1)!.reason!.startsWith(`${total - 1}:rrr`)).toBe(true);
  });

  it("a huge summary and terminal reason are cut, not refused by the server", async () => {
    const spec = validateTaskSpec({ id: uniqueId("sum"), prompt: "p", runner: "noop" });
    const cur = (await store.create(newTaskRecord(spec, new Date())))!;
    const next = structuredClone(cur.record);
    next.state = "running";
    next.attempt = 1;
    next.attempts.push({ attempt: 1, workerId: "w-1", host: "h", claimedAt: new Date().toISOString() });
    const running = await store.update(cur, next);
    const done = structuredClone(running.record);
    done.state = "failed";
    done.reason = "x".repeat(2 * 1024 * 1024);
    done.result = { summary: "s".repeat(2 * 1024 * 1024) };
    await store.update(running, done);
    const back = (await store.get(spec.id))!.record;
    expect(back.state).toBe("failed");
    expect(back.reason!.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
    expect(back.result!.summary!.length).toBeLessThan(64 * 1024);
    expect(await storedBytes(spec.id)).toBeLessThanOrEqual(MAX_RECORD_BYTES);
  });
});
