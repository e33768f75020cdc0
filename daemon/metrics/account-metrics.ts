/**
 * Account usage limits as metrics: each account's state (one series per state, 1 for the
 * current), its last reported utilisation, the limits sessions met (by how Claude Code said so)
 * and the tasks parked at a limit. Labelled by account name, never by key or task.
 */
import { Counter, Gauge, type Registry } from "prom-client";

const STATES = ["open", "warning", "rejected"] as const;
/** How mesh-shim says a session met a limit (agent-shim/limits.ts LimitSource). */
const SOURCES = ["rate_limit_event", "api_error", "api_retry", "usage_limit_text"] as const;

export class AccountMetrics {
  private readonly state: Gauge;
  private readonly until: Gauge;
  private readonly utilization: Gauge;
  private readonly hits: Counter;
  private readonly parked: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.state = new Gauge({
      name: "agentmesh_account_state",
      help: "1 for the account's current limit state (open, warning: past claude.warnUtilization, rejected: at its usage limit), as this daemon sees it.",
      labelNames: ["account", "state"],
      registers,
    });
    this.until = new Gauge({
      name: "agentmesh_account_paused_until_seconds",
      help: "When the account's recorded limit state ends (epoch seconds); 0 when it is open.",
      labelNames: ["account"],
      registers,
    });
    this.utilization = new Gauge({
      name: "agentmesh_account_utilization_ratio",
      help: "The account's last reported utilisation of its limit window (0..1).",
      labelNames: ["account"],
      registers,
    });
    this.hits = new Counter({
      name: "agentmesh_account_limit_hits_total",
      help: "Sessions on this daemon that met their account's usage limit, by how Claude Code reported it.",
      labelNames: ["account", "source"],
      registers,
    });
    this.parked = new Counter({
      name: "agentmesh_tasks_parked_total",
      help: "Attempts that parked their task at the account's usage limit (not counted; resumed after the reset).",
      labelNames: ["pool", "account"],
      registers,
    });
  }

  private readonly prepared = new Set<string>();
  private readonly accounts = new Set<string>();
  private pools: readonly string[] = [];

  /** The daemon's pools are known: the accounts seen so far get their per-pool series. */
  bindPools(pools: readonly string[]): void {
    this.pools = pools;
    for (const a of this.accounts) this.prepare(a, pools);
  }

  /** Series at 0 for an account this daemon serves, so dashboards have data before the first limit. */
  prepare(account: string, pools: readonly string[] = this.pools): void {
    this.accounts.add(account);
    for (const source of SOURCES) this.hits.inc({ account, source }, 0);
    for (const pool of pools) {
      if (this.prepared.has(`${pool}\0${account}`)) continue;
      this.prepared.add(`${pool}\0${account}`);
      this.parked.inc({ pool, account }, 0);
    }
    if (!this.prepared.has(account)) {
      this.prepared.add(account);
      // 0 until Claude Code reports a utilisation (subscription logins only).
      this.utilization.set({ account }, 0);
      this.setState(account, "open", undefined, undefined);
    }
  }

  setState(
    account: string,
    state: string,
    untilMs: number | undefined,
    utilization: number | undefined,
  ): void {
    for (const s of STATES) this.state.set({ account, state: s }, s === state ? 1 : 0);
    this.until.set({ account }, untilMs !== undefined && state !== "open" ? Math.round(untilMs / 1000) : 0);
    if (utilization !== undefined) this.utilization.set({ account }, utilization);
  }

  limitHit(account: string, source: string): void {
    this.hits.inc({ account, source });
  }

  parkedTask(pool: string, account: string): void {
    this.parked.inc({ pool, account });
  }
}
