/**
 * Merges of task branches without a working tree, in a bare repo cache: what a dependent task
 * starts from (its needs' heads merged) and the early conflict check between finished branches
 * of a plan. Only `git merge-tree --write-tree` (git >= 2.38) and `git commit-tree`: no
 * checkout, no index, nothing an agent's worktree could influence.
 */
import { MeshError } from "../errors.js";
import { type Git, GitCommandError, type GitRepo } from "./git-cmd.js";

/** The needs of a task conflict: permanent (the same results merge the same way every time). */
export class NeedsConflictError extends MeshError {
  override name = "NeedsConflictError";
  constructor(
    /** The tasks whose results were being merged when the conflict came. */
    readonly tasks: string[],
    /** The conflicting paths, sorted. */
    readonly files: string[],
  ) {
    const [last, ...firsts] = [...tasks].reverse();
    super(
      "FAILED_PRECONDITION",
      `needs: the result branches of ${firsts.reverse().join(", ")} and ${last} conflict in ${files.join(", ")}: make the tasks own distinct files, or let one need the other`,
      { field: "needs" },
    );
  }
}

const OID_RE = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

export interface TreeMerge {
  /** The merged tree (with conflict markers in it when `conflicts` is not empty). */
  tree: string;
  /** Paths git could not merge, sorted. */
  conflicts: string[];
}

/** `git merge-tree --write-tree A B`: the merged tree and the conflicting paths (none: clean). */
export async function mergeTree(
  git: Git,
  repo: GitRepo,
  a: string,
  b: string,
  signal?: AbortSignal,
): Promise<TreeMerge> {
  let out: string;
  try {
    out = await git.run(["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", a, b], {
      repo,
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    // Exit 1 is a conflict: the tree and the paths are on stdout all the same.
    if (
      !(err instanceof GitCommandError) ||
      err.kind !== "failed" ||
      !OID_RE.test(err.stdout.split("\0")[0] ?? "")
    )
      throw err;
    out = err.stdout;
  }
  const [tree = "", ...paths] = out.split("\0");
  if (!OID_RE.test(tree)) throw new Error(`git merge-tree printed no tree (${out.slice(0, 80)})`);
  return { tree, conflicts: [...new Set(paths.filter((p) => p !== ""))].sort() };
}

/** Whether `a` is an ancestor of (or equal to) `b`. */
export async function isAncestor(
  git: Git,
  repo: GitRepo,
  a: string,
  b: string,
  signal?: AbortSignal,
): Promise<boolean> {
  if (a === b) return true;
  const out = await git.tryRun(["merge-base", "--is-ancestor", a, b], {
    repo,
    ...(signal ? { signal } : {}),
  });
  return out !== undefined;
}

/** The paths that differ between `base` and `head` (renames as a deletion and an addition). */
export async function changedPaths(
  git: Git,
  repo: GitRepo,
  base: string,
  head: string,
  signal?: AbortSignal,
): Promise<string[]> {
  if (base === head) return [];
  const out = await git.run(["diff", "--name-only", "--no-renames", "-z", base, head, "--"], {
    repo,
    ...(signal ? { signal } : {}),
  });
  return out.split("\0").filter((p) => p !== "");
}

/** One branch to merge: whose it is (named in a conflict) and its head. */
export interface MergeInput {
  taskId: string;
  head: string;
}

export interface MergeOptions {
  /** Author and committer of the merge commit. */
  author: { name: string; email: string };
  signal?: AbortSignal;
}

export type MergeStart =
  /** Nothing to merge: start where the task would anyway. */
  | { kind: "none" }
  /** One branch left (the others were contained in it): start at its head. */
  | { kind: "head"; head: string; taskId: string }
  /** A merge commit whose parents are the heads, in the order given. */
  | { kind: "merge"; commit: string; parents: string[] };

/**
 * The commit a dependent starts from: its needs' heads (in the caller's order) merged pairwise
 * with `merge-tree`, then one commit with every head as a parent. A head contained in another
 * is dropped (it adds nothing). A conflict throws NeedsConflictError (FAILED_PRECONDITION, field
 * `needs`) naming the files and the sides; nothing is written then but unreachable objects.
 *
 * The merge commit's dates are the newest head's committer date and its identity the given
 * one, so the same needs give the same commit on any host.
 */
export async function mergeHeads(
  git: Git,
  repo: GitRepo,
  inputs: readonly MergeInput[],
  opts: MergeOptions,
): Promise<MergeStart> {
  const sig = opts.signal ? { signal: opts.signal } : {};
  const unique = inputs.filter((x, i) => inputs.findIndex((y) => y.head === x.head) === i);
  // One call for the heads no other head contains (the rest add nothing), kept in input order.
  const independent =
    unique.length > 1
      ? new Set(
          (await git.run(["merge-base", "--independent", ...unique.map((u) => u.head)], { repo, ...sig }))
            .split("\n")
            .map((l) => l.trim())
            .filter(Boolean),
        )
      : new Set(unique.map((u) => u.head));
  const kept = unique.filter((u) => independent.has(u.head));
  const [first, ...rest] = kept;
  if (!first) return { kind: "none" };
  if (rest.length === 0) return { kind: "head", head: first.head, taskId: first.taskId };
  const date = await newestDate(
    git,
    repo,
    kept.map((k) => k.head),
    opts.signal,
  );
  const commitTree = async (tree: string, parents: string[], message: string): Promise<string> =>
    (
      await git.run(
        [
          "-c",
          `user.name=${opts.author.name}`,
          "-c",
          `user.email=${opts.author.email}`,
          "commit-tree",
          tree,
          ...parents.flatMap((p) => ["-p", p]),
          "-m",
          message,
        ],
        { repo, date, ...sig },
      )
    ).trim();
  let acc = first.head;
  let accTasks = [first.taskId];
  let tree = "";
  for (const next of rest) {
    const m = await mergeTree(git, repo, acc, next.head, opts.signal);
    if (m.conflicts.length) {
      throw new NeedsConflictError([...accTasks, next.taskId], m.conflicts);
    }
    tree = m.tree;
    accTasks = [...accTasks, next.taskId];
    // A step commit only so the next merge-tree has a commit (and merge base) to start from.
    acc = await commitTree(tree, [acc, next.head], "mesh: merge step");
  }
  const parents = kept.map((k) => k.head);
  const commit = await commitTree(
    tree,
    parents,
    `Merge the results of ${kept.map((k) => k.taskId).join(", ")}\n\nmesh: the start of a task that needs them`,
  );
  return { kind: "merge", commit, parents };
}

async function newestDate(git: Git, repo: GitRepo, heads: string[], signal?: AbortSignal): Promise<string> {
  const out = await git.run(["show", "-s", "--format=%ct", ...heads, "--"], {
    repo,
    ...(signal ? { signal } : {}),
  });
  const secs = Math.max(...out.split("\n").filter(Boolean).map(Number));
  return `${secs} +0000`;
}
