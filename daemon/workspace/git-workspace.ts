/**
 * Git worktrees for tasks with a repo. Each origin is cloned once per daemon (bare, under
 * `<stateDir>/repos/<hash>`) and fetched before each task; each attempt gets a fresh worktree
 * `<stateDir>/work/<task id>/a<n>` on branch `mesh/<task id>`. A later attempt continues on that
 * branch, so committed work is kept; whatever an earlier attempt left in its folder is never
 * reused. On success, uncommitted changes are committed and the branch is pushed to the origin
 * when the task asks. All git work on one cache is serialized.
 *
 * The agent works in the worktree and may change anything the daemon's user can; the daemon's
 * git after the run trusts none of it (see git-cmd.ts, cache-config.ts and worktree-guard.ts).
 */
import { lutimes, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { errorMessage, isMeshError, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { OwnsViolationError, ownsViolations } from "../plans/index.js";
import type { ResultBundle, TaskSpec } from "../tasks/index.js";
import { resetCacheConfig } from "./cache-config.js";
import { cacheWorktrees, evictCache, type KeepBranch, listCaches } from "./evict.js";
import { Git, GitCommandError, type GitRepo } from "./git-cmd.js";
import { KeyedLock } from "./keyed-lock.js";
import { changedPaths, isAncestor, mergeHeads, mergeTree } from "./merge.js";
import {
  cacheDirFor,
  cacheRepo,
  markCacheUsed,
  parseRepo,
  prepareMeshCache,
  type RepoSource,
  syncCache,
  validateRef,
} from "./repo-cache.js";
import { sweepAttempts } from "./sweep.js";
import { branchStart } from "./task-branch.js";
import type { RepoTransfer } from "./transfer-port.js";
import type {
  BranchCompare,
  BranchConflict,
  NeedResult,
  PrepareCarry,
  PreparedWorkspace,
  WorkspaceProvider,
} from "./workspace.js";
import {
  isPrivateDirOf,
  parseGitFile,
  type TrustedWorktree,
  trustWorktree,
  worktreeRepo,
  worktreeTampering,
} from "./worktree-guard.js";

export const DEFAULT_AUTHOR = { name: "agent-mesh", email: "mesh@localhost" } as const;

export interface GitWorkspaceOptions {
  /** Caches go to `<stateDir>/repos`, worktrees to `<stateDir>/work`. */
  stateDir: string;
  /** Idle worktrees older than this are removed by `sweep()`. */
  retentionMs: number;
  /** Caches unused for this long (and holding no task branch) are removed; 0 keeps them. */
  cacheRetentionMs?: number;
  /** Whether a task still needs its branch in the caches (default: every branch is kept). */
  keepBranch?: KeepBranch;
  log: Logger;
  /** The environment git runs with (default: the daemon's). */
  env?: NodeJS.ProcessEnv;
  /** The operator's git settings (`workspaces.gitConfig`), e.g. `credential.helper`. */
  gitConfig?: Readonly<Record<string, string>>;
  /** Author of the commits the mesh makes when the daemon user's git config names nobody. */
  author?: { name: string; email: string };
  /** Network operations (fetch, push) are killed after this long without output. */
  networkTimeoutMs?: number;
  /**
   * The mesh's bundle store: `mesh://` repos come from it, and every attempt's task branch goes
   * into it as a bundle (results come home; a later attempt elsewhere continues from it).
   */
  transfer?: RepoTransfer;
}

/** Where the cache remembers the commit a task branch started from (its result bundles are `base..head`). */
const baseRef = (taskId: string): string => `refs/mesh/base/${taskId}`;

export const DEFAULT_CACHE_RETENTION_MS = 7 * 86_400_000;

export const taskBranch = (taskId: string): string => `mesh/${taskId}`;

export class GitWorkspaceProvider implements WorkspaceProvider, BranchCompare {
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
    this.git = new Git({
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.gitConfig ? { config: opts.gitConfig } : {}),
    });
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

  async prepare(
    spec: TaskSpec,
    attempt: number,
    signal: AbortSignal,
    carry: PrepareCarry = {},
  ): Promise<PreparedWorkspace> {
    if (!spec.repo) throw new MeshError("INVALID_ARGUMENT", "task has no repo", { field: "repo" });
    const src = parseRepo(spec.repo);
    if (spec.ref !== undefined) validateRef(spec.ref);
    const cache = cacheDirFor(this.reposRoot, src);
    const workdir = join(this.workRoot, spec.id, `a${attempt}`);
    const branch = taskBranch(spec.id);
    const log = this.log.child({ taskId: spec.id, attempt });

    const transfer = this.opts.transfer;
    const { wt, base, startHead, repoId } = await this.lock
      .with(cache, async () => {
        signal.throwIfAborted();
        if (src.meshRepoId) {
          if (!transfer || !spec.ref) {
            // Retryable: another worker of the mesh may have the store.
            throw new MeshError(
              "UNAVAILABLE",
              `repo ${src.display} comes through the mesh's bundle store, which this worker could not open (see its log)`,
              { field: "repo" },
            );
          }
          await prepareMeshCache(this.git, cache, signal);
          await transfer.importCommit(cache, src.meshRepoId, spec.ref, signal);
        } else {
          await syncCache(this.git, cache, src, {
            signal,
            timeoutMs: this.networkTimeoutMs,
            wantHead: spec.ref === undefined,
          });
        }
        const repo = cacheRepo(cache);
        const run = (args: string[]) => this.git.run(args, { repo, signal });
        // An earlier attempt's commits, stored as a bundle (by this host or another).
        let carried: string | undefined;
        const prev = carry.previous;
        if (transfer && prev?.name && attempt > 1) {
          await transfer.importCommit(cache, prev.repoId, prev.head, signal);
          carried = prev.head;
        }
        await run(["worktree", "prune"]);
        // A folder left by a crashed attempt with this number is replaced, never reused.
        await this.removeWorktreeLocked(cache, workdir);
        await mkdir(dirname(workdir), { recursive: true, mode: 0o700 });
        const start = await branchStart({
          git: this.git,
          cache,
          src,
          branch,
          ref: spec.ref,
          push: spec.push === true,
          attempt,
          ...(carried ? { carried } : {}),
          ...(carry.needs?.length
            ? { newBase: () => this.startOfNeeds(spec, cache, src, carry.needs ?? [], attempt, signal) }
            : {}),
          signal,
        });
        if (start.kind === "new") {
          await run(["worktree", "add", "--no-track", "-b", branch, "--", workdir, start.base]);
          await run(["update-ref", baseRef(spec.id), start.base]);
          log.info(
            { workdir, branch, base: start.base, ref: spec.ref ?? "(default branch)" },
            "worktree created",
          );
        } else {
          // An earlier attempt's folder keeps its files for inspection but lets go of the branch.
          await this.detachOtherWorktrees(cache, branch, signal);
          if (start.kind === "pushed") {
            await run(["update-ref", `refs/heads/${branch}`, start.head]);
            log.warn(
              { branch, head: start.head, replaced: start.previous ?? "(none)" },
              "continuing from the task branch an earlier attempt pushed to the origin",
            );
          }
          await run(["worktree", "add", "--", workdir, branch]);
          log.info({ workdir, branch, head: start.head }, "worktree continues the task branch");
          if (carried && prev) await run(["update-ref", baseRef(spec.id), prev.base]);
        }
        const startHead = start.kind === "new" ? start.base : start.head;
        const base =
          (
            await this.git.tryRun(["rev-parse", "--verify", "--quiet", `${baseRef(spec.id)}^{commit}`], {
              repo,
            })
          )?.trim() || startHead;
        const repoId = src.meshRepoId ?? (transfer ? await transfer.repoIdOf(cache, base) : undefined);
        return { wt: await trustWorktree(cache, workdir), base, startHead, repoId };
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
      finish: async ({ succeeded, message, signal: fence }) => {
        if (finished) throw new Error("finish() called twice");
        finished = true;
        signal.removeEventListener("abort", release);
        try {
          if (!succeeded) {
            if (!transfer || !repoId) return {};
            // A failed attempt's commits are kept for inspection and for the next attempt elsewhere.
            const bundle = await this.lock
              .with(cache, () => this.keepFailed(spec, wt, attempt, { repoId, base, startHead }, fence))
              .catch((err: unknown) => {
                log.warn({ err: errorMessage(err) }, "could not store the failed attempt's commits");
                return undefined;
              });
            return bundle ? { bundle } : {};
          }
          return await this.lock.with(cache, async () => {
            const done = await this.commitAndPush(spec, src, wt, branch, message, base, fence);
            if (!transfer || !repoId || !done.headCommit) return done;
            if (fence?.aborted) throw new MeshError("FENCED", `fenced out while finishing task ${spec.id}`);
            try {
              const bundle = await transfer.storeResult(cache, {
                repoId,
                base,
                head: done.headCommit,
                taskId: spec.id,
                attempt,
              });
              return { ...done, bundle };
            } catch (err) {
              // Without its bundle a shipped repo's result cannot come home: the attempt fails.
              if (src.meshRepoId) throw err;
              log.warn({ err: errorMessage(err) }, "could not store the task branch as a bundle");
              return done;
            }
          });
        } finally {
          release();
          await touch(workdir);
        }
      },
    };
  }

  /**
   * Where a dependent's new task branch starts: its needs' heads, imported from their bundles
   * when this cache lacks them, and merged (merge.ts). The merge commit goes into the bundle
   * store too, so that the dependent's result (`merge..head`) can be imported anywhere.
   * Call under the cache lock.
   */
  private async startOfNeeds(
    spec: TaskSpec,
    cache: string,
    src: RepoSource,
    needs: readonly NeedResult[],
    attempt: number,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const repo = cacheRepo(cache);
    const transfer = this.opts.transfer;
    for (const n of needs) {
      if (!(await this.haveCommit(cache, n, signal))) {
        throw new MeshError(
          "FAILED_PRECONDITION",
          `needs: the result of task ${n.taskId} (commit ${n.head.slice(0, 12)}) is neither in this worker's repo cache nor in the mesh's bundle store: run the task on the worker that ran ${n.taskId}, or give the workers the bundle store`,
          { field: "needs" },
        );
      }
    }
    const start = await mergeHeads(this.git, repo, needs, { author: this.author, signal });
    if (start.kind === "none") return undefined;
    if (start.kind === "head") {
      this.log.info(
        { taskId: spec.id, need: start.taskId, head: start.head },
        "task starts from its need's branch",
      );
      return start.head;
    }
    this.log.info(
      { taskId: spec.id, merge: start.commit, parents: start.parents },
      "task starts from the merge of its needs' branches",
    );
    if (transfer) {
      const repoId =
        src.meshRepoId ??
        needs.find((n) => n.bundle)?.bundle?.repoId ??
        (await transfer.repoIdOf(cache, start.commit));
      try {
        await transfer.storeResult(cache, {
          repoId,
          base: start.parents[0]!,
          head: start.commit,
          requires: start.parents,
          taskId: spec.id,
          attempt,
        });
      } catch (err) {
        // Without it a shipped repo's result could not be imported elsewhere: try again later.
        if (src.meshRepoId) throw err;
        this.log.warn({ err: errorMessage(err) }, "could not store the merge of the needs as a bundle");
      }
    }
    return start.commit;
  }

  async changedPaths(repo: string, bundle: ResultBundle, signal?: AbortSignal): Promise<string[]> {
    const cache = this.cacheDir(repo);
    return this.lock.with(cache, async () => {
      await this.haveCommit(cache, { taskId: "", head: bundle.head, bundle }, signal);
      return (await changedPaths(this.git, cacheRepo(cache), bundle.base, bundle.head, signal)).sort();
    });
  }

  async conflicts(
    repo: string,
    mine: NeedResult,
    others: readonly NeedResult[],
    signal?: AbortSignal,
  ): Promise<BranchConflict[]> {
    const cache = this.cacheDir(repo);
    const git = cacheRepo(cache);
    return this.lock.with(cache, async () => {
      const out: BranchConflict[] = [];
      if (!(await this.haveCommit(cache, mine, signal))) return out;
      for (const o of others) {
        if (!(await this.haveCommit(cache, o, signal))) {
          this.log.warn(
            { taskId: o.taskId, head: o.head },
            "cannot compare with a branch this cache cannot get",
          );
          continue;
        }
        // One contains the other (a task that needs the other): nothing to merge.
        if (await isAncestor(this.git, git, o.head, mine.head, signal)) continue;
        if (await isAncestor(this.git, git, mine.head, o.head, signal)) continue;
        const m = await mergeTree(this.git, git, mine.head, o.head, signal);
        if (m.conflicts.length) out.push({ taskId: o.taskId, head: o.head, files: m.conflicts });
      }
      return out;
    });
  }

  /** Whether `n.head` is in the cache, imported from its bundle when it is not. Call under the cache lock. */
  private async haveCommit(cache: string, n: NeedResult, signal?: AbortSignal): Promise<boolean> {
    const sig = signal ? { signal } : {};
    const here = await this.git.tryRun(["cat-file", "-e", `${n.head}^{commit}`], {
      repo: cacheRepo(cache),
      ...sig,
    });
    if (here !== undefined) return true;
    if (!this.opts.transfer || !n.bundle?.name) return false;
    await this.opts.transfer.importCommit(cache, n.bundle.repoId, n.head, signal);
    return true;
  }

  /** The failed attempt's committed head as a bundle, unless it made no commit (or is fenced, or tampered). */
  private async keepFailed(
    spec: TaskSpec,
    wt: TrustedWorktree,
    attempt: number,
    at: { repoId: string; base: string; startHead: string },
    fence?: AbortSignal,
  ): Promise<ResultBundle | undefined> {
    if (fence?.aborted || !this.opts.transfer) return undefined;
    if (await worktreeTampering(this.git, wt)) return undefined;
    const head = (
      await this.git.tryRun(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], { repo: worktreeRepo(wt) })
    )?.trim();
    if (!head || head === at.startHead) return undefined;
    return this.opts.transfer.storeResult(wt.cache, {
      repoId: at.repoId,
      base: at.base,
      head,
      taskId: spec.id,
      attempt,
    });
  }

  private async commitAndPush(
    spec: TaskSpec,
    src: RepoSource,
    wt: TrustedWorktree,
    branch: string,
    message: string,
    base: string,
    fence?: AbortSignal,
  ): Promise<{ headCommit?: string; ownsViolations?: string[] }> {
    // Once the attempt is fenced, nothing more leaves this worker: checked between steps, and
    // the push itself is killed when the fence goes.
    const fenced = () => {
      if (fence?.aborted) {
        throw new MeshError(
          "FENCED",
          `fenced out while finishing task ${spec.id}: nothing committed or pushed`,
        );
      }
    };
    fenced();
    const tampered = await worktreeTampering(this.git, wt);
    if (tampered) {
      // The next task on this cache gets the daemon's config back; this one's work is not used.
      await resetCacheConfig(this.git, wt.cache).catch(() => undefined);
      this.log.warn({ taskId: spec.id, workdir: wt.workdir, tampered }, "refusing the attempt's worktree");
      throw new MeshError(
        "FAILED_PRECONDITION",
        `refusing to commit or push: ${tampered} during the run (the daemon's git only runs on the worktree it made)`,
      );
    }
    const repo = worktreeRepo(wt);
    const inWt = (args: string[]) => this.git.run(args, { repo });
    fenced();
    await inWt(["add", "--all"]);
    const staged = (await inWt(["diff-index", "--cached", "--name-only", "HEAD", "--"])).trim();
    if (staged) {
      await inWt([
        ...(await this.identityArgs(wt.workdir)),
        "commit",
        "--no-verify",
        "--quiet",
        "-m",
        message,
      ]);
    }
    const head = (await inWt(["rev-parse", "--verify", "HEAD^{commit}"])).trim();
    const current = (await this.git.tryRun(["symbolic-ref", "--quiet", "HEAD"], { repo }))?.trim();
    if (current !== `refs/heads/${branch}`) {
      // The agent switched branches or detached: the task branch is what the task produced.
      this.log.warn(
        { taskId: spec.id, head, current: current ?? "(detached)" },
        "moving the task branch to HEAD",
      );
      await inWt(["update-ref", `refs/heads/${branch}`, head]);
    }
    this.log.info({ taskId: spec.id, branch, head, committed: staged !== "" }, "task branch ready");
    // The result-time gate, before anything leaves the worker: what changed since the base
    // (all attempts' commits) must lie inside owns.
    const violations = spec.owns ? await this.ownsGate(spec, spec.owns, repo, base, head) : [];
    fenced();
    if (spec.push) await this.push(spec, src, wt.cache, branch, fence);
    await markCacheUsed(wt.cache).catch(() => undefined);
    return { headCommit: head, ...(violations.length > 0 ? { ownsViolations: violations } : {}) };
  }

  /** The changed paths outside `owns`; throws OwnsViolationError unless the spec only reports them. */
  private async ownsGate(
    spec: TaskSpec,
    owns: readonly string[],
    repo: GitRepo,
    base: string,
    head: string,
  ): Promise<string[]> {
    // --no-renames: a rename is a deletion and an addition, so both of its paths count.
    const out = await this.git.run(["diff", "--name-only", "--no-renames", "-z", base, head, "--"], { repo });
    const changed = out.split("\0").filter((p) => p !== "");
    const violations = ownsViolations(changed, owns);
    if (violations.length === 0) return [];
    this.log.warn(
      { taskId: spec.id, policy: spec.ownsViolation ?? "fail", count: violations.length },
      "changes outside owns",
    );
    if ((spec.ownsViolation ?? "fail") === "fail") throw new OwnsViolationError(violations, owns);
    return violations;
  }

  private async push(
    spec: TaskSpec,
    src: RepoSource,
    cache: string,
    branch: string,
    fence?: AbortSignal,
  ): Promise<void> {
    const ref = `refs/heads/${branch}`;
    try {
      await this.git.run(
        [
          "push",
          "--no-verify",
          "--porcelain",
          "--receive-pack=git-receive-pack",
          "--",
          src.url,
          `${ref}:${ref}`,
        ],
        { repo: cacheRepo(cache), timeoutMs: this.networkTimeoutMs, ...(fence ? { signal: fence } : {}) },
      );
    } catch (err) {
      if (fence?.aborted) {
        throw new MeshError("FENCED", `fenced out while pushing ${branch}: the push was stopped`, {
          cause: err,
        });
      }
      if (
        err instanceof GitCommandError &&
        err.kind === "failed" &&
        /\[rejected\].*\((non-fast-forward|fetch first)\)/.test(`${err.stdout}\n${err.stderr}`)
      ) {
        throw new MeshError(
          "UNAVAILABLE",
          `push of ${branch} to ${src.display} was rejected: the origin's ${branch} moved during the run (someone else pushed to it); the next attempt continues from it`,
          { cause: err },
        );
      }
      throw toMeshError(err, `push of ${branch} to ${src.display} failed`);
    }
    this.log.info({ taskId: spec.id, branch, origin: src.display }, "task branch pushed");
  }

  /** `-c user.name=... -c user.email=...` from the daemon user's git config, else the mesh's. */
  private async identityArgs(cwd: string): Promise<string[]> {
    const name = (await this.git.globalConfig("user.name", cwd)) ?? this.author.name;
    const email = (await this.git.globalConfig("user.email", cwd)) ?? this.author.email;
    return ["-c", `user.name=${name}`, "-c", `user.email=${email}`];
  }

  /** Detaches every worktree of the cache that has `branch` checked out (files and index untouched). */
  private async detachOtherWorktrees(cache: string, branch: string, signal: AbortSignal): Promise<void> {
    const ref = `refs/heads/${branch}`;
    for (const wt of await cacheWorktrees(cache)) {
      if (wt.branch !== ref) continue;
      const head = (
        await this.git.run(["rev-parse", "--verify", `${ref}^{commit}`], { repo: cacheRepo(cache), signal })
      ).trim();
      // Its HEAD file is written directly: no git runs on a worktree an agent may have changed
      // (a rewritten `commondir` there would send git elsewhere). rm first: never through a link.
      const headFile = join(wt.privateDir, "HEAD");
      await rm(headFile, { force: true });
      await writeFile(headFile, `${head}\n`);
      this.log.info(
        { worktree: wt.privateDir, branch },
        "detached an earlier attempt's worktree from the task branch",
      );
    }
  }

  /**
   * Removes a worktree folder and the cache's record of it. Call under the cache lock. No git
   * runs in the folder (an agent may have left anything there): the folder goes, then git
   * forgets worktrees whose folder is gone.
   */
  private async removeWorktreeLocked(cache: string, workdir: string): Promise<void> {
    await rm(workdir, { recursive: true, force: true });
    await this.git.tryRun(["worktree", "prune"], { repo: cacheRepo(cache) });
  }

  /** Removes an attempt's worktree (any cache of this provider). */
  async removeWorktree(workdir: string): Promise<void> {
    const cache = await this.cacheOf(workdir);
    if (cache) await this.lock.with(cache, () => this.removeWorktreeLocked(cache, workdir));
    else await rm(workdir, { recursive: true, force: true });
  }

  /** The cache a worktree belongs to, when its `.git` file names one of this provider's. */
  private async cacheOf(workdir: string): Promise<string | undefined> {
    const text = await readFile(join(workdir, ".git"), "utf8").catch(() => undefined);
    const privateDir = text ? parseGitFile(text) : undefined;
    if (!privateDir) return undefined;
    const cache = dirname(dirname(resolve(workdir, privateDir)));
    if (dirname(cache) !== this.reposRoot || !isPrivateDirOf(cache, privateDir)) return undefined;
    return cache;
  }

  /** Removes idle attempt folders older than the retention, then evicts branches and caches. */
  async sweep(): Promise<void> {
    const removed = await sweepAttempts({
      workRoot: this.workRoot,
      retentionMs: this.opts.retentionMs,
      isActive: (p) => this.isActive(p),
      removeWorktree: (p) => this.removeWorktree(p),
    });
    if (removed.length) this.log.info({ removed }, "removed worktrees past retention");
    await this.evict();
  }

  /** Task branches no task needs any more, and caches unused past their retention (see evict.ts). */
  async evict(now = Date.now()): Promise<void> {
    for (const cache of await listCaches(this.reposRoot)) {
      const out = await this.lock.with(cache, () =>
        evictCache(cache, {
          git: this.git,
          workRoot: this.workRoot,
          cacheRetentionMs: this.opts.cacheRetentionMs ?? DEFAULT_CACHE_RETENTION_MS,
          ...(this.opts.keepBranch ? { keepBranch: this.opts.keepBranch } : {}),
          now,
        }),
      );
      if (out.branches.length)
        this.log.info({ cache, branches: out.branches }, "deleted finished task branches");
      if (out.cacheRemoved) this.log.info({ cache }, "removed a repo cache unused past its retention");
    }
  }
}

async function touch(path: string): Promise<void> {
  const now = new Date();
  await lutimes(path, now, now).catch(() => undefined);
}

function toMeshError(err: unknown, what: string): MeshError {
  if (isMeshError(err)) return err;
  if (err instanceof GitCommandError && err.kind === "aborted") {
    return new MeshError("CANCELLED", `${what}: aborted`, { cause: err });
  }
  return new MeshError("UNAVAILABLE", `${what}: ${errorMessage(err)}`, { cause: err });
}
