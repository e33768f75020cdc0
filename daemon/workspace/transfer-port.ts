/**
 * What a git workspace needs from the mesh's bundle store (implemented in daemon/transfer/):
 * bring a shipped commit into a repo cache, and store an attempt's task branch as a bundle.
 */
import type { ResultBundle } from "../tasks/index.js";

export interface RepoTransfer {
  /** Makes `commit` of the mesh repo `repoId` present in the bare cache `cache` (verified bundles). */
  importCommit(cache: string, repoId: string, commit: string, signal?: AbortSignal): Promise<void>;
  /** The repo identity (first-parent root commit) of `commit` in `cache`. */
  repoIdOf(cache: string, commit: string): Promise<string>;
  /** Stores `base..head` of `cache` as the attempt's result bundle. */
  storeResult(
    cache: string,
    r: {
      repoId: string;
      base: string;
      head: string;
      taskId: string;
      attempt: number;
      /** What the bundle requires (default: the base): a merge commit requires every parent. */
      requires?: string[];
    },
  ): Promise<ResultBundle>;
}
