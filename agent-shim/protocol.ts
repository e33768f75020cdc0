/**
 * What `mesh-shim` prints on stdout: one JSON object per line, read by the daemon's
 * ClaudeRunner. Logs go to stderr; stdout carries only these lines.
 *
 *   {"type":"started","pid":<claude pid>,"sessionId":"…","resumed":false}
 *   {"type":"event","event":{"kind":"tool_use","tool":"Write",…}}
 *   {"type":"heartbeat","at":"<iso>","idleMs":1200,"pid":<claude pid>}
 *   {"type":"outcome","outcome":{"status":"succeeded",…}}     (always the last line)
 */
import type { AgentEvent, TokenCounts } from "./events.js";
import type { LimitReport } from "./limits.js";

export const SHIM_PROTOCOL_VERSION = 1;

export type ShimStatus = "succeeded" | "failed" | "rate_limited" | "cancelled";

export interface ShimResult {
  sessionId?: string;
  model?: string;
  costUsd?: number;
  tokens?: TokenCounts;
  turns?: number;
  durationMs?: number;
  summary?: string;
  subtype?: string;
  isError?: boolean;
  terminalReason?: string;
}

/**
 * A failure retrying cannot fix, as a field the runner reads (never parsed back from `reason`):
 * `claude_not_found` the program could not be started (ENOENT); `not_authenticated` Claude
 * Code has no usable credentials (API status 401, or its "Not logged in" result).
 */
export type ShimFailure = "claude_not_found" | "not_authenticated";

export interface ShimOutcome {
  status: ShimStatus;
  reason?: string;
  failure?: ShimFailure;
  /** The API status of an exhausted API error (429, 529, 401, 500, ...). */
  apiErrorStatus?: number;
  /** For rate_limited: Claude Code's last retry delay, when it reported one. */
  retryAfterMs?: number;
  /** The account's usage limit this session met (rate_limited): typed, for the daemon's pause. */
  limit?: LimitReport;
  /** The last utilisation warning the session was given (any status). */
  warning?: LimitReport;
  /** How Claude Code ended (null when it never started or died by a signal). */
  exitCode: number | null;
  signal: string | null;
  result?: ShimResult;
}

export type ShimLine =
  | { type: "started"; v: number; pid: number | null; sessionId?: string; resumed: boolean }
  | { type: "event"; event: AgentEvent }
  | { type: "heartbeat"; at: string; idleMs: number; pid: number | null }
  | { type: "outcome"; outcome: ShimOutcome };

/** What the parent writes on the shim's stdin (after the job path) to ask for a graceful stop. */
export const CANCEL_LINE = "cancel";

/** Exit codes of the shim process; the outcome line is authoritative, these are a fallback. */
export const SHIM_EXIT = {
  succeeded: 0,
  failed: 1,
  usage: 2,
  rate_limited: 75, // EX_TEMPFAIL
  cancelled: 130,
} as const;

export function parseShimLine(line: string): ShimLine | undefined {
  const t = line.trim();
  if (!t.startsWith("{")) return undefined;
  try {
    const v: unknown = JSON.parse(t);
    if (typeof v !== "object" || v === null || !("type" in v)) return undefined;
    const type = (v as { type: unknown }).type;
    if (type === "started" || type === "event" || type === "heartbeat" || type === "outcome")
      return v as ShimLine;
    return undefined;
  } catch {
    return undefined;
  }
}
