/**
 * Records that pass the record check but whose spec fails today's validation (written to the
 * bus directly, or by an older or newer daemon), a record too big to grow by an attempt, and a
 * well-formed doorbell for a task with no record, beside healthy tasks, against a real
 * nats-server: each ends (failed, naming the problem) or is set aside, and the pool goes on.
 */
import { jetstream } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import { type Daemon, validateTaskSpec } from "../daemon/index.js";
import { kvSubject, poolFilter, TASKS_BUCKET, TASKS_STREAM, taskSubject } from "../daemon/nats/names.js";
import { ensureTopology } from "../daemon/queue/topology.js";
import { newTaskRecord } from "../daemon/tasks/record.js";
import { waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { startDaemon, waitForState } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

const mesh = useMesh();
afterEach(async () => {
  await Promise.allSettled(mesh.daemons.splice(0).map((d) => d.stop(1000)));
});

const END = ["succeeded", "failed", "dead", "cancelled"];

describe("records whose spec today's validation refuses", () => {
  it("each fails at once naming the field; an oversized record is set aside; a doorbell without a record goes; the pool goes on", async () => {
    const pool = "badspec";
    const d: Daemon = await startDaemon(mesh.nats.url, {
      pools: [pool],
      runners: ["noop", "command"],
      slots: 2,
    });
    mesh.daemons.push(d);
    const js = jetstream(mesh.client.nc);
    const topo = await ensureTopology(mesh.client.nc, { replicas: 1, leaseMs: 2000, presenceTtlMs: 1500 });
    const enc = new TextEncoder();
    const base = (id: string) =>
      newTaskRecord(validateTaskSpec({ id, prompt: "p", pool, runner: "noop" }), new Date()) as unknown as {
        spec: Record<string, unknown>;
      } & Record<string, unknown>;
    type Raw = { spec: Record<string, unknown> };
    // [name, the field the reason names, how the stored spec is broken]
    const bad: Array<[string, string, (r: Raw) => unknown]> = [
      ["env-null", "env", (r) => Object.assign(r.spec, { env: null })],
      ["env-missing", "env", (r) => delete r.spec.env],
      ["cmd-string", "command", (r) => Object.assign(r.spec, { runner: "command", command: "touch /tmp/x" })],
      ["cmd-missing", "command", (r) => Object.assign(r.spec, { runner: "command", command: undefined })],
      ["prompt-number", "prompt", (r) => Object.assign(r.spec, { prompt: 5 })],
      ["timeout-neg", "timeout", (r) => Object.assign(r.spec, { timeout: -5 })],
      [
        "agent-tools",
        "agent.allowedTools",
        (r) => Object.assign(r.spec, { agent: { allowedTools: "Bash" } }),
      ],
      ["repo-number", "repo", (r) => Object.assign(r.spec, { repo: 7 })],
    ];
    const ids: string[] = [];
    const fields = bad.map(([, field]) => field);
    for (const [name, , mutate] of bad) {
      const id = uniqueId(name);
      const r = base(id);
      mutate(r);
      await js.publish(kvSubject(TASKS_BUCKET, id), enc.encode(JSON.stringify(r)));
      await js.publish(taskSubject(pool, id), JSON.stringify({ id }));
      ids.push(id);
    }
    // A record that fills a whole NATS message: claiming it would outgrow max_payload.
    const huge = uniqueId("huge");
    const hr = base(huge);
    hr.spec.prompt = "";
    hr.spec.prompt = "h".repeat(1024 * 1024 - 100 - JSON.stringify(hr).length);
    await js.publish(kvSubject(TASKS_BUCKET, huge), enc.encode(JSON.stringify(hr)));
    await js.publish(taskSubject(pool, huge), JSON.stringify({ id: huge }));
    // A well-formed doorbell for a task that has no record.
    await js.publish(taskSubject(pool, uniqueId("ghost")), JSON.stringify({ id: "x" }));
    const healthy = Array.from({ length: 2 }, () =>
      validateTaskSpec({ id: uniqueId("ok"), prompt: "p", pool, runner: "noop" }),
    );
    await mesh.client.api.submit(healthy);
    for (const s of healthy)
      expect((await waitForState(mesh.client.api, s.id, END, 30_000)).record.state).toBe("succeeded");
    // Each bad spec fails at once (permanent: one attempt), naming the field.
    for (const [i, id] of ids.entries()) {
      const { record } = await waitForState(mesh.client.api, id, END, 30_000);
      expect(record.state, id).toBe("failed");
      expect(record.attempts, id).toHaveLength(1);
      expect(record.reason, id).toMatch(/^refused by this worker: not a valid task spec: /);
      expect(record.reason, id).toContain(`${fields[i]}:`);
    }
    // The cmd-string task did not run a program named after its first letter.
    expect((await mesh.client.store.get(ids[2] as string))?.record.attempts[0]?.exitCode).toBeUndefined();
    // The oversized record is set aside as unreadable: listed, not claimed, its doorbell gone.
    const list = await mesh.client.api.listTasks({ pool });
    expect(list.unreadable.find((u) => u.key === huge)?.reason).toMatch(/larger than a record can be/);
    await waitFor(
      async () => {
        const info = await topo.jsm.streams.info(TASKS_STREAM, { subjects_filter: poolFilter(pool) });
        return Object.keys(info.state.subjects ?? {}).length === 0;
      },
      { name: "no doorbell left in the pool's queue", timeoutMs: 20_000 },
    );
    // The pool still takes work.
    const after = validateTaskSpec({ id: uniqueId("after"), prompt: "p", pool, runner: "noop" });
    await mesh.client.api.submit([after]);
    expect((await waitForState(mesh.client.api, after.id, END, 30_000)).record.state).toBe("succeeded");
  }, 90_000);
});
