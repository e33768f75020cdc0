/**
 * Agent metrics from the runner events of the shims this daemon runs (see agent-shim/events.ts):
 * `result` carries the session totals (tokens, cost, turns, duration); `tool_use`,
 * `tool_denied` and `api_retry` are counted as they happen; any agent event, heartbeats
 * included, proves the agent alive.
 *
 * Every series is scraped at 0 before it first counts (first-zero.ts), so increase() sees a
 * model's or pool's first session: the configured models' series exist from the start, a
 * session's model's from its `session_started`, and any other series holds its first values back
 * until a scrape has shown it at 0.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { RunnerEvent } from "../tasks/index.js";
import { ScrapeGate, ZeroFirstCounter, ZeroFirstHistogram } from "./first-zero.js";
import { BoundedLabel, num, statusLabel } from "./labels.js";

export const SESSION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

const TOKEN_TYPES = [
  ["input", "input"],
  ["output", "output"],
  ["cacheRead", "cache_read"],
  ["cacheCreation", "cache_creation"],
] as const;

export interface AgentMetricsOptions {
  maxModels?: number;
  maxTools?: number;
  now?: () => number;
}

export class AgentMetrics {
  private readonly models: BoundedLabel;
  private readonly tools: BoundedLabel;
  private readonly now: () => number;
  private readonly tokens: ZeroFirstCounter<"pool" | "model" | "type">;
  private readonly cost: ZeroFirstCounter<"pool" | "model">;
  private readonly turns: ZeroFirstCounter<"pool" | "model">;
  private readonly sessions: ZeroFirstCounter<"pool" | "model" | "result">;
  private readonly sessionDuration: ZeroFirstHistogram<"pool" | "model">;
  private readonly toolCalls: ZeroFirstCounter<"pool" | "tool">;
  private readonly toolDenials: ZeroFirstCounter<"pool" | "tool">;
  private readonly apiRetries: ZeroFirstCounter<"pool" | "status">;
  private readonly apiErrors: ZeroFirstCounter<"pool" | "status">;
  private readonly lastSeen: Gauge<"pool">;
  /** Hold-back of first values; MeshMetrics renders through it. */
  readonly gate = new ScrapeGate();
  private readonly eventsDropped: ZeroFirstCounter<"pool">;

  constructor(registry: Registry, opts: AgentMetricsOptions = {}) {
    const registers = [registry];
    const counter = <L extends string>(c: Counter<L>) => this.gate.add(new ZeroFirstCounter(c));
    this.models = new BoundedLabel(opts.maxModels ?? 32);
    this.tools = new BoundedLabel(opts.maxTools ?? 64);
    this.now = opts.now ?? Date.now;
    this.tokens = counter(
      new Counter({
        name: "agentmesh_agent_tokens_total",
        help: "Tokens used by agent sessions, by type (input, output, cache_read, cache_creation).",
        labelNames: ["pool", "model", "type"],
        registers,
      }),
    );
    this.cost = counter(
      new Counter({
        name: "agentmesh_agent_cost_usd_total",
        help: "Cost of agent sessions in US dollars, as reported by Claude Code.",
        labelNames: ["pool", "model"],
        registers,
      }),
    );
    this.turns = counter(
      new Counter({
        name: "agentmesh_agent_turns_total",
        help: "Agent turns (model round trips) of finished sessions.",
        labelNames: ["pool", "model"],
        registers,
      }),
    );
    this.sessions = counter(
      new Counter({
        name: "agentmesh_agent_sessions_total",
        help: "Agent sessions that reported a result, by result (success or error).",
        labelNames: ["pool", "model", "result"],
        registers,
      }),
    );
    this.sessionDuration = this.gate.add(
      new ZeroFirstHistogram(
        new Histogram({
          name: "agentmesh_agent_session_duration_seconds",
          help: "Wall-clock duration of agent sessions, as reported in their result.",
          labelNames: ["pool", "model"],
          buckets: SESSION_BUCKETS,
          registers,
        }),
      ),
    );
    this.toolCalls = counter(
      new Counter({
        name: "agentmesh_agent_tool_calls_total",
        help: "Tool calls made by agents, by tool name.",
        labelNames: ["pool", "tool"],
        registers,
      }),
    );
    this.toolDenials = counter(
      new Counter({
        name: "agentmesh_agent_tool_denials_total",
        help: "Tool calls refused by the agent's permission settings, by tool name.",
        labelNames: ["pool", "tool"],
        registers,
      }),
    );
    this.apiRetries = counter(
      new Counter({
        name: "agentmesh_agent_api_retries_total",
        help: "API requests an agent retried, by the HTTP status that caused the retry.",
        labelNames: ["pool", "status"],
        registers,
      }),
    );
    this.apiErrors = counter(
      new Counter({
        name: "agentmesh_agent_api_errors_total",
        help: "Agent sessions that ended on an API error after retries, by HTTP status.",
        labelNames: ["pool", "status"],
        registers,
      }),
    );
    this.eventsDropped = counter(
      new Counter({
        name: "agentmesh_agent_events_dropped_total",
        help: "Agent events not published on the bus because their attempt reached its event cap (limits.agentEventsPerAttempt / agentEventBytesPerAttempt).",
        labelNames: ["pool"],
        registers,
      }),
    );
    this.lastSeen = new Gauge({
      name: "agentmesh_agent_last_heartbeat_timestamp_seconds",
      help: "Unix time of the last heartbeat (or any other event) from an agent this daemon runs.",
      labelNames: ["pool"],
      registers,
    });
  }

  /** Creates, at 0, every series a session of `model` in `pool` will count into. */
  prepare(pool: string, model: string | undefined): void {
    const m = this.models.value(model);
    this.eventsDropped.zero({ pool });
    for (const [, type] of TOKEN_TYPES) this.tokens.zero({ pool, model: m, type });
    this.cost.zero({ pool, model: m });
    this.turns.zero({ pool, model: m });
    for (const result of ["success", "error"]) this.sessions.zero({ pool, model: m, result });
    this.sessionDuration.zero({ pool, model: m });
  }

  record(pool: string, specModel: string | undefined, event: RunnerEvent): void {
    if (event.type !== "agent") return;
    this.lastSeen.set({ pool }, this.now() / 1000);
    const d = event.data;
    switch (event.kind) {
      case "session_started":
        // Well before its result: a scrape in between shows the session's series at 0.
        this.prepare(pool, typeof d.model === "string" && d.model ? d.model : specModel);
        break;
      case "result":
        this.result(pool, this.models.value(d.model ?? specModel), d);
        break;
      case "tool_use":
        this.toolCalls.inc({ pool, tool: this.tools.value(d.tool) });
        break;
      case "tool_denied":
        this.toolDenials.inc({ pool, tool: this.tools.value(d.tool) });
        break;
      case "api_retry":
        this.apiRetries.inc({ pool, status: statusLabel(d.status) });
        break;
    }
  }

  /** One agent event kept off the bus by the per-attempt cap. */
  dropped(pool: string): void {
    this.eventsDropped.inc({ pool });
  }

  private result(pool: string, model: string, d: Record<string, unknown>): void {
    const tokens =
      typeof d.tokens === "object" && d.tokens !== null ? (d.tokens as Record<string, unknown>) : {};
    for (const [field, type] of TOKEN_TYPES) {
      const n = num(tokens[field]);
      if (n !== undefined) this.tokens.inc({ pool, model, type }, n);
    }
    const cost = num(d.costUsd);
    if (cost !== undefined) this.cost.inc({ pool, model }, cost);
    const turns = num(d.turns);
    if (turns !== undefined) this.turns.inc({ pool, model }, turns);
    const durationMs = num(d.durationMs);
    if (durationMs !== undefined) this.sessionDuration.observe({ pool, model }, durationMs / 1000);
    const isError = d.isError === true;
    this.sessions.inc({ pool, model, result: isError ? "error" : "success" });
    if (isError && d.apiErrorStatus !== null && d.apiErrorStatus !== undefined) {
      this.apiErrors.inc({ pool, status: statusLabel(d.apiErrorStatus) });
    }
  }
}
