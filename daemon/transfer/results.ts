/**
 * Results come home: a worker stores an attempt's task branch as the bundle `base..head` (the
 * branch's commits since the task's base, so any repository with the base, or able to get it
 * from the store, can import it), indexed as the tip `head`.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ResultBundle } from "../tasks/index.js";
import type { Git, GitRepo } from "../workspace/index.js";
import type { BundleStore } from "./bundle-store.js";
import { createBundle } from "./git-bundle.js";
import { bundleName } from "./ship.js";

export interface StoreResultInput {
  git: Git;
  store: BundleStore;
  /** The worker's repo cache (refs may be written there). */
  repo: GitRepo;
  repoId: string;
  base: string;
  head: string;
  taskId: string;
  attempt: number;
  tmpRoot: string;
  /** The commits the bundle requires (default: the base). */
  requires?: string[];
}

export async function storeResult(i: StoreResultInput): Promise<ResultBundle> {
  const ref: ResultBundle = { repoId: i.repoId, base: i.base, head: i.head, size: 0 };
  if (i.head === i.base) return ref;
  const existing = await i.store.entry(i.repoId, i.head);
  if (existing) return { ...ref, name: existing.name, size: existing.size };
  const requires = i.requires?.length ? [...i.requires] : [i.base];
  const name = bundleName(i.repoId, i.head, requires);
  const tmp = await mkdtemp(join(i.tmpRoot, "result-"));
  try {
    const file = join(tmp, "result.bundle");
    await createBundle(i.git, i.repo, i.head, requires, file);
    const size = (await stat(file)).size;
    await i.store.put(
      {
        v: 1,
        name,
        repoId: i.repoId,
        tip: i.head,
        requires,
        size,
        kind: "result",
        taskId: i.taskId,
        attempt: i.attempt,
        at: new Date().toISOString(),
      },
      file,
    );
    return { ...ref, name, size };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
