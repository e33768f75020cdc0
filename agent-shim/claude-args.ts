/** The Claude Code command line and environment for one session (see claude-code-facts.md). */
import type { ShimJob } from "./job.js";

export type SessionChoice = { resume: string } | { sessionId: string };

/**
 * Every value goes in the `--flag=value` form: a value can then never be read as another option,
 * whatever it holds (spec validation refuses option-like values too; this is the second wall).
 * Variadic flags are repeated once per value (Claude Code accumulates them). The prompt never
 * appears here: it arrives on stdin as a stream-json message.
 */
export function buildClaudeArgs(job: ShimJob, session: SessionChoice): string[] {
  const opt = (flag: string, value: string | number): string => `--${flag}=${value}`;
  const args = [
    "-p",
    opt("input-format", "stream-json"),
    opt("output-format", "stream-json"),
    // stream-json output without --verbose exits 1
    "--verbose",
    opt("permission-mode", job.permissionMode),
  ];
  if ("resume" in session) args.push(opt("resume", session.resume));
  else args.push(opt("session-id", session.sessionId));
  if (job.model) args.push(opt("model", job.model));
  if (job.maxTurns !== undefined) args.push(opt("max-turns", job.maxTurns));
  if (job.maxBudgetUsd !== undefined) args.push(opt("max-budget-usd", job.maxBudgetUsd));
  if (job.settings) args.push(opt("settings", job.settings));
  // The ownership hook's verdicts reach the task's events as hook_response lines.
  if (job.ownsHook) args.push("--include-hook-events");
  for (const t of job.allowedTools) args.push(opt("allowedTools", t));
  for (const t of job.disallowedTools) args.push(opt("disallowedTools", t));
  if (job.appendSystemPrompt) args.push(opt("append-system-prompt", job.appendSystemPrompt));
  return args;
}

export function buildClaudeEnv(
  job: ShimJob,
  base: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  Object.assign(env, job.env, {
    CLAUDE_CONFIG_DIR: job.configDir,
    CLAUDE_CODE_TMPDIR: job.tmpDir,
    XDG_RUNTIME_DIR: job.runtimeDir,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_AUTOUPDATER: "1",
  });
  if (job.maxRetries !== undefined) env.CLAUDE_CODE_MAX_RETRIES = String(job.maxRetries);
  return env;
}

/** The first stream-json input line: the task's prompt as one user message. */
export function userMessageLine(prompt: string): string {
  return `${JSON.stringify({ type: "user", message: { role: "user", content: [{ type: "text", text: prompt }] } })}\n`;
}

export function interruptLine(requestId: string): string {
  return `${JSON.stringify({ type: "control_request", request_id: requestId, request: { subtype: "interrupt" } })}\n`;
}
