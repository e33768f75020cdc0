/**
 * The daemon's end of the bundle store: ships local repositories (the submitting side), imports
 * shipped commits and stores results (the worker side, through the workspace's RepoTransfer
 * port), and brings results home (`mesh fetch`).
 */
import { mkdir } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import type { TaskView } from "../api/index.js";
import { errorMessage, isMeshError, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ResultBundle } from "../tasks/index.js";
import { type Git, GitCommandError, type GitRepo } from "../workspace/index.js";
import type { RepoTransfer } from "../workspace/index.js";
import type { BundleStore } from "./bundle-store.js";
import { ensureCommit } from "./ensure.js";
import { type FetchedBranch, fetchResult } from "./fetch.js";
import { rootOf } from "./git-bundle.js";
import { storeResult } from "./results.js";
import { type ShipResult, shipRepo } from "./ship.js";

export interface TaskSource {
  getTask(id: string): Promise<TaskView>;
  listTasks(filter?: { state?: Array<"succeeded"> }): Promise<{ tasks: TaskView[] }>;
}

export interface FetchRequest {
  path: string;
  ids: string[];
  all: boolean;
  force: boolean;
  hidden: boolean;
}

export type FetchedResult =
  | FetchedBranch
  | { id: string; outcome: "no_result" | "not_found" | "failed"; reason: string };

export interface TransferOptions {
  git: Git;
  store: BundleStore;
  /** Temp files go to `<stateDir>/tmp`. */
  stateDir: string;
  log: Logger;
}

const cacheRepo = (dir: string): GitRepo => ({ gitDir: dir });

export class MeshTransfer implements RepoTransfer {
  private readonly tmpRoot: string;
  private readonly log: Logger;

  constructor(private readonly o: TransferOptions) {
    this.tmpRoot = join(o.stateDir, "tmp");
    this.log = o.log.child({ component: "transfer" });
  }

  get store(): BundleStore {
    return this.o.store;
  }

  private async tmp(): Promise<string> {
    await mkdir(this.tmpRoot, { recursive: true, mode: 0o700 });
    return this.tmpRoot;
  }

  async ship(req: { path: string; ref?: string; dirty: boolean }): Promise<ShipResult> {
    if (!isAbsolute(req.path)) {
      throw new MeshError("INVALID_ARGUMENT", `path "${req.path}": give an absolute folder`, {
        field: "path",
      });
    }
    const r = await shipRepo({ git: this.o.git, store: this.o.store, ...req, tmpRoot: await this.tmp() });
    this.log.info(
      {
        repoId: r.repoId,
        commit: r.commit,
        uploaded: r.uploaded,
        bytes: r.bytes,
        requires: r.requires.length,
      },
      r.uploaded ? "shipped a repository bundle" : "the mesh has this commit already",
    );
    return r;
  }

  async importCommit(cache: string, repoId: string, commit: string, signal?: AbortSignal): Promise<void> {
    const r = await ensureCommit({
      git: this.o.git,
      store: this.o.store,
      repo: cacheRepo(cache),
      repoId,
      commit,
      tmpRoot: await this.tmp(),
      refPrefix: "refs/mesh/have/",
      ...(signal ? { signal } : {}),
    });
    if (r.imported.length)
      this.log.info({ repoId, commit, bundles: r.imported.length, bytes: r.bytes }, "imported bundles");
  }

  repoIdOf(cache: string, commit: string): Promise<string> {
    return rootOf(this.o.git, cacheRepo(cache), commit);
  }

  async storeResult(
    cache: string,
    r: {
      repoId: string;
      base: string;
      head: string;
      taskId: string;
      attempt: number;
      requires?: string[];
    },
  ): Promise<ResultBundle> {
    const out = await storeResult({
      git: this.o.git,
      store: this.o.store,
      repo: cacheRepo(cache),
      ...r,
      tmpRoot: await this.tmp(),
    });
    this.log.info(
      { taskId: r.taskId, attempt: r.attempt, head: r.head, size: out.size },
      "stored the task branch as a bundle",
    );
    return out;
  }

  /** Imports results into the repository at `path`, one outcome per task (never all-or-nothing). */
  async fetch(tasks: TaskSource, req: FetchRequest): Promise<FetchedResult[]> {
    if (!isAbsolute(req.path)) {
      throw new MeshError("INVALID_ARGUMENT", `path "${req.path}": give an absolute folder`, {
        field: "path",
      });
    }
    if (!req.all && req.ids.length === 0) {
      throw new MeshError("INVALID_ARGUMENT", "ids: name tasks, or ask for all", { field: "ids" });
    }
    let user: GitRepo;
    try {
      user = await this.o.git.discover(req.path);
    } catch (err) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `${req.path} is not in a git work tree (${errorMessage(err)}): run mesh fetch in a checkout, or give --repo`,
        { field: "repo", cause: err },
      );
    }
    const views: Array<TaskView | { id: string; missing: true }> = [];
    if (req.all) {
      for (const t of (await tasks.listTasks({ state: ["succeeded"] })).tasks)
        if (t.record.result?.bundle) views.push(t);
    } else {
      for (const id of req.ids) {
        views.push(
          await tasks.getTask(id).catch((err: unknown) => {
            if (isMeshError(err, "NOT_FOUND")) return { id, missing: true as const };
            throw err;
          }),
        );
      }
    }
    const out: FetchedResult[] = [];
    for (const v of views) {
      if ("missing" in v) {
        out.push({ id: v.id, outcome: "not_found", reason: `no task ${v.id}` });
        continue;
      }
      const r = v.record;
      const bundle = r.state === "succeeded" ? r.result?.bundle : undefined;
      if (!bundle) {
        out.push({
          id: r.id,
          outcome: "no_result",
          reason:
            r.state !== "succeeded"
              ? `task ${r.id} is ${r.state}, not succeeded${lastAttemptBundle(v) ? " (its last attempt's commits are in `mesh task` as attempts[].bundle)" : ""}`
              : `task ${r.id} has no result bundle (it has no repo, or ran on a daemon without the bundle store)`,
        });
        continue;
      }
      // When a whole batch is fetched, one repository from elsewhere does not stop the others.
      if (req.all && !(await this.sameRepo(user, bundle.repoId))) continue;
      try {
        out.push(
          await fetchResult({
            git: this.o.git,
            store: this.o.store,
            repo: user,
            id: r.id,
            bundle,
            force: req.force,
            hidden: req.hidden,
            tmpRoot: await this.tmp(),
          }),
        );
      } catch (err) {
        if (!isMeshError(err) && !(err instanceof GitCommandError)) throw err;
        out.push({ id: r.id, outcome: "failed", reason: errorMessage(err) });
      }
    }
    return out;
  }

  private async sameRepo(user: GitRepo, repoId: string): Promise<boolean> {
    const out = await this.o.git.tryRun(["cat-file", "-e", `${repoId}^{commit}`], { repo: user });
    return out !== undefined;
  }
}

function lastAttemptBundle(v: TaskView): ResultBundle | undefined {
  return [...v.record.attempts].reverse().find((a) => a.bundle)?.bundle;
}
