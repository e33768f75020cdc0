/**
 * `mesh fetch`: a task's result bundle into the user's repository as `mesh/<id>`. The result is
 * always imported to the hidden ref `refs/mesh/fetched/<id>` first; the branch then moves only
 * forward, unless forced: a branch with commits the result lacks (diverged) is left alone, and
 * the branch checked out in the work tree is never moved under the user's files.
 */
import { MeshError } from "../errors.js";
import type { ResultBundle } from "../tasks/index.js";
import type { Git, GitRepo } from "../workspace/index.js";
import type { BundleStore } from "./bundle-store.js";
import { ensureCommit } from "./ensure.js";
import { presentCommits } from "./git-bundle.js";

export type FetchOutcome = "created" | "updated" | "unchanged" | "hidden" | "diverged";

export interface FetchedBranch {
  id: string;
  outcome: FetchOutcome;
  branch?: string;
  base: string;
  head: string;
  previous?: string;
  bytes: number;
  hiddenRef: string;
  reason?: string;
}

export const fetchedRef = (id: string): string => `refs/mesh/fetched/${id}`;

export interface FetchInput {
  git: Git;
  store: BundleStore;
  repo: GitRepo;
  id: string;
  bundle: ResultBundle;
  force: boolean;
  hidden: boolean;
  tmpRoot: string;
}

export async function fetchResult(i: FetchInput): Promise<FetchedBranch> {
  const { git, repo, bundle } = i;
  if (!(await presentCommits(git, repo, [bundle.repoId])).has(bundle.repoId)) {
    throw new MeshError(
      "FAILED_PRECONDITION",
      `task ${i.id} ran on another repository (root commit ${bundle.repoId.slice(0, 12)} is not in ${repo.workTree}): run mesh fetch in that repository's checkout, or give --repo`,
      { field: "repo" },
    );
  }
  const { bytes } = await ensureCommit({
    git,
    store: i.store,
    repo,
    repoId: bundle.repoId,
    commit: bundle.head,
    tmpRoot: i.tmpRoot,
    ...(bundle.name ? { known: { name: bundle.name, requires: [bundle.base] } } : {}),
  });
  const hiddenRef = fetchedRef(i.id);
  await git.run(["update-ref", hiddenRef, bundle.head], { repo });
  const out = { id: i.id, base: bundle.base, head: bundle.head, bytes, hiddenRef };
  if (i.hidden) return { ...out, outcome: "hidden" };
  const branch = `mesh/${i.id}`;
  const ref = `refs/heads/${branch}`;
  const previous = (
    await git.tryRun(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], { repo })
  )?.trim();
  if (previous === bundle.head) return { ...out, outcome: "unchanged", branch };
  const current = (await git.tryRun(["symbolic-ref", "--quiet", "HEAD"], { repo }))?.trim();
  if (previous && current === ref) {
    return {
      ...out,
      outcome: "diverged",
      branch,
      previous,
      reason: `${branch} is checked out in ${repo.workTree}: switch to another branch first (the result is at ${hiddenRef})`,
    };
  }
  if (previous && !i.force) {
    const ff = await git.tryRun(["merge-base", "--is-ancestor", previous, bundle.head], { repo });
    if (ff === undefined) {
      return {
        ...out,
        outcome: "diverged",
        branch,
        previous,
        reason: `${branch} has commits the result does not (it is at ${previous.slice(0, 12)}, the result at ${bundle.head.slice(0, 12)}): left as it is; --force moves it (the result is at ${hiddenRef})`,
      };
    }
  }
  // The compare: a branch moved by someone else meanwhile is not overwritten.
  await git.run(["update-ref", ref, bundle.head, previous ?? "0".repeat(bundle.head.length)], { repo });
  return { ...out, outcome: previous ? "updated" : "created", branch, ...(previous ? { previous } : {}) };
}
