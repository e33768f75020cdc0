/**
 * Git worktrees for tasks with a repo. Each origin is cloned once per daemon (bare, under
 * `<stateDir>/repos/<hash>`) and fetched before each task; each attempt gets a fresh worktree
 * `<stateDir>/work/<task id>/a<n>` on branch `mesh/<task id>`. A later attempt continues on that
 * branch, so committed work is kept; whatever an earlier attempt left in its folder is never
 * reused. On success, uncommitted changes are committed and the branch is pushed to the origin
 * when the task asks. All git work on one cache is serialized.
 */
import { mkdir, readFile, rm, utimes } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { errorMessage, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import type { TaskSpec } from "../tasks/spec.js";
import { Git, GitCommandError } from "./git-cmd.js";
import { KeyedLock } from "./keyed-lock.js";
import {
  cacheDirFor,
  parseRepo,
  type RepoSource,
  resolveBase,
  syncCache,
  validateRef,
} from "./repo-cache.js";
import { sweepAttempts } from "./sweep.js";
import type { PreparedWorkspace, WorkspaceProvider } from "./workspace.js";

export const DEFAULT_AUTHOR = { name: "agent-mesh", email: "mesh@localhost" } as const;

export interface GitWorkspaceOptions {
  /** Caches go to `<stateDir>/repos`, worktrees to `<stateDir>/work`. */
  stateDir: string;
  /** Idle worktrees older than this are removed by `sweep()`. */
  retentionMs: number;
  log: Logger;
  /** The environment git runs with (default: the daemon's). */
  env?: NodeJS.ProcessEnv;
  /** Author of the commits the mesh makes when git config names nobody. */
  author?: { name: string; email: string };
  /** Network operations (fetch, push) are killed after this long without output. */
  networkTimeoutMs?: number;
}

export const taskBranch = (taskId: string): string => `mesh/${taskId}`;

export class GitWorkspaceProvider implements WorkspaceProvider {
  readonly reposRoot: string;
  readonly workRoot: string;
  private readonly git: Git;
  private readonly lock = new KeyedLock();
  private readonly active = new Set<string>();
  private readonly log: Logger;
  private readonly author: { name: string; email: string };
  private readonly networkTimeoutMs: number;

  constructor(private readonly opts: GitWorkspaceOptions) {
    this.reposRoot = join(resolve(opts.stateDir), "repos");
    this.workRoot = join(resolve(opts.stateDir), "work");
    this.git = new Git(opts.env);
    this.log = opts.log.child({ component: "git-workspace" });
    this.author = opts.author ?? DEFAULT_AUTHOR;
    this.networkTimeoutMs = opts.networkTimeoutMs ?? 300_000;
  }

  /** The cache folder of a repo as a task names it. */
  cacheDir(repo: string): string {
    return cacheDirFor(this.reposRoot, parseRepo(repo));
  }

  isActive(workdir: string): boolean {
    return this.active.has(workdir);
  }

  async prepare(spec: TaskSpec, attempt: number, signal: AbortSignal): Promise<PreparedWorkspace> {
    if (!spec.repo) throw new MeshError("INVALID_ARGUMENT", "task has no repo", { field: "repo" });
    const src = parseRepo(spec.repo);
    if (spec.ref !== undefined) validateRef(spec.ref);
    const cache = cacheDirFor(this.reposRoot, src);
    const workdir = join(this.workRoot, spec.id, `a${attempt}`);
    const branch = taskBranch(spec.id);
    const log = this.log.child({ taskId: spec.id, attempt });

    await this.lock
      .with(cache, async () => {
        signal.throwIfAborted();
        await syncCache(this.git, cache, src, {
          signal,
          timeoutMs: this.networkTimeoutMs,
          wantHead: spec.ref === undefined,
        });
        const run = (args: string[]) => this.git.run(args, { cwd: cache, signal });
        await run(["worktree", "prune"]);
        // A folder left by a crashed attempt with this number is replaced, never reused.
        await this.removeWorktreeLocked(cache, workdir);
        await mkdir(dirname(workdir), { recursive: true, mode: 0o700 });
        const existing = await this.git.tryRun(["rev-parse", "--verify", "--quiet", `refs/heads/${branch}`], {
          cwd: cache,
          signal,
        });
        if (existing?.trim()) {
          // An earlier attempt's folder keeps its files for inspection but lets go of the branch.
          await this.detachOtherWorktrees(cache, branch, signal);
          await run(["worktree", "add", "--", workdir, branch]);
          log.info({ workdir, branch, head: existing.trim() }, "worktree continues the task branch");
        } else {
          const base = await resolveBase(this.git, cache, src, spec.ref, signal);
          await run(["worktree", "add", "--no-track", "-b", branch, "--", workdir, base]);
          log.info({ workdir, branch, base, ref: spec.ref ?? "(default branch)" }, "worktree created");
        }
      })
      .catch((err: unknown) => {
        throw toMeshError(err, `cannot prepare a worktree of ${src.display}`);
      });

    this.active.add(workdir);
    const release = (): void => {
      this.active.delete(workdir);
    };
    signal.addEventListener("abort", release, { once: true });
    let finished = false;
    return {
      workdir,
      branch,
      finish: async ({ succeeded, message }) => {
        if (finished) throw new Error("finish() called twice");
        finished = true;
        signal.removeEventListener("abort", release);
        try {
          if (!succeeded) return {};
          return await this.lock.with(cache, () =>
            this.commitAndPush(spec, src, cache, workdir, branch, message),
          );
        } finally {
          release();
          await touch(workdir);
        }
      },
    };
  }

  private async commitAndPush(
    spec: TaskSpec,
    src: RepoSource,
    cache: string,
    workdir: string,
    branch: string,
    message: string,
  ): Promise<{ headCommit?: string }> {
    const inWt = (args: string[]) => this.git.run(args, { cwd: workdir });
    await inWt(["add", "--all"]);
    const staged = (await inWt(["diff", "--cached", "--name-only"])).trim();
    if (staged) {
      await inWt([
        ...(await this.identityArgs(workdir)),
        "-c",
        "commit.gpgsign=false",
        "commit",
        "--no-verify",
        "--quiet",
        "-m",
        message,
      ]);
    }
    const head = (await inWt(["rev-parse", "--verify", "HEAD^{commit}"])).trim();
    const current = (await this.git.tryRun(["symbolic-ref", "--quiet", "HEAD"], { cwd: workdir }))?.trim();
    if (current !== `refs/heads/${branch}`) {
      // The agent switched branches or detached: the task branch is what the task produced.
      this.log.warn(
        { taskId: spec.id, head, current: current ?? "(detached)" },
        "moving the task branch to HEAD",
      );
      await inWt(["update-ref", `refs/heads/${branch}`, head]);
    }
    this.log.info({ taskId: spec.id, branch, head, committed: staged !== "" }, "task branch ready");
    if (spec.push) {
      try {
        await this.git.run(
          ["push", "--no-verify", "--porcelain", "origin", `refs/heads/${branch}:refs/heads/${branch}`],
          {
            cwd: cache,
            timeoutMs: this.networkTimeoutMs,
          },
        );
      } catch (err) {
        throw toMeshError(err, `push of ${branch} to ${src.display} failed`);
      }
      this.log.info({ taskId: spec.id, branch, origin: src.display }, "task branch pushed");
    }
    return { headCommit: head };
  }

  /** `-c user.name=... -c user.email=...` for whatever git config does not already set. */
  private async identityArgs(workdir: string): Promise<string[]> {
    const get = async (key: string) =>
      (await this.git.tryRun(["config", "--get", key], { cwd: workdir }))?.trim() || undefined;
    const args: string[] = [];
    if (!(await get("user.name"))) args.push("-c", `user.name=${this.author.name}`);
    if (!(await get("user.email"))) args.push("-c", `user.email=${this.author.email}`);
    return args;
  }

  private async detachOtherWorktrees(cache: string, branch: string, signal: AbortSignal): Promise<void> {
    const list = await this.git.run(["worktree", "list", "--porcelain"], { cwd: cache, signal });
    for (const wt of parseWorktreeList(list)) {
      if (wt.branch !== `refs/heads/${branch}` || !wt.head) continue;
      // Detach without touching its files or index (works even mid-merge).
      await this.git.run(["update-ref", "--no-deref", "HEAD", wt.head], { cwd: wt.path, signal });
      this.log.info(
        { worktree: wt.path, branch },
        "detached an earlier attempt's worktree from the task branch",
      );
    }
  }

  /** Removes a worktree folder and the cache's record of it. Call under the cache lock. */
  private async removeWorktreeLocked(cache: string, workdir: string): Promise<void> {
    await this.git.tryRun(["worktree", "remove", "--force", "--force", "--", workdir], { cwd: cache });
    await rm(workdir, { recursive: true, force: true });
    await this.git.tryRun(["worktree", "prune"], { cwd: cache });
  }

  /** Removes an attempt's worktree (any cache of this provider). */
  async removeWorktree(workdir: string): Promise<void> {
    const cache = await commonDirOf(workdir);
    if (cache && (cache === this.reposRoot || cache.startsWith(this.reposRoot + sep))) {
      await this.lock.with(cache, () => this.removeWorktreeLocked(cache, workdir));
    } else {
      await rm(workdir, { recursive: true, force: true });
    }
  }

  /** Removes idle attempt folders older than the retention. */
  async sweep(): Promise<void> {
    const removed = await sweepAttempts({
      workRoot: this.workRoot,
      retentionMs: this.opts.retentionMs,
      isActive: (p) => this.isActive(p),
      removeWorktree: (p) => this.removeWorktree(p),
    });
    if (removed.length) this.log.info({ removed }, "removed worktrees past retention");
  }
}

/** The cache a worktree belongs to, from its `.git` file (`gitdir: <cache>/worktrees/<name>`). */
async function commonDirOf(workdir: string): Promise<string | undefined> {
  const text = await readFile(join(workdir, ".git"), "utf8").catch(() => undefined);
  const gitdir = text ? /^gitdir: (.+)$/m.exec(text)?.[1]?.trim() : undefined;
  return gitdir ? dirname(dirname(resolve(workdir, gitdir))) : undefined;
}

interface WorktreeEntry {
  path: string;
  head?: string;
  branch?: string;
}

export function parseWorktreeList(porcelain: string): WorktreeEntry[] {
  const out: WorktreeEntry[] = [];
  let cur: WorktreeEntry | undefined;
  for (const line of porcelain.split("\n")) {
    if (line.startsWith("worktree ")) {
      cur = { path: line.slice("worktree ".length) };
      out.push(cur);
    } else if (cur && line.startsWith("HEAD ")) cur.head = line.slice(5);
    else if (cur && line.startsWith("branch ")) cur.branch = line.slice(7);
  }
  return out;
}

async function touch(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined);
}

function toMeshError(err: unknown, what: string): MeshError {
  if (err instanceof MeshError) return err;
  if (err instanceof GitCommandError && err.kind === "aborted") {
    return new MeshError("CANCELLED", `${what}: aborted`, { cause: err });
  }
  return new MeshError("UNAVAILABLE", `${what}: ${errorMessage(err)}`, { cause: err });
}
