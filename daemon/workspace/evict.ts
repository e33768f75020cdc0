/**
 * Retention of what the repo caches collect:
 * - a task branch `mesh/<id>` goes once no worktree of the task is left on this daemon (those go
 *   with `workspaces.retention`) and the task no longer needs it: its record is gone, or it is
 *   finished and past the task retention (`keepBranch` decides; without one every branch stays);
 * - a cache goes once it holds no task branch and no worktree and has not been used for
 *   `workspaces.cacheRetention` (0: caches stay).
 * Callers hold the cache's lock around `evictCache`.
 */
import { access, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Git } from "./git-cmd.js";
import { CACHE_USED_FILE, cacheRepo } from "./repo-cache.js";

export const TASK_BRANCH_PREFIX = "refs/heads/mesh/";

/** True while the task may still need its branch (e.g. a retry continues it). */
export type KeepBranch = (taskId: string) => Promise<boolean>;

export interface EvictOptions {
  git: Git;
  workRoot: string;
  cacheRetentionMs: number;
  keepBranch?: KeepBranch;
  now?: number;
}

export interface Evicted {
  branches: string[];
  cacheRemoved: boolean;
}

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

/** The caches under `reposRoot` (folders named by `cacheDirFor`). */
export async function listCaches(reposRoot: string): Promise<string[]> {
  const entries = await readdir(reposRoot, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && /^[0-9a-f]{24}$/.test(e.name))
    .map((e) => join(reposRoot, e.name));
}

/** The worktrees a cache knows of, with the branch each has checked out (from their HEAD files). */
export async function cacheWorktrees(cache: string): Promise<Array<{ privateDir: string; branch?: string }>> {
  const root = join(cache, "worktrees");
  const names = await readdir(root).catch(() => [] as string[]);
  const out: Array<{ privateDir: string; branch?: string }> = [];
  for (const name of names) {
    const privateDir = join(root, name);
    const head = await readFile(join(privateDir, "HEAD"), "utf8").catch(() => "");
    const branch = /^ref: (refs\/heads\/.+)$/m.exec(head)?.[1]?.trim();
    out.push(branch ? { privateDir, branch } : { privateDir });
  }
  return out;
}

export async function evictCache(cache: string, opts: EvictOptions): Promise<Evicted> {
  const repo = cacheRepo(cache);
  const result: Evicted = { branches: [], cacheRemoved: false };
  if (!(await exists(join(cache, "HEAD")))) return result;
  await opts.git.tryRun(["worktree", "prune"], { repo });
  const worktrees = await cacheWorktrees(cache);
  const checkedOut = new Set(worktrees.map((w) => w.branch).filter((b) => b !== undefined));
  const refs = (
    (await opts.git.tryRun(["for-each-ref", "--format=%(refname)", TASK_BRANCH_PREFIX], { repo })) ?? ""
  )
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  let kept = 0;
  for (const ref of refs) {
    const taskId = ref.slice(TASK_BRANCH_PREFIX.length);
    const keep =
      checkedOut.has(ref) ||
      (await exists(join(opts.workRoot, taskId))) ||
      !opts.keepBranch ||
      (await opts.keepBranch(taskId).catch(() => true));
    if (keep) {
      kept++;
      continue;
    }
    if ((await opts.git.tryRun(["update-ref", "-d", ref], { repo })) !== undefined) result.branches.push(ref);
    else kept++;
  }
  if (kept > 0 || worktrees.length > 0 || opts.cacheRetentionMs <= 0) return result;
  const used = await stat(join(cache, CACHE_USED_FILE))
    .catch(() => stat(cache))
    .catch(() => undefined);
  if (used && (opts.now ?? Date.now()) - used.mtimeMs >= opts.cacheRetentionMs) {
    await rm(cache, { recursive: true, force: true });
    result.cacheRemoved = true;
  }
  return result;
}
