/**
 * The mock at the service's limits, as reply builders (see claude-code-facts.md "Limits and
 * quota"). Two families, as the real service sends them:
 *
 * - API keys: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
 *   remaining,reset}` (reset in RFC 3339) on every answer, and `retry-after` (seconds) on a 429.
 *   `apiKeyLimited({ retryAfterSeconds })` is the 429; `withApiKeyHeaders(reply, ...)` adds the
 *   counters to any answer.
 * - Subscription logins (OAuth): `anthropic-ratelimit-unified-status` (allowed |
 *   allowed_warning | rejected), `-reset` (epoch seconds), `-representative-claim`
 *   (five_hour | seven_day ...), and per window `-5h-utilization` / `-5h-reset`,
 *   `-7d-utilization` / `-7d-reset`. `subscriptionRejected({ resetAt })` is the 429 Claude
 *   Code turns into a `rate_limit_event` (status rejected); `subscriptionWarning(reply, ...)`
 *   marks a normal answer `allowed_warning` with a utilisation (Claude Code reports it as a
 *   `rate_limit_event` too, when the utilisation passes its own thresholds).
 *
 * Claude Code reads the unified headers only when it is logged in with a subscription: run it
 * with `CLAUDE_CODE_OAUTH_TOKEN` (see `oauthClaudeEnv`) for those, with an API key for the others.
 */
import type { MockReply } from "./replies.js";

export type UnifiedWindow = "five_hour" | "seven_day" | "seven_day_opus";

const CLAIM_ABBREV: Record<UnifiedWindow, string> = {
  five_hour: "5h",
  seven_day: "7d",
  seven_day_opus: "7d_opus",
};

const epochSeconds = (ms: number): number => Math.ceil(ms / 1000);

/** The unified headers for one window at `utilization` (0..1) that resets at `resetAt` (epoch ms). */
export function unifiedHeaders(opts: {
  status: "allowed" | "allowed_warning" | "rejected";
  resetAt: number;
  window?: UnifiedWindow;
  utilization?: number;
}): Record<string, string> {
  const window = opts.window ?? "five_hour";
  const abbrev = CLAIM_ABBREV[window];
  const reset = String(epochSeconds(opts.resetAt));
  return {
    "anthropic-ratelimit-unified-status": opts.status,
    "anthropic-ratelimit-unified-reset": reset,
    "anthropic-ratelimit-unified-representative-claim": window,
    "anthropic-ratelimit-unified-fallback": "unavailable",
    [`anthropic-ratelimit-unified-${abbrev}-status`]: opts.status,
    [`anthropic-ratelimit-unified-${abbrev}-reset`]: reset,
    [`anthropic-ratelimit-unified-${abbrev}-utilization`]: String(
      opts.utilization ?? (opts.status === "rejected" ? 1 : 0.1),
    ),
  };
}

/** A subscription's window is used up until `resetAt` (epoch ms): 429 with the unified headers. */
export function subscriptionRejected(opts: { resetAt: number; window?: UnifiedWindow }): MockReply {
  return {
    kind: "error",
    status: 429,
    errorType: "rate_limit_error",
    message: "This request would exceed your account's rate limit. Please try again later.",
    headers: unifiedHeaders({ status: "rejected", ...opts }),
  };
}

/** `reply` (an answer) sent as `allowed_warning` at `utilization` of a window resetting at `resetAt`. */
export function subscriptionWarning(
  reply: MockReply,
  opts: { utilization: number; resetAt: number; window?: UnifiedWindow },
): MockReply {
  if (reply.kind === "stall") return reply;
  return {
    ...reply,
    headers: { ...reply.headers, ...unifiedHeaders({ status: "allowed_warning", ...opts }) },
  };
}

/** The API-key counters; `remaining` 0 and `resetAt` in the future describe an exhausted limit. */
export function apiKeyHeaders(opts: {
  limit?: number;
  remaining: number;
  resetAt: number;
}): Record<string, string> {
  const reset = new Date(opts.resetAt).toISOString();
  const limit = String(opts.limit ?? 50);
  const out: Record<string, string> = {};
  for (const what of ["requests", "tokens", "input-tokens", "output-tokens"]) {
    out[`anthropic-ratelimit-${what}-limit`] = limit;
    out[`anthropic-ratelimit-${what}-remaining`] = String(opts.remaining);
    out[`anthropic-ratelimit-${what}-reset`] = reset;
  }
  return out;
}

/** An API key over its limit: 429, `retry-after` seconds and the counters at zero. */
export function apiKeyLimited(opts: { retryAfterSeconds: number; now?: number }): MockReply {
  const now = opts.now ?? Date.now();
  return {
    kind: "error",
    status: 429,
    errorType: "rate_limit_error",
    message: "Number of request tokens has exceeded your per-minute rate limit",
    retryAfterSeconds: opts.retryAfterSeconds,
    headers: apiKeyHeaders({ remaining: 0, resetAt: now + opts.retryAfterSeconds * 1000 }),
  };
}

/** `reply` with the API-key counters added. */
export function withApiKeyHeaders(
  reply: MockReply,
  opts: { limit?: number; remaining: number; resetAt: number },
): MockReply {
  if (reply.kind === "stall") return reply;
  return { ...reply, headers: { ...reply.headers, ...apiKeyHeaders(opts) } };
}
