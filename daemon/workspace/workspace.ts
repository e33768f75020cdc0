/**
 * Where an attempt runs. Without a repo: a fresh empty directory. With a repo: a git worktree on
 * branch `mesh/<task-id>` (see git-workspace.ts).
 */
import type { TaskSpec } from "../tasks/index.js";

export interface PreparedWorkspace {
  /** The directory the runner runs in. */
  workdir: string;
  /** The task branch, when the workspace is a git worktree. */
  branch?: string;
  /**
   * Called once after the runner finished. On success a git workspace commits what the agent
   * left uncommitted and pushes when the spec asks; returns the head commit.
   */
  finish(outcome: {
    succeeded: boolean;
    message: string;
    signal?: AbortSignal;
  }): Promise<{ headCommit?: string }>;
}

export interface WorkspaceProvider {
  prepare(spec: TaskSpec, attempt: number, signal: AbortSignal): Promise<PreparedWorkspace>;
  /** Removes workspaces older than the retention; safe to call any time. */
  sweep?(): Promise<void>;
}
