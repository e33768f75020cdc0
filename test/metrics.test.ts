/**
 * MeshMetrics: the observer's counters and histograms, the agent metrics read from runner
 * events, the scrape-time gauges (with a fake source, then from a real daemon and JetStream:
 * queue depth, oldest queued age, takeovers, redeliveries, NATS reconnects).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import { describe, expect, it } from "vitest";
import {
  CommandRunner,
  compileConfig,
  type Daemon,
  type DaemonDeps,
  type DaemonOptions,
  type RunContext,
  type Runner,
  type RunOutcome,
  startDaemon,
  validateTaskSpec,
} from "../daemon/index.js";
import { type LiveSource, MeshMetrics, type QueueStats, readQueueStats } from "../daemon/metrics/index.js";
import type { WorkerInfo } from "../daemon/registry/worker-info.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { FAST, plantOrphanedTask, REPO_ROOT, waitForState } from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

type Labels = Record<string, string>;
type Metrics = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The registry after one scrape (render): agent series new since the last scrape are shown at 0
 * by that scrape and count from then on, so this sees their values.
 */
async function snapshot(m: MeshMetrics): Promise<Metrics> {
  await m.render();
  return m.registry.getMetricsAsJSON();
}

/** The value of `name{labels}` in Prometheus text, undefined when absent. */
function textValue(body: string, name: string, labels: Labels): number | undefined {
  for (const line of body.split("\n")) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const l = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => l[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** The value of series `name` whose labels include `labels`; undefined when absent. */
function seriesValue(all: Metrics, name: string, labels: Labels = {}): number | undefined {
  for (const metric of all) {
    for (const v of metric.values) {
      const seriesName = (v as { metricName?: string }).metricName ?? metric.name;
      if (seriesName !== name) continue;
      const l = v.labels as Labels;
      if (Object.entries(labels).every(([k, x]) => String(l[k]) === x)) return v.value;
    }
  }
  return undefined;
}

function seriesOf(all: Metrics, name: string): Labels[] {
  const m = all.find((x) => x.name === name);
  return (m?.values ?? []).map((v) => v.labels as Labels);
}

function fakeSource(over: Partial<LiveSource> = {}): LiveSource {
  return {
    workerId: "w-fake-1",
    host: "host-1",
    version: "0.0.0-test",
    pools: ["default", "gpu"],
    slots: () => ({ total: 4, busy: 3 }),
    running: () => 2,
    ready: () => true,
    queues: async () =>
      new Map(
        ["default", "gpu"].map((p) => [
          p,
          { pending: 7, ackPending: 2, redelivered: 1, oldestPendingAgeSeconds: 12.5 },
        ]),
      ),
    workers: async () => [
      { pools: ["default"] } as WorkerInfo,
      { pools: ["default", "gpu"] } as WorkerInfo,
      { pools: ["cpu"] } as WorkerInfo,
    ],
    ...over,
  };
}

describe("MeshMetrics (unit)", () => {
  it("counts the core's events with pool, state and outcome labels and the worker default label", async () => {
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false });
    m.bind(fakeSource());
    m.transition({ pool: "default", to: "queued" });
    m.transition({ pool: "default", to: "queued" });
    m.transition({ pool: "default", to: "succeeded" });
    m.claimed({ pool: "default", latencyMs: 250, takeover: false });
    m.claimed({ pool: "default", latencyMs: 3000, takeover: true });
    m.redelivered({ pool: "gpu" });
    m.fenceLost({ pool: "gpu" });
    m.attemptFinished({ pool: "default", outcome: "succeeded", durationMs: 1500 });
    m.attemptFinished({ pool: "gpu", outcome: "fenced", durationMs: 10 });
    const all = await snapshot(m);
    expect(seriesValue(all, "agentmesh_task_transitions_total", { pool: "default", state: "queued" })).toBe(
      2,
    );
    expect(
      seriesValue(all, "agentmesh_task_transitions_total", { pool: "default", state: "succeeded" }),
    ).toBe(1);
    // zeroed at bind for every pool of the daemon, so rate() has a series before the first event
    expect(seriesValue(all, "agentmesh_task_transitions_total", { pool: "gpu", state: "dead" })).toBe(0);
    expect(seriesValue(all, "agentmesh_claim_latency_seconds_count", { pool: "default" })).toBe(2);
    expect(seriesValue(all, "agentmesh_claim_latency_seconds_sum", { pool: "default" })).toBeCloseTo(3.25);
    expect(seriesValue(all, "agentmesh_claim_latency_seconds_bucket", { pool: "default", le: "0.25" })).toBe(
      1,
    );
    expect(seriesValue(all, "agentmesh_claim_latency_seconds_count", { pool: "gpu" })).toBe(0);
    expect(seriesValue(all, "agentmesh_lease_takeovers_total", { pool: "default" })).toBe(1);
    expect(seriesValue(all, "agentmesh_redeliveries_total", { pool: "gpu" })).toBe(1);
    expect(seriesValue(all, "agentmesh_fencing_losses_total", { pool: "gpu" })).toBe(1);
    expect(seriesValue(all, "agentmesh_attempts_total", { pool: "default", outcome: "succeeded" })).toBe(1);
    expect(seriesValue(all, "agentmesh_attempts_total", { pool: "gpu", outcome: "fenced" })).toBe(1);
    expect(
      seriesValue(all, "agentmesh_attempt_duration_seconds_sum", { pool: "default", outcome: "succeeded" }),
    ).toBe(1.5);
    for (const metric of all) {
      expect(metric.name).toMatch(/^agentmesh_/);
      for (const v of metric.values) {
        expect(v.labels).toMatchObject({ worker: "alpha" });
        expect(Object.keys(v.labels)).not.toContain("task");
        expect(Object.keys(v.labels)).not.toContain("task_id");
      }
    }
    // counters end in _total, histograms in _seconds
    for (const metric of all) {
      if (String(metric.type) === "counter") expect(metric.name).toMatch(/_total$/);
      if (String(metric.type) === "histogram") expect(metric.name).toMatch(/_seconds$/);
    }
  });

  it("reads the scrape-time gauges from its source", async () => {
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false });
    m.bind(fakeSource());
    const all = await snapshot(m);
    expect(seriesValue(all, "agentmesh_slots")).toBe(4);
    expect(seriesValue(all, "agentmesh_slots_busy")).toBe(3);
    expect(seriesValue(all, "agentmesh_tasks_running")).toBe(2);
    expect(seriesValue(all, "agentmesh_ready")).toBe(1);
    expect(seriesValue(all, "agentmesh_nats_connected")).toBe(1);
    expect(seriesValue(all, "agentmesh_queue_pending_messages", { pool: "gpu" })).toBe(7);
    expect(seriesValue(all, "agentmesh_queue_ack_pending_messages", { pool: "default" })).toBe(2);
    expect(seriesValue(all, "agentmesh_queue_redelivered_messages", { pool: "default" })).toBe(1);
    expect(seriesValue(all, "agentmesh_queue_oldest_pending_age_seconds", { pool: "default" })).toBe(12.5);
    expect(seriesValue(all, "agentmesh_workers_alive")).toBe(3);
    expect(seriesValue(all, "agentmesh_pool_workers_alive", { pool: "default" })).toBe(2);
    expect(seriesValue(all, "agentmesh_pool_workers_alive", { pool: "gpu" })).toBe(1);
    expect(seriesValue(all, "agentmesh_pool_workers_alive", { pool: "cpu" })).toBe(1);
    expect(seriesValue(all, "agentmesh_worker_info", { worker_id: "w-fake-1", host: "host-1" })).toBe(1);
  });

  it("has queue series for every pool with tasks, served or not; pools nobody serves have 0 workers", async () => {
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false });
    const q = (pending: number): QueueStats => ({
      pending,
      ackPending: 0,
      redelivered: 0,
      oldestPendingAgeSeconds: 3,
    });
    m.bind(
      fakeSource({
        queues: async () =>
          new Map([
            ["default", q(0)],
            ["gpu", q(1)],
            ["cpu", q(2)],
            ["orphan", q(5)],
          ]),
      }),
    );
    const all = await snapshot(m);
    expect(seriesValue(all, "agentmesh_queue_pending_messages", { pool: "orphan" })).toBe(5);
    expect(seriesValue(all, "agentmesh_queue_oldest_pending_age_seconds", { pool: "orphan" })).toBe(3);
    expect(seriesValue(all, "agentmesh_queue_pending_messages", { pool: "cpu" })).toBe(2);
    expect(seriesValue(all, "agentmesh_pool_workers_alive", { pool: "orphan" })).toBe(0);
    expect(seriesValue(all, "agentmesh_pool_workers_alive", { pool: "cpu" })).toBe(1);
  });

  it("drops the queue series when JetStream does not answer, and counts the error", async () => {
    let fail = false;
    let calls = 0;
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false, collectTimeoutMs: 200 });
    m.bind(
      fakeSource({
        queues: (): Promise<Map<string, QueueStats>> => {
          if (!fail)
            return Promise.resolve(
              new Map(
                ["default", "gpu"].map((p) => [
                  p,
                  { pending: 1, ackPending: 0, redelivered: 0, oldestPendingAgeSeconds: 1 },
                ]),
              ),
            );
          // first it never answers (times out), then it fails at once
          return calls++ === 0 ? new Promise(() => {}) : Promise.reject(new Error("no responders"));
        },
        workers: () =>
          fail
            ? Promise.reject(new Error("kv down"))
            : Promise.resolve([{ pools: ["default"] } as WorkerInfo]),
      }),
    );
    let all = await snapshot(m);
    expect(seriesValue(all, "agentmesh_queue_pending_messages", { pool: "gpu" })).toBe(1);
    fail = true;
    all = await snapshot(m);
    expect(seriesOf(all, "agentmesh_queue_pending_messages")).toEqual([]);
    all = await snapshot(m);
    expect(seriesOf(all, "agentmesh_queue_pending_messages")).toEqual([]);
    expect(seriesOf(all, "agentmesh_queue_oldest_pending_age_seconds")).toEqual([]);
    expect(seriesValue(all, "agentmesh_collect_errors_total", { source: "queue" })).toBe(2);
    expect(seriesValue(all, "agentmesh_collect_errors_total", { source: "presence" })).toBe(2);
    // a missed registry read keeps the last count rather than claiming "no workers"
    expect(seriesValue(all, "agentmesh_workers_alive")).toBe(1);
  });

  it("tracks the NATS connection from status events", async () => {
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false });
    m.bind(fakeSource());
    m.natsStatus({ type: "disconnect" });
    expect(m.natsConnected).toBe(false);
    let all = await snapshot(m);
    expect(seriesValue(all, "agentmesh_nats_connected")).toBe(0);
    expect(seriesValue(all, "agentmesh_ready")).toBe(0);
    expect(seriesValue(all, "agentmesh_nats_disconnects_total")).toBe(1);
    m.natsStatus({ type: "reconnecting" });
    m.natsStatus({ type: "reconnect" });
    m.natsStatus({ type: "ping" });
    all = await snapshot(m);
    expect(m.natsConnected).toBe(true);
    expect(seriesValue(all, "agentmesh_nats_connected")).toBe(1);
    expect(seriesValue(all, "agentmesh_nats_reconnects_total")).toBe(1);
  });

  it("turns agent events into token, cost, turn, tool, retry and heartbeat metrics", async () => {
    let now = 1_700_000_000_000;
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false, maxTools: 3, now: () => now });
    const agent = (kind: string, data: Record<string, unknown>) => ({ type: "agent" as const, kind, data });
    const ev = (event: ReturnType<typeof agent>, model?: string) =>
      m.runnerEvent({ pool: "default", event, ...(model ? { model } : {}) });
    ev(agent("session_started", { sessionId: "s1", model: "claude-x" }));
    for (const tool of ["Bash", "Write", "Bash", "Read", "Edit", "Grep"])
      ev(agent("tool_use", { tool, toolUseId: "u" }));
    ev(agent("tool_denied", { tool: "Bash" }));
    ev(agent("api_retry", { status: 429, attempt: 1 }));
    ev(agent("api_retry", { status: 429, attempt: 2 }));
    ev(agent("api_retry", { status: null, attempt: 3 }));
    now += 5000;
    ev(agent("heartbeat", { idleMs: 10, pid: 1 }));
    const result = {
      subtype: "success",
      isError: false,
      apiErrorStatus: null,
      costUsd: 0.25,
      tokens: { input: 100, output: 50, cacheRead: 1000, cacheCreation: 10 },
      turns: 4,
      durationMs: 42_000,
      sessionId: "s1",
      model: "claude-sonnet-test",
    };
    ev(agent("result", result), "spec-model");
    // no model in the result: the spec's model labels it
    ev(agent("result", { ...result, model: undefined, isError: true, apiErrorStatus: 429 }), "spec-model");
    ev({ type: "log", stream: "stdout", line: "hello" } as unknown as ReturnType<typeof agent>);
    // a malformed event is ignored, never thrown into the core
    ev(agent("result", { tokens: "many", costUsd: -1, turns: "x" }));
    const all = await snapshot(m);
    const sonnet = { pool: "default", model: "claude-sonnet-test" };
    expect(seriesValue(all, "agentmesh_agent_tokens_total", { ...sonnet, type: "input" })).toBe(100);
    expect(seriesValue(all, "agentmesh_agent_tokens_total", { ...sonnet, type: "output" })).toBe(50);
    expect(seriesValue(all, "agentmesh_agent_tokens_total", { ...sonnet, type: "cache_read" })).toBe(1000);
    expect(seriesValue(all, "agentmesh_agent_tokens_total", { ...sonnet, type: "cache_creation" })).toBe(10);
    expect(seriesValue(all, "agentmesh_agent_cost_usd_total", sonnet)).toBe(0.25);
    expect(seriesValue(all, "agentmesh_agent_cost_usd_total", { pool: "default", model: "spec-model" })).toBe(
      0.25,
    );
    expect(seriesValue(all, "agentmesh_agent_turns_total", sonnet)).toBe(4);
    expect(seriesValue(all, "agentmesh_agent_sessions_total", { ...sonnet, result: "success" })).toBe(1);
    expect(seriesValue(all, "agentmesh_agent_sessions_total", { model: "spec-model", result: "error" })).toBe(
      1,
    );
    expect(seriesValue(all, "agentmesh_agent_sessions_total", { model: "unknown", result: "success" })).toBe(
      1,
    );
    expect(seriesValue(all, "agentmesh_agent_session_duration_seconds_sum", sonnet)).toBe(42);
    expect(seriesValue(all, "agentmesh_agent_api_errors_total", { status: "429" })).toBe(1);
    expect(seriesValue(all, "agentmesh_agent_tool_calls_total", { tool: "Bash" })).toBe(2);
    expect(seriesValue(all, "agentmesh_agent_tool_calls_total", { tool: "Read" })).toBe(1);
    // at most 3 distinct tool names: later newcomers are folded into "other"
    expect(seriesValue(all, "agentmesh_agent_tool_calls_total", { tool: "other" })).toBe(2);
    expect(seriesValue(all, "agentmesh_agent_tool_denials_total", { tool: "Bash" })).toBe(1);
    expect(seriesValue(all, "agentmesh_agent_api_retries_total", { status: "429" })).toBe(2);
    expect(seriesValue(all, "agentmesh_agent_api_retries_total", { status: "unknown" })).toBe(1);
    expect(seriesValue(all, "agentmesh_agent_last_heartbeat_timestamp_seconds", { pool: "default" })).toBe(
      now / 1000,
    );
  });

  it("shows every agent series at 0 in a scrape before it counts", async () => {
    const m = new MeshMetrics({ worker: "alpha", defaultMetrics: false });
    m.bind(fakeSource({ agentModels: ["claude-conf"] }));
    const agent = (kind: string, data: Record<string, unknown>) => ({ type: "agent" as const, kind, data });
    const ev = (kind: string, data: Record<string, unknown>, pool = "default") =>
      m.runnerEvent({ pool, event: agent(kind, data) });
    const result = (model: string) => ({
      isError: false,
      costUsd: 0.5,
      tokens: { input: 10, output: 5, cacheRead: 0, cacheCreation: 0 },
      turns: 2,
      durationMs: 3000,
      model,
    });
    const cost = (body: string, model: string, pool = "default") =>
      textValue(body, "agentmesh_agent_cost_usd_total", { pool, model });
    const scrape = async () => (await m.render()).body;

    // The configured model's series exist from the start, for every pool of the daemon.
    let body = await scrape();
    expect(cost(body, "claude-conf")).toBe(0);
    expect(cost(body, "claude-conf", "gpu")).toBe(0);
    expect(
      textValue(body, "agentmesh_agent_sessions_total", {
        pool: "gpu",
        model: "claude-conf",
        result: "error",
      }),
    ).toBe(0);
    ev("session_started", { sessionId: "s1", model: "claude-conf" });
    ev("result", result("claude-conf"));
    expect(cost(await scrape(), "claude-conf")).toBe(0.5);

    // A model first seen at its session's start: at 0 until a scrape showed it.
    ev("session_started", { sessionId: "s2", model: "claude-new" });
    expect(cost(await scrape(), "claude-new")).toBe(0);
    ev("result", result("claude-new"));
    expect(cost(await scrape(), "claude-new")).toBe(0.5);

    // Even a whole session between two scrapes, and series no one could know ahead (a tool, a
    // status, a pool, a model the result names): the first scrape shows 0, the next the counts.
    ev("session_started", { sessionId: "s3", model: "claude-fast" }, "cpu");
    ev("tool_use", { tool: "Bash", toolUseId: "u1" }, "cpu");
    ev("api_retry", { status: 529, attempt: 1 }, "cpu");
    ev("result", result("claude-fast"), "cpu");
    body = await scrape();
    expect(cost(body, "claude-fast", "cpu")).toBe(0);
    expect(
      textValue(body, "agentmesh_agent_tokens_total", { pool: "cpu", model: "claude-fast", type: "input" }),
    ).toBe(0);
    expect(textValue(body, "agentmesh_agent_turns_total", { pool: "cpu", model: "claude-fast" })).toBe(0);
    expect(textValue(body, "agentmesh_agent_sessions_total", { pool: "cpu", result: "success" })).toBe(0);
    expect(textValue(body, "agentmesh_agent_session_duration_seconds_count", { pool: "cpu" })).toBe(0);
    expect(textValue(body, "agentmesh_agent_tool_calls_total", { pool: "cpu", tool: "Bash" })).toBe(0);
    expect(textValue(body, "agentmesh_agent_api_retries_total", { pool: "cpu", status: "529" })).toBe(0);
    body = await scrape();
    expect(cost(body, "claude-fast", "cpu")).toBe(0.5);
    expect(
      textValue(body, "agentmesh_agent_tokens_total", { pool: "cpu", model: "claude-fast", type: "input" }),
    ).toBe(10);
    expect(textValue(body, "agentmesh_agent_turns_total", { pool: "cpu", model: "claude-fast" })).toBe(2);
    expect(textValue(body, "agentmesh_agent_sessions_total", { pool: "cpu", result: "success" })).toBe(1);
    expect(textValue(body, "agentmesh_agent_session_duration_seconds_count", { pool: "cpu" })).toBe(1);
    expect(textValue(body, "agentmesh_agent_tool_calls_total", { pool: "cpu", tool: "Bash" })).toBe(1);
    expect(textValue(body, "agentmesh_agent_api_retries_total", { pool: "cpu", status: "529" })).toBe(1);
    // once shown, a series counts at once
    ev("tool_use", { tool: "Bash", toolUseId: "u2" }, "cpu");
    expect(textValue(await scrape(), "agentmesh_agent_tool_calls_total", { pool: "cpu", tool: "Bash" })).toBe(
      2,
    );
  });

  it("has every metric documented in docs/metrics.md with its type", () => {
    const docs = readFileSync(join(REPO_ROOT, "docs/metrics.md"), "utf8");
    const documented = new Map(
      [...docs.matchAll(/^\| `(agentmesh_\w+)` \| (\w+) \|/gm)].map((m) => [m[1], m[2]] as const),
    );
    const m = new MeshMetrics({ worker: "docs", defaultMetrics: false });
    const exported = m.registry.getMetricsAsArray();
    expect(exported.length).toBeGreaterThan(25);
    for (const metric of exported) expect(documented.get(metric.name), metric.name).toBe(String(metric.type));
    expect([...documented.keys()].sort()).toEqual(exported.map((x) => x.name).sort());
  });

  it("keeps two daemons' registries apart in one process", async () => {
    const a = new MeshMetrics({ worker: "a" });
    const b = new MeshMetrics({ worker: "b" });
    a.transition({ pool: "p", to: "queued" });
    const [ta, tb] = await Promise.all([a.render(), b.render()]);
    expect(ta.body).toMatch(/agentmesh_task_transitions_total\{pool="p",state="queued",worker="a"\} 1/);
    expect(tb.body).not.toMatch(/state="queued"/);
    expect(ta.body).toMatch(/^process_cpu_user_seconds_total\{worker="a"\} /m);
    expect(tb.body).toMatch(/^nodejs_heap_size_used_bytes\{worker="b"\} /m);
    expect(ta.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});

// ---------------------------------------------------------------- against a real daemon

/** A "claude" runner that plays a scripted agent session instead of running Claude Code. */
class ScriptedAgentRunner implements Runner {
  readonly kind = "claude";
  async run(ctx: RunContext): Promise<RunOutcome> {
    const emit = (kind: string, data: Record<string, unknown>) => ctx.emit({ type: "agent", kind, data });
    emit("session_started", { sessionId: `s-${ctx.spec.id}`, model: "claude-test-model" });
    emit("tool_use", { tool: "Bash", toolUseId: "u1" });
    emit("api_retry", { status: 429, attempt: 1, retryDelayMs: 10 });
    emit("heartbeat", { idleMs: 5, pid: process.pid });
    const tokens = { input: 10, output: 20, cacheRead: 30, cacheCreation: 40 };
    emit("result", {
      subtype: "success",
      isError: false,
      apiErrorStatus: null,
      costUsd: 0.5,
      tokens,
      turns: 3,
      durationMs: 1200,
      sessionId: `s-${ctx.spec.id}`,
      model: "claude-test-model",
    });
    return { status: "succeeded", result: { costUsd: 0.5, tokens, turns: 3, model: "claude-test-model" } };
  }
}

const mesh = useMesh();

async function meshd(opts: Partial<DaemonOptions>, deps: DaemonDeps = {}): Promise<Daemon> {
  const config = compileConfig({
    ...FAST,
    logLevel: process.env.MESH_TEST_LOG ?? "silent",
    http: { enabled: false },
    ...opts,
    nats: { servers: [mesh.nats.url] },
    stateDir: await makeTempDir("meshd-metrics-"),
  });
  const d = await startDaemon(config, deps);
  mesh.daemons.push(d);
  return d;
}

const metricsOf = (d: Daemon): MeshMetrics => {
  expect(d.observer).toBeInstanceOf(MeshMetrics);
  return d.observer as MeshMetrics;
};

describe("MeshMetrics in a running daemon", () => {
  it("startDaemon wires MeshMetrics in as the observer; a custom observer is left alone", async () => {
    const d = await meshd({ name: "wired", pools: ["m-wired"] });
    const m = metricsOf(d);
    const all = await snapshot(m);
    expect(seriesValue(all, "agentmesh_worker_info", { worker: "wired", worker_id: d.workerId })).toBe(1);
    expect(seriesValue(all, "agentmesh_ready")).toBe(1);
    expect(seriesValue(all, "agentmesh_slots")).toBe(2);
    const calls: string[] = [];
    const custom = await meshd(
      { pools: ["m-custom"] },
      {
        observer: {
          submitted() {},
          transition: () => calls.push("transition"),
          claimed() {},
          redelivered() {},
          fenceLost() {},
          attemptFinished() {},
          runnerEvent() {},
          natsStatus() {},
          unreadable() {},
        },
      },
    );
    expect(custom.observer).not.toBeInstanceOf(MeshMetrics);
  });

  it("counts a task's transitions, claim latency and attempts; agent sessions; retries to dead", async () => {
    const pool = "m-tasks";
    const d = await meshd(
      { name: "tasks", pools: [pool], runners: ["command", "claude"] },
      {
        runners: [new CommandRunner(), new ScriptedAgentRunner()],
      },
    );
    const ok = nodeTask("process.exit(0)", { pool });
    const bad = nodeTask("process.exit(3)", { pool, maxAttempts: 2 });
    const agentTask = validateTaskSpec({ id: uniqueId(), prompt: "play", runner: "claude", pool });
    await mesh.client.api.submit([ok, bad, agentTask]);
    await waitForState(mesh.client.api, ok.id, ["succeeded"]);
    await waitForState(mesh.client.api, bad.id, ["dead"]);
    await waitForState(mesh.client.api, agentTask.id, ["succeeded"]);
    const m = metricsOf(d);
    const all = await waitFor(
      async () => {
        const s = await snapshot(m);
        return (seriesValue(s, "agentmesh_attempts_total", { pool, outcome: "succeeded" }) ?? 0) >= 2 &&
          (seriesValue(s, "agentmesh_task_transitions_total", { pool, state: "dead" }) ?? 0) >= 1
          ? s
          : undefined;
      },
      { name: "attempts counted", timeoutMs: 30_000 },
    );
    const t = (state: string) => seriesValue(all, "agentmesh_task_transitions_total", { pool, state });
    // submitted through another process: the daemon counts what it writes
    expect(t("claimed")).toBe(4);
    expect(t("running")).toBe(4);
    expect(t("succeeded")).toBe(2);
    expect(t("queued")).toBe(1); // bad's retry
    expect(t("dead")).toBe(1);
    expect(seriesValue(all, "agentmesh_attempts_total", { pool, outcome: "failed" })).toBe(2);
    expect(seriesValue(all, "agentmesh_claim_latency_seconds_count", { pool })).toBe(4);
    expect(seriesValue(all, "agentmesh_attempt_duration_seconds_count", { pool, outcome: "succeeded" })).toBe(
      2,
    );
    const agentLabels = { pool, model: "claude-test-model" };
    expect(seriesValue(all, "agentmesh_agent_cost_usd_total", agentLabels)).toBe(0.5);
    expect(seriesValue(all, "agentmesh_agent_tokens_total", { ...agentLabels, type: "cache_creation" })).toBe(
      40,
    );
    expect(seriesValue(all, "agentmesh_agent_turns_total", agentLabels)).toBe(3);
    expect(seriesValue(all, "agentmesh_agent_tool_calls_total", { pool, tool: "Bash" })).toBe(1);
    expect(seriesValue(all, "agentmesh_agent_api_retries_total", { pool, status: "429" })).toBe(1);
    const hb = seriesValue(all, "agentmesh_agent_last_heartbeat_timestamp_seconds", { pool }) ?? 0;
    expect(Math.abs(Date.now() / 1000 - hb)).toBeLessThan(120);
  });

  it("reads queue depth, ack-pending and the oldest queued age from JetStream", async () => {
    const pool = "m-depth";
    const d = await meshd({ name: "depth", pools: [pool], slots: 1 });
    const m = metricsOf(d);
    const hang = nodeTask("setInterval(()=>{},1000)", { pool });
    await mesh.client.api.submit([hang]);
    await waitForState(mesh.client.api, hang.id, ["running"]);
    const before = Date.now();
    const waiting = [nodeTask("", { pool }), nodeTask("", { pool }), nodeTask("", { pool })];
    await mesh.client.api.submit(waiting);
    const all = await waitFor(
      async () => {
        const s = await snapshot(m);
        return seriesValue(s, "agentmesh_queue_pending_messages", { pool }) === 3 ? s : undefined;
      },
      { name: "3 doorbells pending", timeoutMs: 20_000 },
    );
    expect(seriesValue(all, "agentmesh_queue_ack_pending_messages", { pool })).toBe(1);
    expect(seriesValue(all, "agentmesh_tasks_running")).toBe(1);
    const age = seriesValue(all, "agentmesh_queue_oldest_pending_age_seconds", { pool }) ?? -1;
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThanOrEqual((Date.now() - before) / 1000 + 1);
    // the age is that of the FIRST pending doorbell: it grows while nothing is delivered
    await waitFor(
      async () => ((await readQueueStats(d.topology.jsm, pool)).oldestPendingAgeSeconds ?? 0) > age + 0.5,
      { name: "oldest age grows", timeoutMs: 10_000 },
    );
    await mesh.client.api.cancel(hang.id);
    for (const w of waiting) await waitForState(mesh.client.api, w.id, ["succeeded"]);
    const after = await waitFor(
      async () => {
        const s = await snapshot(m);
        return seriesValue(s, "agentmesh_queue_ack_pending_messages", { pool }) === 0 ? s : undefined;
      },
      { name: "queue drained", timeoutMs: 20_000 },
    );
    expect(seriesValue(after, "agentmesh_queue_pending_messages", { pool })).toBe(0);
    expect(seriesValue(after, "agentmesh_queue_oldest_pending_age_seconds", { pool })).toBe(0);
  });

  it("has the configured model's agent series at 0 from the start, for each of its pools", async () => {
    const dir = await makeTempDir("meshd-metrics-key-");
    const apiKeyFile = join(dir, "key");
    writeFileSync(apiKeyFile, "sk-ant-test-not-a-key\n", { mode: 0o600 });
    const d = await meshd({
      name: "conf-model",
      pools: ["m-conf-a", "m-conf-b"],
      runners: ["claude"],
      claude: { command: [process.execPath], model: "claude-conf-test", apiKeyFile },
    });
    const body = (await metricsOf(d).render()).body;
    for (const pool of ["m-conf-a", "m-conf-b"]) {
      const labels = { pool, model: "claude-conf-test" };
      expect(textValue(body, "agentmesh_agent_cost_usd_total", labels)).toBe(0);
      expect(textValue(body, "agentmesh_agent_tokens_total", { ...labels, type: "output" })).toBe(0);
      expect(textValue(body, "agentmesh_agent_sessions_total", { ...labels, result: "success" })).toBe(0);
    }
  });

  it("has the queue series of a pool no daemon serves, from the stream's doorbells", async () => {
    const d = await meshd({ name: "depth-all", pools: ["m-served"] });
    const pool = `m-unserved-${uniqueId("p")}`.slice(0, 60);
    const tasks = [nodeTask("", { pool }), nodeTask("", { pool })];
    await mesh.client.api.submit(tasks);
    const all = await waitFor(
      async () => {
        const s = await snapshot(metricsOf(d));
        return seriesValue(s, "agentmesh_queue_pending_messages", { pool }) === 2 ? s : undefined;
      },
      { name: "the unserved pool's 2 doorbells in the daemon's metrics", timeoutMs: 20_000 },
    );
    expect(seriesValue(all, "agentmesh_queue_ack_pending_messages", { pool })).toBe(0);
    expect(seriesValue(all, "agentmesh_queue_oldest_pending_age_seconds", { pool })).toBeGreaterThanOrEqual(
      0,
    );
    expect(seriesValue(all, "agentmesh_pool_workers_alive", { pool })).toBe(0);
    expect(seriesValue(all, "agentmesh_queue_pending_messages", { pool: "m-served" })).toBe(0);
    for (const t of tasks) await mesh.client.api.cancel(t.id);
  });

  it("counts the redelivery and takeover of a task whose owner stopped heartbeating", async () => {
    const pool = "m-takeover";
    const d = await meshd({ name: "taker", pools: [pool] });
    // A record held by a worker that no longer exists, and its doorbell.
    const spec = nodeTask("process.exit(0)", { pool });
    await plantOrphanedTask(mesh.client, spec);
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "dead"], 30_000);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempts[0]?.outcome).toBe("lost");
    const all = await snapshot(metricsOf(d));
    expect(seriesValue(all, "agentmesh_lease_takeovers_total", { pool })).toBe(1);
    expect(seriesValue(all, "agentmesh_redeliveries_total", { pool })).toBeGreaterThanOrEqual(1);
  });

  it("counts a NATS disconnect and reconnect", async () => {
    const own = await NatsServer.start();
    try {
      const config = compileConfig({
        ...FAST,
        logLevel: "silent",
        http: { enabled: false },
        name: "reconnecting",
        nats: { servers: [own.url] },
        stateDir: await makeTempDir("meshd-metrics-"),
      });
      const d = await startDaemon(config);
      try {
        const m = metricsOf(d);
        expect(m.natsConnected).toBe(true);
        await own.stop();
        await waitFor(() => !m.natsConnected, { name: "disconnect seen", timeoutMs: 20_000 });
        const down = await snapshot(m);
        expect(seriesValue(down, "agentmesh_nats_connected")).toBe(0);
        expect(seriesValue(down, "agentmesh_ready")).toBe(0);
        await own.restart();
        await waitFor(() => m.natsConnected, { name: "reconnect seen", timeoutMs: 30_000 });
        const up = await snapshot(m);
        expect(seriesValue(up, "agentmesh_nats_connected")).toBe(1);
        expect(seriesValue(up, "agentmesh_nats_reconnects_total")).toBe(1);
        expect(seriesValue(up, "agentmesh_nats_disconnects_total")).toBe(1);
      } finally {
        await d.stop(500);
      }
    } finally {
      await own.cleanup();
    }
  });
});
