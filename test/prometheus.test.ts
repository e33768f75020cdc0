/**
 * The real Prometheus against the mesh: Prometheus (Debian's /usr/bin/prometheus) runs the
 * shipped deploy/prometheus/prometheus.yml with only the /sd URL, token and intervals changed,
 * discovers two daemons through ONE daemon's /sd, scrapes them while tasks run (successes,
 * retries to dead, a permanent failure, scripted agent sessions, a lease takeover), then
 * every PromQL expression of the Grafana dashboard must return data. A daemon that stops
 * leaves /sd and Prometheus' targets.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import {
  CommandRunner,
  compileConfig,
  type Daemon,
  type DaemonOptions,
  MeshError,
  type RunContext,
  type Runner,
  type RunOutcome,
  startDaemon,
  type TaskSpec,
  validateTaskSpec,
} from "../daemon/index.js";
import type { TargetGroup } from "../daemon/servers/http/sd.js";
import { DirWorkspaceProvider } from "../daemon/workspace/dir-workspace.js";
import type { PreparedWorkspace, WorkspaceProvider } from "../daemon/workspace/workspace.js";
import { type Child, spawnChild } from "../lib/index.js";
import { freePort, makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  CLAUDE_BIN,
  FAKE_API_KEY,
  overloaded,
  startMockAnthropic,
  writeFile as writeFileReply,
} from "./mock-anthropic/index.js";
import {
  FAST,
  type MeshClient,
  openClient,
  plantOrphanedTask,
  REPO_ROOT,
  waitForState,
} from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

const PROMETHEUS_BIN = process.env.MESH_TEST_PROMETHEUS_BIN ?? "/usr/bin/prometheus";
const HAVE_PROMETHEUS = existsSync(PROMETHEUS_BIN);
if (!HAVE_PROMETHEUS) {
  console.warn(
    `prometheus.test.ts SKIPPED: ${PROMETHEUS_BIN} is missing; install it with \`apt-get install prometheus\` ` +
      "(or set MESH_TEST_PROMETHEUS_BIN)",
  );
}

const DASHBOARD = join(REPO_ROOT, "deploy/grafana/dashboards/agent-mesh.json");
const PROMETHEUS_YML = join(REPO_ROOT, "deploy/prometheus/prometheus.yml");
const TOKEN = "prom-test-token";

// ---------------------------------------------------------------- a Prometheus launcher

class Prometheus {
  private readonly log: string[] = [];
  /** Ends when the child's stdout and stderr have ended. */
  private readonly read: Promise<void>;

  /** Through lib/child: it dies with this process, and stop() is TERM then KILL after a grace. */
  private constructor(
    private readonly child: Child,
    readonly url: string,
  ) {
    this.read = (async () => {
      for await (const { line } of child.lines()) {
        if (!line) continue;
        this.log.push(line);
        if (this.log.length > 200) this.log.splice(0, this.log.length - 200);
      }
    })();
  }

  get logs(): string {
    return this.log.slice(-30).join("\n");
  }

  /** Starts on a random loopback port (a few tries: another process may grab the port first). */
  static async start(configFile: string, dataDir: string): Promise<Prometheus> {
    let last: unknown;
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const child = spawnChild(
        [
          PROMETHEUS_BIN,
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${join(dataDir, `tsdb-${i}`)}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=info",
        ],
        { parentDeath: "signal", killGraceMs: 15_000 },
      );
      const p = new Prometheus(child, `http://127.0.0.1:${port}`);
      try {
        await Promise.race([
          waitFor(async () => (await fetch(`${p.url}/-/ready`)).ok, {
            name: "prometheus /-/ready",
            timeoutMs: 60_000,
            intervalMs: 100,
          }),
          p.child.exited.then((exit) => {
            throw new Error(
              `prometheus exited (${exit.spawnError ?? exit.exitCode ?? exit.signal}) before it was ready:\n${p.logs}`,
            );
          }),
        ]);
        return p;
      } catch (err) {
        last = err;
        await p.stop();
        if (!/address already in use/.test(p.logs)) break;
      }
    }
    throw last;
  }

  async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
    const res = await fetch(`${this.url}/api/v1/${path}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  }

  query(expr: string): Promise<{ resultType: string; result: unknown[] }> {
    return this.api("query", { query: expr });
  }

  async value(expr: string): Promise<number | undefined> {
    const r = await this.query(expr);
    const first = r.result[0] as { value?: [number, string] } | undefined;
    return first?.value ? Number(first.value[1]) : undefined;
  }

  activeTargets(): Promise<ActiveTarget[]> {
    return this.api<{ activeTargets: ActiveTarget[] }>("targets", { state: "active" }).then(
      (d) => d.activeTargets,
    );
  }

  /** TERM, then KILL after 15 s; resolves once it has exited and its output is read. */
  async stop(): Promise<void> {
    await this.child.stop();
    await this.read;
  }
}

interface ActiveTarget {
  health: string;
  lastError: string;
  scrapeUrl: string;
  labels: Record<string, string>;
  discoveredLabels: Record<string, string>;
}

// ---------------------------------------------------------------- the dashboard's PromQL

/** Every PromQL expression of a Grafana dashboard: panel targets and query variables. */
function dashboardExpressions(dashboard: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    if (typeof v !== "object" || v === null) return;
    for (const [k, x] of Object.entries(v)) {
      if (k === "expr" && typeof x === "string") out.push(x);
      else walk(x);
    }
  };
  walk(dashboard);
  const vars = (dashboard as { templating?: { list?: Array<{ type: string; query: unknown }> } }).templating
    ?.list;
  for (const v of vars ?? []) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : (v.query as { query?: string }).query;
    if (!q) continue;
    // Grafana's label_values(metric, label) is not PromQL; this is the query it stands for.
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q.trim());
    out.push(m ? `group by (${m[2]}) (${m[1]})` : q);
  }
  return out;
}

/** Grafana's variables as a dashboard viewer with "All" selected would send them. */
function substitute(expr: string, variables: string[]): string {
  let e = expr
    .replaceAll(/\$\{?__rate_interval\}?/g, "1m")
    .replaceAll(/\$\{?__interval\}?/g, "15s")
    .replaceAll(/\$\{?__range\}?/g, "1h");
  for (const name of variables) e = e.replaceAll(new RegExp(`\\$\\{?${name}\\}?(?!\\w)`, "g"), ".*");
  return e;
}

// ---------------------------------------------------------------- scripted agents and workspaces

/** A "claude" runner that plays an agent session: tool calls, a 429 retry, heartbeats, a result. */
class ScriptedAgentRunner implements Runner {
  readonly kind = "claude";
  async run(ctx: RunContext): Promise<RunOutcome> {
    const emit = (kind: string, data: Record<string, unknown>) => ctx.emit({ type: "agent", kind, data });
    const model = ctx.spec.agent.model ?? "claude-test-model";
    const limited = ctx.spec.prompt === "rate-limited";
    emit("session_started", { sessionId: `s-${ctx.spec.id}`, model });
    emit("tool_use", { tool: "Read", toolUseId: "u1", filePath: "README.md" });
    emit("tool_use", { tool: "Bash", toolUseId: "u2", command: "npm test" });
    emit("heartbeat", { idleMs: 10, pid: process.pid });
    emit("api_retry", { status: 429, attempt: 1, retryDelayMs: 5 });
    if (limited) emit("api_retry", { status: 529, attempt: 2, retryDelayMs: 5 });
    const tokens = { input: 1200, output: 300, cacheRead: 5000, cacheCreation: 700 };
    emit("result", {
      subtype: limited ? "error_during_execution" : "success",
      isError: limited,
      apiErrorStatus: limited ? 429 : null,
      costUsd: limited ? 0.01 : 0.42,
      tokens,
      turns: 5,
      durationMs: 2500,
      sessionId: `s-${ctx.spec.id}`,
      model,
      permissionDenials: 0,
      summary: limited ? "API Error: 429" : "done",
    });
    return limited
      ? { status: "failed", reason: "API error 429 after retries" }
      : { status: "succeeded", result: { costUsd: 0.42, tokens, turns: 5, model } };
  }
}

/** Refuses the workspace of tasks titled "bad-workspace" as an invalid spec: a permanent failure. */
class PickyWorkspaces implements WorkspaceProvider {
  constructor(private readonly inner: WorkspaceProvider) {}
  prepare(spec: TaskSpec, attempt: number, signal: AbortSignal): Promise<PreparedWorkspace> {
    if (spec.title === "bad-workspace") {
      return Promise.reject(new MeshError("INVALID_ARGUMENT", "repo: not a git repository"));
    }
    return this.inner.prepare(spec, attempt, signal);
  }
}

// ---------------------------------------------------------------- the test

let nats: NatsServer;
let client: MeshClient;
let prometheus: Prometheus | undefined;
let tokenFile: string;
const daemons: Daemon[] = [];

async function meshd(opts: Partial<DaemonOptions>): Promise<Daemon> {
  const stateDir = await makeTempDir("meshd-prom-");
  const config = compileConfig({
    ...FAST,
    logLevel: process.env.MESH_TEST_LOG ?? "silent",
    runners: ["command", "claude"],
    ...opts,
    http: { enabled: true, port: 0, tokenFile },
    nats: { servers: [nats.url] },
    stateDir,
  });
  const d = await startDaemon(config, {
    runners: [new CommandRunner(), new ScriptedAgentRunner()],
    workspaces: new PickyWorkspaces(new DirWorkspaceProvider(join(stateDir, "work"))),
  });
  daemons.push(d);
  return d;
}

const urlOf = (d: Daemon): string => d.snapshot().httpUrl ?? "";

async function sd(d: Daemon): Promise<TargetGroup[]> {
  const res = await fetch(`${urlOf(d)}/sd`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as TargetGroup[];
}

/** The shipped prometheus.yml, pointed at `sdUrl` with the token and test-speed intervals. */
function prometheusConfig(sdUrl: string): string {
  const cfg = parseYaml(readFileSync(PROMETHEUS_YML, "utf8")) as {
    global: Record<string, unknown>;
    scrape_configs: Array<Record<string, unknown> & { http_sd_configs: Array<Record<string, unknown>> }>;
  };
  cfg.global.scrape_interval = "1s";
  cfg.global.evaluation_interval = "1s";
  const job = cfg.scrape_configs.find((j) => j.job_name === "agent-mesh");
  if (!job) throw new Error("deploy/prometheus/prometheus.yml has no agent-mesh job");
  job.scrape_interval = "1s";
  job.scrape_timeout = "1s";
  // `type: Bearer` as in the file's comments: Prometheus 2.42's http_sd sends no scheme without it.
  const authorization = { type: "Bearer", credentials_file: tokenFile };
  job.authorization = authorization;
  const [first] = job.http_sd_configs;
  job.http_sd_configs = [{ ...first, url: sdUrl, refresh_interval: "1s", authorization }];
  cfg.scrape_configs = [job];
  return toYaml(cfg);
}

describe.skipIf(!HAVE_PROMETHEUS)("real Prometheus scraping the mesh", () => {
  beforeAll(async () => {
    nats = await NatsServer.start();
    client = await openClient(nats.url);
    const dir = await makeTempDir("prom-");
    tokenFile = join(dir, "token");
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  });

  afterAll(async () => {
    await prometheus?.stop();
    await Promise.allSettled(daemons.map((d) => d.stop(1000)));
    await client?.close();
    await nats?.cleanup();
    await removeTempDirs();
  });

  it("discovers both daemons via one /sd, answers every dashboard query, and drops a stopped daemon", async () => {
    const a = await meshd({ name: "prom-a", pools: ["default", "batch"], slots: 3 });
    const b = await meshd({ name: "prom-b", pools: ["default"], slots: 2 });

    const dir = await makeTempDir("prom-run-");
    const configFile = join(dir, "prometheus.yml");
    await writeFile(configFile, prometheusConfig(`${urlOf(a)}/sd`));
    prometheus = await Prometheus.start(configFile, dir);
    const prom = prometheus;

    // Both daemons found through a's /sd, scraped with the token, host and pools relabelled.
    const targets = await waitFor(
      async () => {
        const t = await prom.activeTargets();
        return t.length === 2 && t.every((x) => x.health === "up") ? t : undefined;
      },
      { name: "prometheus scrapes both daemons", timeoutMs: 60_000, intervalMs: 250 },
    ).catch(async (err) => {
      throw new Error(`${err}\ntargets: ${JSON.stringify(await prom.activeTargets())}\n${prom.logs}`);
    });
    const byWorker = new Map(targets.map((t) => [t.discoveredLabels.__meta_agentmesh_worker, t]));
    expect(byWorker.get("prom-a")?.labels).toMatchObject({
      job: "agent-mesh",
      host: a.config.host,
      pools: "default,batch",
    });
    expect(byWorker.get("prom-b")?.labels).toMatchObject({ pools: "default" });
    expect(byWorker.get("prom-b")?.scrapeUrl).toBe(`${urlOf(b)}/metrics`);

    // Work through the mesh: successes, a retry to dead, a permanent failure, agent sessions
    // (one ending on a 429), and a task whose owner "died", taken over after its lease.
    const agent = (extra: Record<string, unknown> = {}) =>
      validateTaskSpec({ id: uniqueId("agent"), prompt: "fix the bug", runner: "claude", ...extra });
    const specs: TaskSpec[] = [
      nodeTask("process.exit(0)"),
      nodeTask("process.exit(0)"),
      nodeTask("process.exit(0)", { pool: "batch" }),
      nodeTask("process.exit(2)", { maxAttempts: 2 }),
      nodeTask("process.exit(0)", { title: "bad-workspace" }),
      agent({ agent: { model: "claude-sonnet-test" } }),
      agent({ pool: "batch", agent: { model: "claude-opus-test" } }),
      agent({ prompt: "rate-limited", maxAttempts: 1 }),
    ];
    // Submitted through daemon a's API, as `mesh submit` does, so its submit counter moves.
    await a.api.submit(specs);
    const ghost = nodeTask("process.exit(0)");
    await plantOrphanedTask(client, ghost);

    const final = await Promise.all(
      [...specs, ghost].map((s) =>
        waitForState(client.api, s.id, ["succeeded", "failed", "dead", "cancelled"], 60_000),
      ),
    );
    expect(final.map((v) => v.record.state)).toEqual([
      "succeeded",
      "succeeded",
      "succeeded",
      "dead",
      "failed",
      "succeeded",
      "succeeded",
      "dead",
      "succeeded",
    ]);
    expect(final[8]?.record.attempts[0]?.outcome).toBe("lost");

    // Prometheus has scraped the final counts.
    await waitFor(
      async () =>
        (await prom.value('sum(agentmesh_task_transitions_total{state="succeeded"})')) === 6 &&
        (await prom.value("sum(agentmesh_lease_takeovers_total)")) === 1 &&
        (await prom.value("sum(agentmesh_agent_sessions_total)")) === 3,
      { name: "prometheus sees the final counts", timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(await prom.value('sum(agentmesh_task_transitions_total{state="dead"})')).toBe(2);
    expect(await prom.value('sum(agentmesh_task_transitions_total{state="failed"})')).toBe(1);
    expect(await prom.value("sum(agentmesh_agent_cost_usd_total)")).toBeCloseTo(0.85);
    expect(await prom.value('sum(agentmesh_agent_tokens_total{type="cache_read"})')).toBe(15_000);
    expect(await prom.value('sum(agentmesh_agent_api_errors_total{status="429"})')).toBe(1);
    expect(await prom.value("max(agentmesh_workers_alive)")).toBe(2);

    // EVERY expression of the dashboard returns data.
    const dashboard: unknown = JSON.parse(readFileSync(DASHBOARD, "utf8"));
    const variables = (
      (dashboard as { templating: { list: Array<{ name: string }> } }).templating.list ?? []
    ).map((v) => v.name);
    const exprs = dashboardExpressions(dashboard);
    // the check below can fail: a series nobody exports has no data
    expect((await prom.query("agentmesh_no_such_metric_total")).result).toEqual([]);
    expect(exprs.length).toBeGreaterThanOrEqual(25);
    const empty: string[] = [];
    for (const raw of exprs) {
      const expr = substitute(raw, variables);
      expect(expr, `unsubstituted variable in ${raw}`).not.toMatch(/\$/);
      try {
        await waitFor(async () => (await prom.query(expr)).result.length > 0, {
          name: expr,
          timeoutMs: 20_000,
          intervalMs: 250,
        });
      } catch (err) {
        empty.push(`${raw}\n    -> ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    expect(empty, `dashboard expressions without data:\n${empty.join("\n")}`).toEqual([]);

    // A daemon that stops leaves /sd, and Prometheus stops scraping it.
    await b.stop(1000);
    await waitFor(async () => (await sd(a)).every((g) => g.labels.__meta_agentmesh_worker !== "prom-b"), {
      name: "prom-b gone from /sd",
      timeoutMs: 20_000,
    });
    const left = await waitFor(
      async () => {
        const t = await prom.activeTargets();
        return t.length === 1 ? t : undefined;
      },
      { name: "prometheus drops prom-b", timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(left[0]?.discoveredLabels.__meta_agentmesh_worker).toBe("prom-a");
  }, 300_000);
  it("increase() of the agent counters holds a real Claude Code session that is its pool's first; an unserved pool has queue series", async () => {
    // Claude Code (the real CLI) against the mock Messages API: a 529 it retries, a Write, an answer.
    const mock = await startMockAnthropic({
      script: ({ turn, attempt }) =>
        turn === 0 ? (attempt === 0 ? overloaded() : writeFileReply("hello.txt", "hi\n")) : answer("done"),
    });
    try {
      const dir = await makeTempDir("prom-claude-");
      const apiKeyFile = join(dir, "anthropic-key");
      await writeFile(apiKeyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
      const pool = "prom-first-session";
      const d = await startDaemon(
        compileConfig({
          ...FAST,
          logLevel: process.env.MESH_TEST_LOG ?? "silent",
          name: "prom-claude",
          pools: [pool],
          runners: ["claude"],
          claude: { command: [CLAUDE_BIN], env: { ANTHROPIC_BASE_URL: mock.url }, apiKeyFile },
          http: { enabled: true, port: 0, tokenFile },
          nats: { servers: [nats.url] },
          stateDir: join(dir, "state"),
        }),
      );
      daemons.push(d);
      // One scraper only (the first test's, when it ran): a second one could miss a series' first 0.
      if (!prometheus) {
        const configFile = join(dir, "prometheus.yml");
        await writeFile(configFile, prometheusConfig(`${urlOf(d)}/sd`));
        prometheus = await Prometheus.start(configFile, dir);
      }
      const prom = prometheus;
      const sel = `{pool="${pool}"}`;

      const spec = validateTaskSpec({
        id: uniqueId("claude"),
        prompt: "write hello.txt",
        runner: "claude",
        pool,
      });
      await d.api.submit([spec]);
      const done = await waitForState(client.api, spec.id, ["succeeded", "failed", "dead"], 120_000);
      expect(done.record.state, JSON.stringify(done.record.attempts)).toBe("succeeded");
      const res = done.record.result;
      const cost = res?.costUsd ?? 0;
      const tokens = res?.tokens ? Object.values(res.tokens).reduce((a, b) => a + (b ?? 0), 0) : 0;
      expect(cost).toBeGreaterThan(0);
      expect(tokens).toBeGreaterThan(0);

      // Prometheus has scraped the session's totals (a series new at the session counts one
      // scrape after it was first shown at 0, so each is waited for)...
      const total = async (metric: string) => (await prom.value(`sum(${metric}${sel})`)) ?? 0;
      await waitFor(
        async () =>
          (await total("agentmesh_agent_sessions_total")) === 1 &&
          (await total("agentmesh_agent_cost_usd_total")) >= cost - 1e-9 &&
          (await total("agentmesh_agent_tokens_total")) >= tokens &&
          (await total("agentmesh_agent_turns_total")) >= (res?.turns ?? 1) &&
          (await total("agentmesh_agent_tool_calls_total")) >= 1 &&
          (await total("agentmesh_agent_api_retries_total")) >= 1,
        { name: "prometheus sees the session's totals", timeoutMs: 60_000, intervalMs: 250 },
      );
      // ...and increase() over a window holding the pool's first session sees all of it: every
      // series was scraped at 0 before it counted. (Extrapolation can only add to a rise from 0.)
      const increase = async (metric: string) =>
        (await prom.value(`sum(increase(${metric}${sel}[10m]))`)) ?? 0;
      expect(await increase("agentmesh_agent_cost_usd_total")).toBeGreaterThanOrEqual(cost - 1e-9);
      expect(await increase("agentmesh_agent_tokens_total")).toBeGreaterThanOrEqual(tokens);
      expect(await increase("agentmesh_agent_turns_total")).toBeGreaterThanOrEqual(res?.turns ?? 1);
      expect(await increase("agentmesh_agent_sessions_total")).toBeGreaterThanOrEqual(1);
      expect(await increase("agentmesh_agent_tool_calls_total")).toBeGreaterThanOrEqual(1);
      expect(await increase("agentmesh_agent_api_retries_total")).toBeGreaterThanOrEqual(1);

      // A pool no live worker serves: its backlog has queue series too, next to 0 workers.
      const unserved = "prom-nobody";
      await d.api.submit([
        nodeTask("process.exit(0)", { pool: unserved }),
        nodeTask("process.exit(0)", { pool: unserved }),
      ]);
      await waitFor(
        async () =>
          (await prom.value(`max(agentmesh_queue_pending_messages{pool="${unserved}"})`)) === 2 &&
          (await prom.value(`max(agentmesh_pool_workers_alive{pool="${unserved}"})`)) === 0,
        { name: "prometheus sees the unserved pool's backlog", timeoutMs: 30_000, intervalMs: 250 },
      );
      expect(
        await prom.value(`max(agentmesh_queue_oldest_pending_age_seconds{pool="${unserved}"})`),
      ).toBeGreaterThanOrEqual(0);
    } finally {
      await mock.close();
    }
  }, 300_000);
});
