/**
 * The quota slot store and gate (daemon/quota/) against a real nats-server KV bucket: caps
 * resolve to the smallest declared, compare-and-set takers never share the last unit, dead
 * holders are dropped by the next taker, a refused need gives back what was taken, the
 * start-rate window, and a malformed record refused rather than read as empty.
 */
import { jetstream } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig } from "../daemon/config.js";
import { isMeshError } from "../daemon/errors.js";
import { createLogger } from "../daemon/log.js";
import { MeshMetrics } from "../daemon/metrics/index.js";
import { effectiveCaps, type Holder, needsOf, QuotaGate, SlotStore, slotKey } from "../daemon/quota/index.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { NatsServer } from "./harness/index.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

let lastBucket = "";
async function bucket(): Promise<KV> {
  lastBucket = uniqueId("slots").replace(/[^a-zA-Z0-9_-]/g, "_");
  return new Kvm(jetstream(nc)).create(lastBucket, { history: 1 });
}

const me = (taskId: string, attempt = 1) => ({ taskId, attempt, workerId: "w1", host: "h1" });
const alive = async () => true;
const need = (capacity: number, units = 1, name = "db") => ({
  key: slotKey("resource", name),
  kind: "resource" as const,
  name,
  units,
  capacity,
});

describe("caps", () => {
  it("the smallest declared value of each cap applies; accounts count claude tasks only", () => {
    const caps = effectiveCaps([
      { accounts: { team: { maxSessions: 4, startsPerMinute: 10 } }, resources: { db: { capacity: 100 } } },
      { accounts: { team: { maxSessions: 2 } }, pools: { p: { maxSessions: 3 } } },
      { resources: { db: { capacity: 50 } }, accounts: { team: { startsPerMinute: 6 } } },
    ]);
    expect(caps.slots.get("acct.team")?.capacity).toBe(2);
    expect(caps.slots.get("res.db")?.capacity).toBe(50);
    expect(caps.startsPerMinute.get("team")).toBe(6);
    const claude = needsOf({ runner: "claude", pool: "p", uses: { db: 10 } }, "team", caps);
    expect(claude.needs.map((n) => [n.key, n.units])).toEqual([
      ["acct.team", 1],
      ["pool.p", 1],
      ["res.db", 10],
    ]);
    expect(claude.starts).toEqual({ account: "team", perMinute: 6 });
    const cmd = needsOf({ runner: "command", pool: "p" }, "team", caps);
    expect(cmd.needs.map((n) => n.key)).toEqual(["pool.p"]);
    expect(cmd.starts).toBeUndefined();
    expect(needsOf({ runner: "command", pool: "x", uses: { db: 51 } }, undefined, caps).impossible).toMatch(
      /uses db: 51, but its capacity is 50/,
    );
    expect(
      needsOf({ runner: "command", pool: "x", uses: { nosuch: 1 } }, undefined, caps).undeclared,
    ).toMatch(/resource nosuch/);
  });
});

describe("slot store", () => {
  it("takes up to the capacity in units and refuses past it; a release frees the units", async () => {
    const s = new SlotStore(await bucket());
    expect(await s.take(need(5, 2), me("a"), alive)).toEqual({ ok: true });
    expect(await s.take(need(5, 3), me("b"), alive)).toEqual({ ok: true });
    const refused = await s.take(need(5, 1), me("c"), alive);
    expect(refused).toMatchObject({ ok: false, used: 5 });
    await s.release(need(5).key, me("a"));
    expect(await s.take(need(5, 2), me("c"), alive)).toEqual({ ok: true });
    expect((await s.live(need(5).key, alive)).map((h) => h.taskId).sort()).toEqual(["b", "c"]);
  });

  it("a taker drops holders whose attempt is no longer alive (the crash case)", async () => {
    const s = new SlotStore(await bucket());
    await s.take(need(1), me("dead"), alive);
    expect((await s.take(need(1), me("next"), alive)).ok).toBe(false);
    const liveness = async (h: Pick<Holder, "taskId">) => h.taskId !== "dead";
    expect(await s.take(need(1), me("next"), liveness)).toEqual({ ok: true });
    expect((await s.live(need(1).key, alive)).map((h) => h.taskId)).toEqual(["next"]);
  });

  it("a later attempt of the same task replaces its earlier entry", async () => {
    const s = new SlotStore(await bucket());
    await s.take(need(1), me("t", 1), alive);
    expect(await s.take(need(1), me("t", 2), alive)).toEqual({ ok: true });
    expect((await s.live(need(1).key, alive)).map((h) => h.attempt)).toEqual([2]);
  });

  it("concurrent takers on separate connections never share the last unit", async () => {
    const kv = await bucket();
    const name = lastBucket;
    const conns = await Promise.all(Array.from({ length: 4 }, () => connect({ servers: nats.url })));
    try {
      const stores = await Promise.all(
        conns.map(async (c) => new SlotStore(await new Kvm(jetstream(c)).open(name))),
      );
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => stores[i % stores.length]!.take(need(3), me(`t${i}`), alive)),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(3);
      expect(await new SlotStore(kv).live(need(3).key, alive)).toHaveLength(3);
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
  });

  it("refuses a malformed record (DATA_LOSS) rather than reading it as free", async () => {
    const kv = await bucket();
    await kv.put(need(1).key, "{not json");
    const err = await new SlotStore(kv).take(need(1), me("a"), alive).catch((e: unknown) => e);
    expect(isMeshError(err, "DATA_LOSS")).toBe(true);
  });

  it("counts starts in a sliding minute and says when the oldest leaves it", async () => {
    let now = 1_000_000;
    const s = new SlotStore(await bucket(), () => now);
    expect(await s.start("starts.team", 2, { taskId: "a", attempt: 1 })).toEqual({ ok: true });
    now += 10_000;
    expect(await s.start("starts.team", 2, { taskId: "b", attempt: 1 })).toEqual({ ok: true });
    expect(await s.start("starts.team", 2, { taskId: "c", attempt: 1 })).toEqual({
      ok: false,
      retryAt: 1_060_000,
      count: 2,
    });
    now = 1_060_001;
    expect(await s.start("starts.team", 2, { taskId: "c", attempt: 1 })).toEqual({ ok: true });
  });
});

describe("quota gate", () => {
  const gate = (store: SlotStore, own: ConstructorParameters<typeof QuotaGate>[0]["own"]) =>
    new QuotaGate({
      store,
      account: "team",
      own,
      others: () => [],
      live: alive,
      log: createLogger("silent"),
      random: () => 0,
      retryMs: 500,
    });

  it("takes every need or none: a full one gives back those taken before it", async () => {
    const store = new SlotStore(await bucket());
    const g = gate(store, { pools: { p: { maxSessions: 5 } }, resources: { db: { capacity: 2 } } });
    const spec = (uses: number) => ({ ...nodeTask("", { pool: "p", uses: { db: uses } }) });
    const first = await g.take({ id: "a", attempt: 1, spec: spec(2), workerId: "w", host: "h" });
    expect(first.ok).toBe(true);
    const second = await g.take({ id: "b", attempt: 1, spec: spec(1), workerId: "w", host: "h" });
    expect(second).toMatchObject({ ok: false, why: "resource db: 2 of 2 in use", delayMs: 500 });
    // b's pool slot went back: only a holds pool p.
    expect((await store.live("pool.p", alive)).map((h) => h.taskId)).toEqual(["a"]);
    expect(await g.admit(spec(1))).toMatchObject({ why: "resource db: 2 of 2 in use" });
    if (first.ok) await first.held.release();
    expect(await g.admit(spec(1))).toBeUndefined();
    expect(await store.live("pool.p", alive)).toEqual([]);
  });

  it("refuses at submit an undeclared resource or a use above its capacity, naming the field", async () => {
    const g = gate(new SlotStore(await bucket()), { resources: { db: { capacity: 2 } } });
    expect(() => g.checkUses({ uses: { db: 2 } })).not.toThrow();
    const over = (() => {
      try {
        g.checkUses({ uses: { db: 3 } }, "tasks[1].uses");
      } catch (e) {
        return e;
      }
    })();
    expect(isMeshError(over, "INVALID_ARGUMENT") && over.field).toBe("tasks[1].uses.db");
    expect(() => g.checkUses({ uses: { other: 1 } })).toThrow(/no live daemon declares resource "other"/);
  });
});

describe("quota metrics", () => {
  it("exports slots in use and capacity per account, pool and resource, and starts per account", async () => {
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false });
    m.bind({
      workerId: "alpha-1",
      host: "h",
      version: "0",
      pools: ["default"],
      slots: () => ({ total: 2, busy: 0 }),
      running: () => 0,
      ready: () => true,
      queues: async () => new Map(),
      workers: async () => [],
      quota: async () => [
        { kind: "account", name: "team", capacity: 4, inUse: 3, holders: [], startedLastMinute: 7 },
        { kind: "pool", name: "default", capacity: 2, inUse: 1, holders: [] },
        { kind: "resource", name: "stagingdb", capacity: 100, inUse: 30, holders: [] },
      ],
    });
    const { body: text } = await m.render();
    expect(text).toContain('agentmesh_quota_slots_in_use{kind="account",name="team",worker="alpha"} 3');
    expect(text).toContain('agentmesh_quota_slots_capacity{kind="account",name="team",worker="alpha"} 4');
    expect(text).toContain(
      'agentmesh_quota_slots_in_use{kind="resource",name="stagingdb",worker="alpha"} 30',
    );
    expect(text).toContain('agentmesh_quota_slots_capacity{kind="pool",name="default",worker="alpha"} 2');
    expect(text).toContain('agentmesh_quota_starts_last_minute{account="team",worker="alpha"} 7');
    expect(text).toContain('agentmesh_collect_errors_total{source="quota",worker="alpha"} 0');
  });
});

describe("quota input", () => {
  const refused = (f: () => unknown): { field?: string | undefined; message: string } => {
    try {
      f();
    } catch (e) {
      if (isMeshError(e, "INVALID_ARGUMENT")) return { field: e.field, message: e.message };
      throw e;
    }
    throw new Error("not refused");
  };

  it("refuses bad caps and account names in the config, naming the field", () => {
    expect(refused(() => compileConfig({ quota: { resources: { db: { capacity: 0 } } } })).field).toBe(
      "quota.resources.db.capacity",
    );
    expect(refused(() => compileConfig({ quota: { pools: { p: { maxSessions: 1.5 } } } })).field).toBe(
      "quota.pools.p.maxSessions",
    );
    expect(refused(() => compileConfig({ quota: { accounts: { a: { maxSession: 2 } } } })).field).toBe(
      "quota.accounts.a.maxSession",
    );
    expect(refused(() => compileConfig({ claude: { account: "-team" } })).field).toBe("claude.account");
    const ok = compileConfig({ quota: { accounts: { team: { maxSessions: 2 } } } });
    expect(ok.claude.account).toBe("default");
    expect(ok.quota.accounts.team).toEqual({ maxSessions: 2 });
  });

  it("refuses a use below 1 unit or a bad resource name in the spec, naming the field", () => {
    const spec = (uses: unknown) => () =>
      validateTaskSpec({ prompt: "x", runner: "command", command: ["true"], uses });
    expect(refused(spec({ db: 0 })).message).toMatch(/^uses\.db: a use is at least 1 unit/);
    expect(refused(spec({ db: 1.5 })).message).toMatch(/^uses\.db: a use is a whole number/);
    expect(refused(spec({ "bad name": 1 })).message).toMatch(/^uses/);
    expect(validateTaskSpec({ prompt: "x", uses: { "staging-db": 10 } }).uses).toEqual({ "staging-db": 10 });
  });
});
