/**
 * Retention: attempt folders (`<root>/<task id>/a<n>`) idle for longer than the retention are
 * removed; git worktrees through git so the cache forgets them too.
 */
import { access, readdir, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";

export interface SweepOptions {
  workRoot: string;
  /** Per-attempt scratch folders laid out like the work root (`<task>/a<n>`). */
  scratchRoot?: string;
  retentionMs: number;
  /**
   * Folders holding per-task state (e.g. Claude Code's config and transcripts, `<root>/<task>`):
   * removed once the task's last work folder is gone, since nothing can resume without it.
   */
  taskStateRoots?: string[];
  /** In use by a running attempt: never removed, whatever its age. */
  isActive(workdir: string): boolean;
  removeWorktree(workdir: string): Promise<void>;
  now?: number;
}

async function children(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

/** Removes stale attempt folders; returns the work folders removed. */
export async function sweepAttempts(opts: SweepOptions): Promise<string[]> {
  const now = opts.now ?? Date.now();
  const stale = async (p: string): Promise<boolean> => {
    const st = await stat(p).catch(() => undefined);
    return st !== undefined && now - st.mtimeMs >= opts.retentionMs;
  };
  const removed: string[] = [];
  const roots = [opts.workRoot, ...(opts.scratchRoot ? [opts.scratchRoot] : [])];
  for (const root of roots) {
    for (const task of await children(root)) {
      const taskDir = join(root, task);
      for (const a of await children(taskDir)) {
        const p = join(taskDir, a);
        if (opts.isActive(join(opts.workRoot, task, a)) || !(await stale(p))) continue;
        if (root === opts.workRoot && (await exists(join(p, ".git")))) await opts.removeWorktree(p);
        else await rm(p, { recursive: true, force: true });
        if (root === opts.workRoot) removed.push(p);
      }
      // Only when empty; a folder that got a new attempt meanwhile stays.
      const gone = await rmdir(taskDir).then(
        () => true,
        () => false,
      );
      if (gone && root === opts.workRoot) {
        for (const stateRoot of opts.taskStateRoots ?? []) {
          await rm(join(stateRoot, task), { recursive: true, force: true });
        }
      }
    }
  }
  return removed;
}
