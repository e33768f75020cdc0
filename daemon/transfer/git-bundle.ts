/**
 * The git side of bundles, through the daemon's hardened git (workspace/git-cmd.ts): make a
 * bundle of one commit over the commits a receiver has, check which commits a repository has,
 * and import a bundle after `git bundle verify`.
 *
 * A bundle needs a ref to carry, and the user's repository must not change: bundles are made in
 * a scratch bare repository that borrows the user's objects (`objects/info/alternates`) and
 * holds the one ref `refs/mesh/c/<tip>`.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MeshError } from "../errors.js";
import type { Git, GitRepo } from "../workspace/index.js";

export const bundleRef = (tip: string): string => `refs/mesh/c/${tip}`;

/** A scratch bare repository borrowing `objectDirs`; `dispose()` removes it. */
export async function scratchRepo(
  git: Git,
  tmpRoot: string,
  objectDirs: string[],
): Promise<{ dir: string; repo: GitRepo; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpRoot, "scratch-"));
  const repo: GitRepo = { gitDir: dir };
  await git.run(["init", "--quiet", "--bare", "--template=", "--", dir], { repo, cwd: tmpRoot });
  if (objectDirs.length)
    await writeFile(join(dir, "objects", "info", "alternates"), `${objectDirs.join("\n")}\n`);
  return { dir, repo, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** The commits of `commits` that `repo` has (as commits). */
export async function presentCommits(git: Git, repo: GitRepo, commits: string[]): Promise<Set<string>> {
  if (commits.length === 0) return new Set();
  const out = await git.run(["cat-file", "--batch-check=%(objectname) %(objecttype)"], {
    repo,
    input: `${commits.join("\n")}\n`,
  });
  const have = new Set<string>();
  for (const line of out.split("\n")) {
    const [sha, type] = line.trim().split(" ");
    if (sha && type === "commit") have.add(sha);
  }
  return have;
}

/**
 * Of `candidates` (commits `repo` has), those that are ancestors of `head`, reduced to the ones
 * no other of them reaches. Made with refs in `repo`, so call it on a scratch repository.
 */
export async function ancestorsOf(
  git: Git,
  repo: GitRepo,
  head: string,
  candidates: string[],
): Promise<string[]> {
  const others = candidates.filter((c) => c !== head);
  if (others.length === 0) return [];
  await git.run(["update-ref", "--stdin"], {
    repo,
    input: others.map((c) => `update refs/mesh/k/${c} ${c}\n`).join(""),
  });
  const merged = (
    await git.run(["for-each-ref", `--merged=${head}`, "--format=%(objectname)", "refs/mesh/k/"], { repo })
  )
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (merged.length <= 1) return merged;
  return (await git.run(["merge-base", "--independent", ...merged], { repo }))
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

/** The first-parent root of `commit`: the repository's identity (stable as history grows). */
export async function rootOf(git: Git, repo: GitRepo, commit: string): Promise<string> {
  const roots = (await git.run(["rev-list", "--first-parent", "--max-parents=0", commit], { repo }))
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const root = roots[roots.length - 1];
  if (!root) throw new MeshError("INTERNAL", `no root commit below ${commit}`);
  return root;
}

/** Writes a bundle of `tip` over `requires` (commits the receiver has) to `file`. Call on a scratch repository. */
export async function createBundle(
  git: Git,
  repo: GitRepo,
  tip: string,
  requires: string[],
  file: string,
): Promise<void> {
  await git.run(["update-ref", bundleRef(tip), tip], { repo });
  await git.run(["bundle", "create", "--quiet", file, "--stdin"], {
    repo,
    input: `${bundleRef(tip)}\n${requires.map((r) => `^${r}\n`).join("")}`,
  });
}

/**
 * `git bundle verify`, then imports the bundle's commit `tip` into `repo` (its objects, and the
 * ref `ref` when given). A bundle that does not verify is refused with DATA_LOSS.
 */
export async function importBundle(
  git: Git,
  repo: GitRepo,
  file: string,
  tip: string,
  ref: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const sig = signal ? { signal } : {};
  const ok = await git.tryRun(["bundle", "verify", "--quiet", file], { repo, ...sig });
  if (ok === undefined) {
    const why = await git.run(["bundle", "verify", file], { repo, ...sig }).then(
      () => "",
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    throw new MeshError(
      "DATA_LOSS",
      `the bundle of commit ${tip.slice(0, 12)} failed git bundle verify (${why || "not a valid bundle"}); it was not used`,
      { field: "repo" },
    );
  }
  const heads = await git.run(["bundle", "list-heads", file, bundleRef(tip)], { repo, ...sig });
  if (!heads.split("\n").some((l) => l.startsWith(`${tip} `))) {
    throw new MeshError(
      "DATA_LOSS",
      `the bundle said to carry ${tip.slice(0, 12)} does not: it was not used`,
      {
        field: "repo",
      },
    );
  }
  await git.run(
    [
      "fetch",
      "--quiet",
      "--no-write-fetch-head",
      "--no-tags",
      "--",
      file,
      ref ? `+${bundleRef(tip)}:${ref}` : bundleRef(tip),
    ],
    { repo, ...sig },
  );
}
