/**
 * Where an attempt runs. Without a repo: a fresh empty directory. With a repo: a git worktree on
 * branch `mesh/<task-id>` (see git-workspace.ts).
 */
import type { ResultBundle, TaskSpec } from "../tasks/index.js";

/** What an attempt may continue from beyond this host's cache. */
export interface PrepareCarry {
  /** The latest earlier attempt's commits as a bundle (possibly made on another host). */
  previous?: ResultBundle;
  /**
   * The results of the tasks this one needs (spec.needs), in task id order: a new task branch
   * starts at their merge (see merge.ts). Needs without commits are left out by the caller.
   */
  needs?: NeedResult[];
}

/** A need's result: its head, and the bundle to import it from when this cache lacks it. */
export interface NeedResult {
  taskId: string;
  head: string;
  bundle?: ResultBundle;
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

/** A conflict between two result branches, as `git merge-tree` found it. */
export interface BranchConflict {
  taskId: string;
  head: string;
  files: string[];
}

/** What the early conflict check asks of the repo caches (git-workspace.ts implements it). */
export interface BranchCompare {
  /** The paths a result bundle changes (`base..head`), sorted. */
  changedPaths(repo: string, bundle: ResultBundle, signal?: AbortSignal): Promise<string[]>;
  /**
   * `mine` merged with each of `others` (imported from their bundles when the cache lacks
   * them); branches of which one contains the other are not compared (they cannot conflict).
   */
  conflicts(
    repo: string,
    mine: NeedResult,
    others: readonly NeedResult[],
    signal?: AbortSignal,
  ): Promise<BranchConflict[]>;
}
