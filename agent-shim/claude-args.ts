/** The Claude Code command line and environment for one session (see claude-code-facts.md). */
import type { ShimJob } from "./job.js";

export type SessionChoice = { resume: string } | { sessionId: string };

export function buildClaudeArgs(job: ShimJob, session: SessionChoice): string[] {
  const args = [
    "-p",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    // stream-json output without --verbose exits 1
    "--verbose",
    "--permission-mode",
    job.permissionMode,
  ];
  if ("resume" in session) args.push("--resume", session.resume);
  else args.push("--session-id", session.sessionId);
  if (job.model) args.push("--model", job.model);
  if (job.maxTurns !== undefined) args.push("--max-turns", String(job.maxTurns));
  if (job.maxBudgetUsd !== undefined) args.push("--max-budget-usd", String(job.maxBudgetUsd));
  if (job.settings) args.push("--settings", job.settings);
  // Variadic flags: safe because the prompt arrives on stdin, never as a positional argument.
  if (job.allowedTools.length) args.push("--allowedTools", ...job.allowedTools);
  if (job.disallowedTools.length) args.push("--disallowedTools", ...job.disallowedTools);
  if (job.appendSystemPrompt) args.push("--append-system-prompt", job.appendSystemPrompt);
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
