/**
 * Where an attempt's task branch `mesh/<id>` starts. A later attempt continues the branch so
 * committed work is kept. For a task that pushes, the origin's copy of the branch counts too:
 * an attempt that pushed and then died before its result was recorded (or ran on another
 * worker) left its work there, and starting from the base again would end in a rejected
 * (non-fast-forward) push on every attempt. So the pushed branch wins when the local one does
 * not already contain it. A branch on the origin before the task's first attempt is not the
 * task's: the task is refused rather than built on (or pushed over) someone else's work.
 */
import { MeshError } from "../errors.js";
import type { Git } from "./git-cmd.js";
import { cacheRepo, type RepoSource, resolveBase } from "./repo-cache.js";

export type BranchStart =
  /** The cache's branch as it is. */
  | { kind: "local"; head: string }
  /** The cache's branch moved to what was pushed (`previous`: the local head it replaces). */
  | { kind: "pushed"; head: string; previous?: string }
  /** A new branch at `base`. */
  | { kind: "new"; base: string };

export interface BranchStartInput {
  git: Git;
  cache: string;
  src: RepoSource;
  branch: string;
  ref: string | undefined;
  push: boolean;
  attempt: number;
  /** An earlier attempt's head, imported from its bundle (possibly made on another host). */
  carried?: string;
  /** Where a new branch starts instead of the ref (a dependent's: its needs' merge). */
  newBase?: () => Promise<string | undefined>;
  signal?: AbortSignal;
}

export async function branchStart(i: BranchStartInput): Promise<BranchStart> {
  const sig = i.signal ? { signal: i.signal } : {};
  const rev = async (ref: string) =>
    (
      await i.git.tryRun(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], {
        repo: cacheRepo(i.cache),
        ...sig,
      })
    )?.trim() || undefined;
  const local = await rev(`refs/heads/${i.branch}`);
  // What an earlier attempt left beyond this cache: pushed to the origin, or stored as a bundle.
  const pushed = (i.push ? await rev(`refs/remotes/origin/${i.branch}`) : undefined) ?? i.carried;
  if (pushed) {
    if (!local) {
      if (i.attempt <= 1) {
        throw new MeshError(
          "INVALID_ARGUMENT",
          `origin ${i.src.display} already has a branch ${i.branch} from before this task's first attempt (an earlier task with this id, or someone else): delete that branch on the origin or submit the task under another id`,
          { field: "id" },
        );
      }
      return { kind: "pushed", head: pushed };
    }
    if (local === pushed || (await isAncestor(i, pushed, local))) return { kind: "local", head: local };
    return { kind: "pushed", head: pushed, previous: local };
  }
  if (local) return { kind: "local", head: local };
  const start = await i.newBase?.();
  return { kind: "new", base: start ?? (await resolveBase(i.git, i.cache, i.src, i.ref, i.signal)) };
}

async function isAncestor(i: BranchStartInput, a: string, b: string): Promise<boolean> {
  const out = await i.git.tryRun(["merge-base", "--is-ancestor", a, b], {
    repo: cacheRepo(i.cache),
    ...(i.signal ? { signal: i.signal } : {}),
  });
  return out !== undefined;
}
