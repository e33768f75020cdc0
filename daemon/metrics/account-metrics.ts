/**
 * Account usage limits as metrics: each account's state (one series per state, 1 for the
 * current), its utilisation as last reported (back to 0 when its window resets), the limits
 * sessions met (by how Claude Code said so), the attempts that parked their task at a limit, and
 * the tasks parked now whose session this daemon holds (it resumes them first): read back at
 * scrape time, so a task resumed or settled anywhere leaves the gauge. Labelled by account
 * name and pool, never by key or task.
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
  private readonly parkedNow: Gauge;
  /** Tasks this daemon parked, until a scrape reads them back no longer parked here. */
  private readonly parkedHere = new Map<string, { pool: string; account: string }>();

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
    this.parkedNow = new Gauge({
      name: "agentmesh_tasks_parked",
      help: "Tasks parked at their account's usage limit now whose agent session this daemon holds (it resumes them first); mesh-wide: sum by (account).",
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
      this.parkedNow.set({ pool, account }, 0);
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
    // An open account's window has reset: what was reported before no longer holds.
    if (state === "open") this.utilization.set({ account }, 0);
    else if (utilization !== undefined) this.utilization.set({ account }, utilization);
  }

  /** A session reported the account's utilisation (any rate-limit event that carries one). */
  setUtilization(account: string, utilization: number): void {
    if (Number.isFinite(utilization)) this.utilization.set({ account }, Math.max(0, utilization));
  }

  limitHit(account: string, source: string): void {
    this.hits.inc({ account, source });
  }

  parkedTask(pool: string, account: string, taskId: string): void {
    this.parked.inc({ pool, account });
    this.parkedHere.set(taskId, { pool, account });
    this.setParkedNow();
  }

  /**
   * Reads back every task parked here (`stillParked`: true while its record is queued, parked,
   * with its session on this daemon; undefined when it could not be read: kept as it was), and
   * sets the gauge from what is left.
   */
  async refreshParked(stillParked: (taskId: string) => Promise<boolean | undefined>): Promise<void> {
    const ids = [...this.parkedHere.keys()];
    const still = await Promise.all(ids.map((id) => stillParked(id).catch(() => undefined)));
    ids.forEach((id, i) => {
      if (still[i] === false) this.parkedHere.delete(id);
    });
    this.setParkedNow();
  }

  private setParkedNow(): void {
    const counts = new Map<string, { pool: string; account: string; n: number }>();
    for (const k of this.prepared) {
      const [pool, account] = k.split("\0");
      if (account !== undefined) counts.set(k, { pool: pool!, account, n: 0 });
    }
    for (const { pool, account } of this.parkedHere.values()) {
      const k = `${pool}\0${account}`;
      const c = counts.get(k) ?? { pool, account, n: 0 };
      c.n++;
      counts.set(k, c);
    }
    this.parkedNow.reset();
    for (const c of counts.values()) this.parkedNow.set({ pool: c.pool, account: c.account }, c.n);
  }
}
