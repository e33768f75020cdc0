/**
 * Brings a commit of a mesh repository into a local repository (a worker's repo cache, or the
 * submitter's checkout on `mesh fetch`): nothing when it is there, else the bundle whose tip it
 * is, after the commits that bundle requires (recursively, oldest first). Each bundle is
 * streamed from the store into git while it arrives, and verified before its ref is set
 * (git-bundle.ts importBundleStream).
 */
import { MeshError } from "../errors.js";
import type { Git, GitRepo } from "../workspace/index.js";
import type { BundleStore } from "./bundle-store.js";
import { importBundleStream, presentCommits } from "./git-bundle.js";

export interface EnsureInput {
  git: Git;
  store: BundleStore;
  repo: GitRepo;
  repoId: string;
  commit: string;
  /** Where temp files would go (none now: bundles stream into git). */
  tmpRoot: string;
  /** Each imported tip gets this ref (prefix + commit) so it stays reachable; none: objects only. */
  refPrefix?: string;
  /** The bundle to use for `commit` when the caller knows it (a task record's result). */
  known?: { name: string; requires: string[] };
  signal?: AbortSignal;
}

export interface EnsureResult {
  /** Bundles imported, in order. */
  imported: string[];
  bytes: number;
}

const MAX_CHAIN = 10_000;

export async function ensureCommit(i: EnsureInput): Promise<EnsureResult> {
  const out: EnsureResult = { imported: [], bytes: 0 };
  await ensureOne(i, i.commit, i.known, out, new Set());
  return out;
}

async function ensureOne(
  i: EnsureInput,
  commit: string,
  known: { name: string; requires: string[] } | undefined,
  out: EnsureResult,
  seen: Set<string>,
): Promise<void> {
  i.signal?.throwIfAborted();
  if ((await presentCommits(i.git, i.repo, [commit])).has(commit)) return;
  if (seen.has(commit) || seen.size > MAX_CHAIN) {
    throw new MeshError("DATA_LOSS", `the bundles of repo ${i.repoId.slice(0, 12)} form a loop at ${commit}`);
  }
  seen.add(commit);
  const entry = known ?? (await i.store.entry(i.repoId, commit));
  if (!entry) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `commit ${commit.slice(0, 12)} of repo mesh://${i.repoId} is neither here nor in the mesh's bundle store (its bundle expired with the task retention, or it was never shipped): submit the task again from the repository that has it`,
      { field: "repo" },
    );
  }
  for (const r of entry.requires) await ensureOne(i, r, undefined, out, seen);
  const bundle = await i.store.open(entry.name);
  await importBundleStream(
    i.git,
    i.repo,
    bundle,
    commit,
    i.refPrefix ? `${i.refPrefix}${commit}` : undefined,
    i.signal,
  );
  out.bytes += bundle.size;
  out.imported.push(entry.name);
}
