/**
 * Every way Claude Code reports a usage limit, read into one typed report (claude-code-facts.md
 * "Limits and quota"): a `rate_limit_event` (subscription logins: `rejected` with `resetsAt` in
 * epoch seconds and `rateLimitType`, or `allowed_warning` with a `utilization`), a result with
 * `is_error` and `api_error_status` 429, `api_retry` lines with `error: "rate_limit"` that ran
 * out, and older versions' result text `Claude AI usage limit reached|<epoch>`. The daemon reads
 * only these fields, never Claude Code's text.
 */

/** Where the report came from. */
export type LimitSource = "rate_limit_event" | "api_error" | "api_retry" | "usage_limit_text";

export interface LimitReport {
  /** `rejected`: no more requests until `resetsAt`; `warning`: still allowed, near the limit. */
  state: "rejected" | "warning";
  source: LimitSource;
  /** When the window resets (epoch ms), when Claude Code said. */
  resetsAt?: number;
  /** The window: `five_hour`, `seven_day`, ... (Claude Code's `rateLimitType`). */
  window?: string;
  /** Reported utilisation of the window, 0..1. */
  utilization?: number;
  /** Claude Code's last retry delay for a 429 (API keys: from `retry-after`). */
  retryAfterMs?: number;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** Epoch seconds (Claude Code's unit) or milliseconds to milliseconds. */
export function epochMs(v: number): number {
  return v < 1e11 ? Math.round(v * 1000) : Math.round(v);
}

/** The event a `rate_limit_event` line makes; `allowed` too (it ends a warning). */
export interface RateLimitEventInfo {
  status: "allowed" | "allowed_warning" | "rejected";
  resetsAt?: number;
  window?: string;
  utilization?: number;
}

export function rateLimitInfo(msg: Obj): RateLimitEventInfo | undefined {
  const info = isObj(msg.rate_limit_info) ? msg.rate_limit_info : undefined;
  if (!info) return undefined;
  const s = str(info.status);
  if (s !== "allowed" && s !== "allowed_warning" && s !== "rejected") return undefined;
  const out: RateLimitEventInfo = { status: s };
  const resets = num(info.resetsAt);
  if (resets !== undefined) out.resetsAt = epochMs(resets);
  const window = str(info.rateLimitType);
  if (window) out.window = window;
  const u = num(info.utilization);
  if (u !== undefined) out.utilization = u > 1 ? u / 100 : u;
  return out;
}

const USAGE_LIMIT_TEXT = /Claude AI usage limit reached\|(\d{9,13})/;

/** The old result text: `Claude AI usage limit reached|<epoch>`; the reset in epoch ms. */
export function usageLimitText(text: string): number | undefined {
  const m = USAGE_LIMIT_TEXT.exec(text);
  return m ? epochMs(Number(m[1])) : undefined;
}

/** What one session said about limits so far; `report()` names the verdict. */
export class LimitTracker {
  private rejected: RateLimitEventInfo | undefined;
  private warning: RateLimitEventInfo | undefined;
  private retry: { delayMs?: number; attempt: number; max?: number } | undefined;
  private textReset: number | undefined;

  onRateLimitEvent(info: RateLimitEventInfo): void {
    if (info.status === "rejected") this.rejected = info;
    else if (info.status === "allowed_warning") this.warning = info;
    else this.warning = undefined;
  }

  onApiRetry(e: {
    status: number | null;
    error?: string;
    attempt: number;
    maxRetries?: number;
    retryDelayMs?: number;
  }): void {
    if (e.status !== 429 && e.error !== "rate_limit") return;
    this.retry = { attempt: e.attempt };
    if (e.retryDelayMs !== undefined) this.retry.delayMs = e.retryDelayMs;
    if (e.maxRetries !== undefined) this.retry.max = e.maxRetries;
  }

  onText(text: string): void {
    const t = usageLimitText(text);
    if (t !== undefined) this.textReset = t;
  }

  /** The warning seen last (undefined once an `allowed` event cleared it). */
  get lastWarning(): LimitReport | undefined {
    const w = this.warning;
    if (!w) return undefined;
    return withInfo({ state: "warning", source: "rate_limit_event" }, w);
  }

  /**
   * The rejection this session met, if any: `apiErrorStatus` is the result's (429 makes any
   * session a limited one); `ended` says the session is over (exhausted retries count then).
   */
  rejection(apiErrorStatus: number | null, ended: boolean): LimitReport | undefined {
    let r: LimitReport | undefined;
    if (this.rejected) r = withInfo({ state: "rejected", source: "rate_limit_event" }, this.rejected);
    else if (this.textReset !== undefined)
      r = { state: "rejected", source: "usage_limit_text", resetsAt: this.textReset };
    else if (apiErrorStatus === 429) r = { state: "rejected", source: "api_error" };
    else if (ended && this.retry && (this.retry.max === undefined || this.retry.attempt >= this.retry.max))
      r = { state: "rejected", source: "api_retry" };
    if (r && this.retry?.delayMs !== undefined) r.retryAfterMs = this.retry.delayMs;
    return r;
  }
}

function withInfo(r: LimitReport, info: RateLimitEventInfo): LimitReport {
  if (info.resetsAt !== undefined) r.resetsAt = info.resetsAt;
  if (info.window) r.window = info.window;
  if (info.utilization !== undefined) r.utilization = info.utilization;
  return r;
}
