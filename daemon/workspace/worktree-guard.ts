/**
 * What the daemon's git trusts about an attempt's worktree, and the check that the agent left
 * it so. Right after `git worktree add` (before any agent ran) the daemon reads the worktree's
 * `.git` file once: it names the worktree's private git dir `<cache>/worktrees/<name>`. After
 * the run the daemon's git never reads that file again (it names the git dir, the common dir
 * and the work tree itself), and refuses to touch the attempt when the file, the folders or the
 * cache's config are no longer what it made (an agent pointing `.git` at a git dir of its own
 * with hooks and config of its choosing, or configuring the cache).
 */
import { lstat, readFile } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { cacheConfigChange } from "./cache-config.js";
import type { Git, GitRepo } from "./git-cmd.js";

export interface TrustedWorktree {
  /** The attempt's folder. */
  workdir: string;
  /** The bare repo cache the worktree belongs to. */
  cache: string;
  /** `<cache>/worktrees/<name>`, as git made it. */
  privateDir: string;
  /** The `.git` file's exact content as git wrote it. */
  gitFile: string;
  /**
   * The private dir's `commondir` file as git wrote it. git 2.39 still reads it for refs even
   * when `GIT_COMMON_DIR` is set, so a rewrite would send the branch update elsewhere.
   */
  commonDirFile: string;
}

/** How the daemon's git addresses a worktree: everything explicit, nothing read from `.git`. */
export const worktreeRepo = (wt: TrustedWorktree): GitRepo => ({
  gitDir: wt.privateDir,
  commonDir: wt.cache,
  workTree: wt.workdir,
});

/** `gitdir: <path>` of a `.git` file, or undefined. */
export function parseGitFile(text: string): string | undefined {
  return /^gitdir: (.+)$/m.exec(text)?.[1]?.trim() || undefined;
}

/** Whether `privateDir` is `<cache>/worktrees/<name>`. */
export function isPrivateDirOf(cache: string, privateDir: string): boolean {
  const p = resolve(privateDir);
  return dirname(p) === join(resolve(cache), "worktrees") && basename(p) !== "" && !p.includes(`${sep}..`);
}

/** Reads the fresh worktree's `.git` file; call right after `git worktree add`. */
export async function trustWorktree(cache: string, workdir: string): Promise<TrustedWorktree> {
  const gitFile = await readFile(join(workdir, ".git"), "utf8");
  const privateDir = parseGitFile(gitFile);
  if (!privateDir || !isPrivateDirOf(cache, privateDir)) {
    throw new Error(`git made an unexpected worktree link in ${join(workdir, ".git")}: ${gitFile.trim()}`);
  }
  const commonDirFile = await readFile(join(privateDir, "commondir"), "utf8");
  return { workdir, cache, privateDir: resolve(privateDir), gitFile, commonDirFile };
}

/** Why the worktree can no longer be trusted, or undefined when it is as the daemon made it. */
export async function worktreeTampering(git: Git, wt: TrustedWorktree): Promise<string | undefined> {
  const dir = await lstat(wt.workdir).catch(() => undefined);
  if (!dir?.isDirectory()) return `the worktree ${wt.workdir} was replaced or removed`;
  const dotGit = join(wt.workdir, ".git");
  const gitStat = await lstat(dotGit).catch(() => undefined);
  if (!gitStat?.isFile()) return `the worktree's .git file ${dotGit} was replaced or removed`;
  const text = await readFile(dotGit, "utf8").catch(() => undefined);
  if (text !== wt.gitFile) {
    return `the worktree's .git file was rewritten (it pointed at ${wt.privateDir}, now: ${JSON.stringify(
      (text ?? "").trim().slice(0, 200),
    )})`;
  }
  const priv = await lstat(wt.privateDir).catch(() => undefined);
  if (!priv?.isDirectory()) return `the worktree's git dir ${wt.privateDir} was replaced or removed`;
  const common = await readFile(join(wt.privateDir, "commondir"), "utf8").catch(() => undefined);
  if (common !== wt.commonDirFile) return `the worktree's ${join(wt.privateDir, "commondir")} was rewritten`;
  const cache = await lstat(wt.cache).catch(() => undefined);
  if (!cache?.isDirectory()) return `the repo cache ${wt.cache} was replaced or removed`;
  return cacheConfigChange(git, wt.cache);
}
