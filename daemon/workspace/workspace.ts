/**
 * Where an attempt runs. Without a repo: a fresh empty directory. With a repo: a git worktree on
 * branch `mesh/<task-id>` (see git-workspace.ts).
 */
import type { ResultBundle, TaskSpec } from "../tasks/index.js";

/** What an attempt may continue from beyond this host's cache. */
export interface PrepareCarry {
  /** The latest earlier attempt's commits as a bundle (possibly made on another host). */
  previous?: ResultBundle;
}

export interface PreparedWorkspace {
  /** The directory the runner runs in. */
  workdir: string;
  /** The task branch, when the workspace is a git worktree. */
  branch?: string;
  /**
   * Called once after the runner finished. On success a git workspace commits what the agent
   * left uncommitted and pushes when the spec asks; returns the head commit. A spec with `owns`
   * passes the result-time gate first: a change outside it throws OwnsViolationError, or is
   * returned in `ownsViolations` under `ownsViolation: report`.
   */
  finish(outcome: {
    succeeded: boolean;
    message: string;
    signal?: AbortSignal;
  }): Promise<{ headCommit?: string; bundle?: ResultBundle; ownsViolations?: string[] }>;
}

export interface WorkspaceProvider {
  prepare(
    spec: TaskSpec,
    attempt: number,
    signal: AbortSignal,
    carry?: PrepareCarry,
  ): Promise<PreparedWorkspace>;
  /** Removes workspaces older than the retention; safe to call any time. */
  sweep?(): Promise<void>;
  /** Stops its background work (the sweep timer) and waits for a sweep in progress; memoized. */
  close?(): Promise<void>;
}
