/**
 * Brings a commit of a mesh repository into a local repository (a worker's repo cache, or the
 * submitter's checkout on `mesh fetch`): nothing when it is there, else the bundle whose tip it
 * is, after the commits that bundle requires (recursively, oldest first). Each bundle is
 * downloaded to a temp file, verified, imported, and removed.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { MeshError } from "../errors.js";
import type { Git, GitRepo } from "../workspace/index.js";
import type { BundleStore } from "./bundle-store.js";
import { importBundle, presentCommits } from "./git-bundle.js";

export interface EnsureInput {
  git: Git;
  store: BundleStore;
  repo: GitRepo;
  repoId: string;
  commit: string;
  /** Where temp files go. */
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
  const tmp = await mkdtemp(join(i.tmpRoot, "bundle-"));
  try {
    await ensureOne(i, i.commit, i.known, out, tmp, new Set());
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return out;
}

async function ensureOne(
  i: EnsureInput,
  commit: string,
  known: { name: string; requires: string[] } | undefined,
  out: EnsureResult,
  tmp: string,
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
  for (const r of entry.requires) await ensureOne(i, r, undefined, out, tmp, seen);
  const file = join(tmp, `${entry.name}.bundle`);
  out.bytes += await i.store.download(entry.name, file);
  await importBundle(
    i.git,
    i.repo,
    file,
    commit,
    i.refPrefix ? `${i.refPrefix}${commit}` : undefined,
    i.signal,
  );
  await rm(file, { force: true });
  out.imported.push(entry.name);
}
