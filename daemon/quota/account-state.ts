/**
 * One Claude account's limit state as kept in KV bucket `mesh-accounts` (key: the account
 * name, daemon config `claude.account`), and the pure rule for changing it. Absent, or its
 * `until` passed: the account is open. `rejected`: the service refused it until `until`
 * (every daemon stops starting sessions for it); `warning`: its reported utilisation passed
 * `claude.warnUtilization`, so new starts stop too until the window resets. Only the account
 * name appears here, never a key.
 */

/** A usage limit a session met, as the runner reports it (mesh-shim's LimitReport). */
export interface AccountLimit {
  state: "rejected" | "warning";
  /** `rate_limit_event` | `api_error` | `api_retry` | `usage_limit_text`. */
  source: string;
  /** When the window resets (epoch ms), when known. */
  resetsAt?: number;
  window?: string;
  utilization?: number;
  retryAfterMs?: number;
}

export interface AccountState {
  v: 1;
  account: string;
  state: "rejected" | "warning";
  /** ISO time the window resets: starts resume after it (plus jitter). */
  until: string;
  /** The window Claude Code named (`five_hour`, `seven_day`, ...), when it did. */
  window?: string;
  /** ISO time this state was first seen. */
  since: string;
  /** The worker that recorded it. */
  by: string;
  source: string;
  utilization?: number;
}

export type AccountStateName = "open" | AccountState["state"];

/** A valid account name: also a KV key and a subject token. */
export const ACCOUNT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function isActive(s: AccountState | undefined, now: number): s is AccountState {
  return !!s && Date.parse(s.until) > now;
}

/** The state's name at `now`: `open` once its `until` passed. */
export function stateAt(s: AccountState | undefined, now: number): AccountStateName {
  return isActive(s, now) ? s.state : "open";
}

export interface ReportPolicy {
  /** Utilisation (0..1) from which a warning stops new starts; undefined: warnings only inform. */
  warnUtilization?: number | undefined;
  /** A rejection without a reset time or retry delay: paused this long. */
  fallbackPauseMs: number;
}

/**
 * The state to write after `limit` was met, or undefined when the current one already says as
 * much. A rejection replaces a warning; a later reset wins over an earlier one; a warning never
 * replaces an active rejection, and counts only from `warnUtilization`.
 */
export function nextAccountState(
  cur: AccountState | undefined,
  account: string,
  limit: AccountLimit,
  policy: ReportPolicy,
  by: string,
  now: number,
): AccountState | undefined {
  const active = isActive(cur, now) ? cur : undefined;
  let until: number;
  if (limit.state === "rejected") {
    until = limit.resetsAt ?? now + (limit.retryAfterMs ?? policy.fallbackPauseMs);
    if (until <= now) until = now + policy.fallbackPauseMs;
    if (active?.state === "rejected" && Date.parse(active.until) >= until) return undefined;
  } else {
    const w = policy.warnUtilization;
    if (w === undefined || limit.utilization === undefined || limit.utilization < w) return undefined;
    if (limit.resetsAt === undefined || limit.resetsAt <= now) return undefined;
    until = limit.resetsAt;
    if (active?.state === "rejected") return undefined;
    if (active?.state === "warning" && Date.parse(active.until) >= until) return undefined;
  }
  const next: AccountState = {
    v: 1,
    account,
    state: limit.state,
    until: new Date(until).toISOString(),
    since: active?.state === limit.state ? active.since : new Date(now).toISOString(),
    by,
    source: limit.source,
  };
  if (limit.window) next.window = limit.window;
  if (limit.utilization !== undefined) next.utilization = limit.utilization;
  return next;
}

/** A stored state, or undefined when the value is not one (it is then ignored). */
export function parseAccountState(value: unknown): AccountState | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const s = value as Partial<AccountState>;
  if (s.v !== 1 || typeof s.account !== "string") return undefined;
  if (s.state !== "rejected" && s.state !== "warning") return undefined;
  if (typeof s.until !== "string" || Number.isNaN(Date.parse(s.until))) return undefined;
  if (typeof s.since !== "string" || typeof s.by !== "string") return undefined;
  return s as AccountState;
}

/** The most jitter a pause gets: `jitterMs`, but never more than the pause itself (short API-key pauses). */
export function jitterCap(s: AccountState, jitterMs: number): number {
  const length = Date.parse(s.until) - Date.parse(s.since);
  return Math.max(0, Math.min(jitterMs, Number.isFinite(length) ? length : jitterMs));
}
