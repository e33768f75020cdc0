/**
 * How a session ended, judged once: success only on a result line with `is_error: false`;
 * an exhausted 429/529 is a rate limit (retried later, not a failure); other API errors fail
 * with their status; a session the shim stopped fails (hung) or is cancelled.
 */

import type { SessionEnd } from "./claude-session.js";
import { clip } from "./events.js";
import type { ShimOutcome, ShimResult } from "./protocol.js";

const RATE_LIMIT_STATUSES = new Set([429, 529]);
const REASON_TEXT = 300;

function resultInfo(end: SessionEnd): ShimResult | undefined {
  const r = end.result;
  if (!r) return end.sessionId ? { sessionId: end.sessionId } : undefined;
  const info: ShimResult = {
    sessionId: r.sessionId || end.sessionId,
    costUsd: r.costUsd,
    tokens: r.tokens,
    turns: r.turns,
    durationMs: r.durationMs,
    summary: r.summary,
    subtype: r.subtype,
    isError: r.isError,
  };
  if (r.model) info.model = r.model;
  if (r.terminalReason) info.terminalReason = r.terminalReason;
  return info;
}

function exitText(end: SessionEnd): string {
  return end.signal ? `was killed by ${end.signal}` : `exited with code ${end.exitCode ?? "?"}`;
}

export function classifyEnd(end: SessionEnd): ShimOutcome {
  const o = judge(end);
  // A limit met makes the session rate limited whatever else it said (an old version's text,
  // a rejected rate_limit_event, retries that ran out); cancelled and succeeded stay what they are.
  if (end.limit && (o.status === "failed" || o.status === "rate_limited") && o.failure === undefined) {
    o.status = "rate_limited";
    o.limit = end.limit;
    if (o.retryAfterMs === undefined && end.limit.retryAfterMs !== undefined)
      o.retryAfterMs = end.limit.retryAfterMs;
  }
  if (end.warning) o.warning = end.warning;
  // Without credentials Claude Code gives no code, only text ("Not logged in · Please run
  // /login", as its result or on stderr): the shim reads it here, once; the runner reads `failure`.
  if (o.status === "failed" && !o.failure && /not logged in/i.test(o.reason ?? ""))
    o.failure = "not_authenticated";
  return o;
}

function judge(end: SessionEnd): ShimOutcome {
  const base = { exitCode: end.exitCode, signal: end.signal };
  const result = resultInfo(end);
  const withResult = <T extends ShimOutcome>(o: T): T => (result ? { ...o, result } : o);

  if (end.spawnError) {
    const o: ShimOutcome = { ...base, status: "failed", reason: `cannot start claude: ${end.spawnError}` };
    if (end.spawnErrorCode === "ENOENT") o.failure = "claude_not_found";
    return withResult(o);
  }
  if (end.stop?.beforeResult) {
    const status = end.stop.kind === "hung" ? "failed" : "cancelled";
    return withResult({ ...base, status, reason: end.stop.detail });
  }
  const r = end.result;
  if (!r) {
    const tail = end.stderrTail.slice(-3).join(" | ");
    const reason = `claude ${exitText(end)} without a result line${tail ? `: ${clip(tail, REASON_TEXT).text}` : ""}`;
    return withResult({ ...base, status: "failed", reason });
  }
  if (!r.isError) return withResult({ ...base, status: "succeeded" });
  const text = clip(r.summary.replace(/\s+/g, " ").trim(), REASON_TEXT).text;
  const status = r.apiErrorStatus;
  if (status !== null) {
    const rateLimited = RATE_LIMIT_STATUSES.has(status);
    const o: ShimOutcome = {
      ...base,
      status: rateLimited ? "rate_limited" : "failed",
      apiErrorStatus: status,
      reason: `api error ${status}${status === 429 ? " (rate limited)" : status === 529 ? " (overloaded)" : ""}: ${text}`,
    };
    if (rateLimited && end.lastRetry?.retryDelayMs !== undefined) o.retryAfterMs = end.lastRetry.retryDelayMs;
    if (status === 401) o.failure = "not_authenticated";
    return withResult(o);
  }
  // An exhausted error without an API status still says subtype "success": name it plainly.
  const what = r.subtype === "success" ? "claude ended with an error" : `claude ended with ${r.subtype}`;
  return withResult({ ...base, status: "failed", reason: `${what}${text ? `: ${text}` : ""}` });
}
