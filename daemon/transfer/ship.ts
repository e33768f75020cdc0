/**
 * Code goes out: the submitting daemon puts what a worker needs of a local repository into the
 * bundle store, and the task names it as `mesh://<repo id>` at a commit. Only what the mesh does
 * not have yet is shipped: the bundle of the commit requires every commit the mesh already holds
 * (a bundle tip) that the commit descends from. The repo id is the first-parent root commit.
 *
 * The user's repository is only read: bundles and the `--dirty` commit are made in a scratch
 * repository borrowing its objects, with a copy of its index (its files, index, refs and stash
 * list stay as they are).
 */
import { createHash } from "node:crypto";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { isMeshError, MeshError } from "../errors.js";
import { type Git, GitCommandError, type GitRepo } from "../workspace/index.js";
import type { BundleEntry, BundleStore } from "./bundle-store.js";
import { ancestorsOf, presentCommits, rootOf, scratchRepo, streamBundle } from "./git-bundle.js";

export interface ShipInput {
  git: Git;
  store: BundleStore;
  /** A folder inside the user's repository (absolute). */
  path: string;
  /** A branch, tag or commit of it; default HEAD (and then the working tree counts). */
  ref?: string;
  /** Ship uncommitted changes as a commit on top of HEAD. */
  dirty: boolean;
  tmpRoot: string;
  signal?: AbortSignal;
  now?: Date;
}

export interface ShipResult {
  repoId: string;
  /** What the task runs on: HEAD (or ref), or the commit of the uncommitted changes. */
  commit: string;
  /** The commit HEAD (or ref) named. */
  head: string;
  toplevel: string;
  /** The working tree had changes HEAD does not have. */
  dirty: boolean;
  /** Those changes are in `commit` (--dirty). */
  dirtyShipped: boolean;
  /** A new bundle went into the store (false: the mesh had the commit, or the same bundle). */
  uploaded: boolean;
  /** Size of the bundle of `commit` (0 when the mesh had it already). */
  bytes: number;
  /** Commits the bundle builds on (the mesh has them). */
  requires: string[];
  bundle?: string;
}

/** The name of the bundle of `tip` over `requires`: the hash of its ref set. */
export function bundleName(repoId: string, tip: string, requires: string[]): string {
  return createHash("sha256")
    .update(
      `agent-mesh bundle v1\nrepo ${repoId}\ntip ${tip}\n${[...requires]
        .sort()
        .map((r) => `requires ${r}\n`)
        .join("")}`,
    )
    .digest("hex");
}

function invalid(message: string, cause?: unknown): MeshError {
  return new MeshError("INVALID_ARGUMENT", message, { field: "repo", cause });
}

/** An index entry is fresh while it has at least half the store's TTL to live: safe to build on. */
export function isFresh(entry: BundleEntry, ttlMs: number, now: Date): boolean {
  return ttlMs <= 0 || now.getTime() - Date.parse(entry.at) < ttlMs / 2;
}

export async function shipRepo(i: ShipInput): Promise<ShipResult> {
  const { git, store } = i;
  const now = i.now ?? new Date();
  const sig = i.signal ? { signal: i.signal } : {};
  let user: Awaited<ReturnType<Git["discover"]>>;
  try {
    user = await git.discover(i.path, i.signal);
  } catch (err) {
    throw invalid(
      `${i.path} is not in a git work tree (${err instanceof Error ? err.message : String(err)}); give repo: . inside a checkout, or a URL`,
      err,
    );
  }
  const repo: GitRepo = { gitDir: user.gitDir, commonDir: user.commonDir, workTree: user.workTree };
  const rev = i.ref ?? "HEAD";
  const head = (
    await git.tryRun(["rev-parse", "--verify", "--quiet", `${rev}^{commit}`], { repo, ...sig })
  )?.trim();
  if (!head) {
    throw i.ref
      ? new MeshError(
          "INVALID_ARGUMENT",
          `ref "${i.ref}" is not a branch, tag or commit of ${user.workTree}`,
          {
            field: "ref",
          },
        )
      : invalid(`${user.workTree} has no commit yet: commit something first (the mesh ships commits)`);
  }
  const repoId = await rootOf(git, repo, head);
  const scratch = await scratchRepo(git, i.tmpRoot, [join(user.commonDir, "objects")]);
  try {
    let commit = head;
    let dirty = false;
    if (i.ref === undefined) {
      const tree = await workingTree(git, user, scratch.dir, scratch.repo);
      const headTree = (await git.run(["rev-parse", `${head}^{tree}`], { repo: scratch.repo })).trim();
      dirty = tree !== headTree;
      if (dirty && i.dirty) {
        // Reproducible: the same changes on the same HEAD make the same commit (and the same task spec).
        const date = (await git.run(["log", "-1", "--format=%cI", head], { repo: scratch.repo })).trim();
        commit = (
          await git.run(
            [
              "-c",
              "user.name=agent-mesh",
              "-c",
              "user.email=mesh@localhost",
              "commit-tree",
              tree,
              "-p",
              head,
              "-m",
              `uncommitted changes on ${head.slice(0, 12)} (mesh submit --dirty)`,
            ],
            { repo: scratch.repo, date },
          )
        ).trim();
      }
    }
    const base = { repoId, commit, head, toplevel: user.workTree, dirty, dirtyShipped: commit !== head };
    const mine = await store.entry(repoId, commit);
    if (mine && isFresh(mine, store.opts.ttlMs, now)) {
      return { ...base, uploaded: false, bytes: 0, requires: mine.requires, bundle: mine.name };
    }
    const known = await store.knownTips(repoId);
    const present = [...(await presentCommits(git, scratch.repo, known))];
    const candidates = await ancestorsOf(git, scratch.repo, commit, present);
    const requires: string[] = [];
    for (const c of candidates) {
      const e = await store.entry(repoId, c);
      if (e && isFresh(e, store.opts.ttlMs, now)) requires.push(c);
    }
    requires.sort();
    const name = bundleName(repoId, commit, requires);
    // Streamed: git writes the bundle while the store takes it in (no temp file), within the limits.
    const { uploaded, size } = await store.putStream(
      { v: 1, name, repoId, tip: commit, requires, kind: "source", at: now.toISOString() },
      `the bundle of ${user.workTree} at ${commit.slice(0, 12)}`,
      (sink, signal) =>
        streamBundle(
          git,
          scratch.repo,
          commit,
          requires,
          sink,
          i.signal ? AbortSignal.any([signal, i.signal]) : signal,
        ),
    );
    return { ...base, uploaded, bytes: size, requires, bundle: name };
  } catch (err) {
    if (isMeshError(err)) throw err;
    if (err instanceof GitCommandError) throw invalid(`cannot ship ${user.workTree}: ${err.message}`, err);
    throw err;
  } finally {
    await scratch.dispose();
  }
}

/**
 * The tree of the working tree as `git add --all` sees it, written into the scratch repository
 * from a copy of the user's index (honouring .gitignore and the repo's info/exclude).
 */
async function workingTree(
  git: Git,
  user: { workTree: string; gitDir: string; commonDir: string },
  scratchDir: string,
  scratchRepo: GitRepo,
): Promise<string> {
  const indexFile = join(scratchDir, "index.copy");
  await copyFile(join(user.gitDir, "index"), indexFile).catch(() => undefined);
  await copyFile(join(user.commonDir, "info", "exclude"), join(scratchDir, "info", "exclude")).catch(
    () => undefined,
  );
  const wt: GitRepo = { gitDir: scratchRepo.gitDir, workTree: user.workTree, indexFile };
  await git.run(["add", "--all", "--", "."], { repo: wt });
  return (await git.run(["write-tree"], { repo: wt })).trim();
}
