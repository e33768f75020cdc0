/**
 * The shim's work for one job: prepare the per-task folders, pick a new or resumed session,
 * run Claude Code, heartbeat while it runs, and judge the outcome. Cancellation arrives as an
 * AbortSignal (the entry point maps SIGTERM and a vanished parent onto it).
 */
import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import type { Logger } from "pino";
import { buildClaudeEnv, type SessionChoice } from "./claude-args.js";
import { ClaudeSession, type ClaudeSessionDeps, type SessionEnd } from "./claude-session.js";
import type { AgentEvent } from "./events.js";
import type { ShimJob } from "./job.js";
import { classifyEnd } from "./outcome.js";
import { installMeshTask } from "./mesh-task-install.js";
import { installOwnsHook } from "./owns-hook-install.js";
import { SHIM_PROTOCOL_VERSION, type ShimLine, type ShimOutcome } from "./protocol.js";
import type { Redactor } from "./redact.js";
import { prepareResume } from "./transcript.js";

export interface RunShimDeps {
  log: Logger;
  redact: Redactor;
  /** Writes one protocol line (the caller serialises and redacts). */
  write: (line: ShimLine) => void;
  /** The environment Claude Code inherits (the shim's own, normally). */
  env: Readonly<Record<string, string | undefined>>;
  signal: AbortSignal;
  spawn?: ClaudeSessionDeps["spawn"];
}

function abortDetail(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  if (typeof r === "string") return r;
  if (r instanceof Error && r.name !== "AbortError") return r.message;
  return "cancelled";
}

async function chooseSession(job: ShimJob, deps: RunShimDeps): Promise<SessionChoice> {
  const fresh = { sessionId: job.sessionId ?? randomUUID() };
  if (!job.resumeSessionId) return fresh;
  const check = await prepareResume(job.configDir, job.workdir, job.resumeSessionId);
  if (check.ok) {
    if (check.copiedFrom)
      deps.log.info({ from: check.copiedFrom }, "copied transcript for resume into this cwd");
    return { resume: job.resumeSessionId };
  }
  deps.log.warn(
    { sessionId: job.resumeSessionId, reason: check.reason },
    "cannot resume; starting a new session",
  );
  const event: AgentEvent = { kind: "resume_skipped", sessionId: job.resumeSessionId, reason: check.reason };
  deps.write({ type: "event", event });
  return fresh;
}

export async function runShim(job: ShimJob, deps: RunShimDeps): Promise<ShimOutcome> {
  const { log, signal } = deps;
  await mkdir(job.configDir, { recursive: true, mode: 0o700 });
  await mkdir(job.tmpDir, { recursive: true, mode: 0o700 });
  await mkdir(job.runtimeDir, { recursive: true, mode: 0o700 });
  const choice = await chooseSession(job, deps);
  if (signal.aborted) {
    return { status: "cancelled", reason: abortDetail(signal), exitCode: null, signal: null };
  }

  // The ownership hook or no session at all: a task with owns never runs unguarded.
  let hook: Awaited<ReturnType<typeof installOwnsHook>>;
  try {
    hook = await installOwnsHook(job);
  } catch (err) {
    const reason = `cannot install the ownership hook: ${(err as Error).message}`;
    log.error({ err: (err as Error).message }, reason);
    return { status: "failed", reason, exitCode: null, signal: null };
  }
  const sessionJob: ShimJob = hook ? { ...job, settings: hook.settings } : job;
  const env = { ...buildClaudeEnv(job, deps.env), ...(hook?.env ?? {}) };
  try {
    Object.assign(env, await installMeshTask(job, env));
  } catch (err) {
    const reason = `cannot install mesh-task: ${(err as Error).message}`;
    log.error({ err: (err as Error).message }, reason);
    return { status: "failed", reason, exitCode: null, signal: null };
  }
  const session = new ClaudeSession(sessionJob, env, {
    log,
    redact: deps.redact,
    onEvent: (event) => deps.write({ type: "event", event }),
    ...(deps.spawn ? { spawn: deps.spawn } : {}),
  });
  const onAbort = (): void => void session.stop("cancelled", abortDetail(signal));
  signal.addEventListener("abort", onAbort, { once: true });
  const heartbeat = setInterval(() => {
    deps.write({
      type: "heartbeat",
      at: new Date().toISOString(),
      idleMs: session.idleMs(),
      pid: session.pid,
    });
  }, job.heartbeatMs);

  let end: SessionEnd;
  try {
    session.start(choice);
    const started: ShimLine = {
      type: "started",
      v: SHIM_PROTOCOL_VERSION,
      pid: session.pid,
      resumed: "resume" in choice,
      sessionId: "resume" in choice ? choice.resume : choice.sessionId,
    };
    deps.write(started);
    end = await session.done;
  } finally {
    clearInterval(heartbeat);
    signal.removeEventListener("abort", onAbort);
  }
  const outcome = classifyEnd(end);
  log.info({ status: outcome.status, reason: outcome.reason, exitCode: end.exitCode }, "session ended");
  return outcome;
}
