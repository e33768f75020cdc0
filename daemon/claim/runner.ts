/**
 * The runner interface: how a claimed task is executed, a port kept with the execution that
 * calls it (runner/ implements it). The daemon owns claiming, fencing and records; a runner
 * only runs one attempt in a prepared working directory and reports back.
 */
import type { AccountLimit } from "../quota/index.js";
import type { RunnerEvent, TaskResultInfo, TaskSpec } from "../tasks/index.js";

export interface RunContext {
  spec: TaskSpec;
  attempt: number;
  workerId: string;
  pool: string;
  /** Working directory prepared for this attempt (a git worktree when the task has a repo). */
  workdir: string;
  /** A private directory for this attempt's scratch files (prompt file, logs). */
  scratchDir: string;
  /** Aborted on cancel, timeout, lost fence, or shutdown. `signal.reason` says which. */
  signal: AbortSignal;
  /** Agent session id from an earlier attempt, when the runner may resume it. */
  previousSessionId?: string;
  /** Emit a progress event (published on the task's event subject). Never throws. */
  emit(event: RunnerEvent): void;
}

export interface RunOutcome {
  status: "succeeded" | "failed" | "rate_limited";
  reason?: string;
  exitCode?: number | null;
  signal?: string | null;
  result?: TaskResultInfo;
  /** For rate_limited: wait this long before the next attempt. */
  retryAfterMs?: number;
  /** For rate_limited: the account's usage limit the agent met (the task is parked, see quota/). */
  limit?: AccountLimit;
  /** A failure that retrying cannot fix (the command does not exist, no API key): ends `failed`. */
  permanent?: boolean;
}

export interface Runner {
  readonly kind: string;
  /**
   * False for a runner that touches no files: its attempts get neither a workspace (no clone,
   * no worktree, `workdir` is empty) nor a scratch dir. Default true.
   */
  readonly needsWorkspace?: boolean;
  /** Runs one attempt. Must resolve (not reject) for task-level failure; reject only on bugs. */
  run(ctx: RunContext): Promise<RunOutcome>;
  /** Releases what the runner keeps between attempts (called once when the daemon stops). */
  close?(): Promise<void>;
  /**
   * Why this runner cannot work on this machine (e.g. its program is missing), or undefined.
   * A daemon does not offer an unavailable runner, so its tasks go to workers that can run them.
   */
  unavailable?(): Promise<string | undefined>;
}

/** Reasons carried by the AbortSignal given to runners. */
export type AbortReason = "cancelled" | "timeout" | "fenced" | "shutdown";
