/**
 * The per-daemon cache of task repos: one bare clone per origin under `<stateDir>/repos/<hash>`,
 * fetched before each task. Task branches (`mesh/<id>`) live as local branches of the cache;
 * origin branches are fetched to `refs/remotes/origin/*` so a fetch never touches task work.
 * The cache has no configured remote: the URL comes from the task every time (an agent could
 * rewrite a configured one, see cache-config.ts).
 * Callers serialize on the cache directory (KeyedLock).
 */
import { createHash, randomBytes } from "node:crypto";
import { access, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { MeshError } from "../errors.js";
import type { RepoSource } from "../tasks/index.js";
import { resetCacheConfig } from "./cache-config.js";
import { type Git, GitCommandError, type GitRepo } from "./git-cmd.js";

// The pure syntax checks live with the task spec, so submit and the workspace judge alike.
export { parseRepo, type RepoSource, validateRef } from "../tasks/index.js";

/** Where fetch leaves the origin's default branch (its HEAD). */
const ORIGIN_HEAD = "refs/mesh/origin-head";

function invalid(message: string, field = "repo"): MeshError {
  return new MeshError("INVALID_ARGUMENT", message, { field });
}

export function cacheDirFor(reposRoot: string, src: RepoSource): string {
  return join(reposRoot, createHash("sha256").update(src.key).digest("hex").slice(0, 24));
}

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

/** Patterns of git failures that another try cannot fix. */
const PERMANENT: Array<[RegExp, string]> = [
  [/does not appear to be a git repository/i, "is not a git repository"],
  [/repository '.*' not found|repository not found/i, "was not found"],
  [/not a git repository/i, "is not a git repository"],
  [/dubious ownership/i, "is owned by another user (git safe.directory)"],
  [/unable to find remote helper|transport '.*' not allowed/i, "uses a transport git may not use here"],
  [
    /authentication failed|could not read (username|password)|permission denied \(publickey/i,
    "cannot be accessed with this daemon's credentials",
  ],
];

function fetchError(err: unknown, src: RepoSource): MeshError {
  if (err instanceof GitCommandError && err.kind === "failed") {
    if (/couldn't find remote ref HEAD/i.test(err.stderr)) {
      return invalid(`repo ${src.display} has no default branch (is it empty?); give a ref`);
    }
    for (const [re, what] of PERMANENT) {
      if (re.test(err.stderr)) return invalid(`repo ${src.display} ${what} (${err.message})`);
    }
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new MeshError("UNAVAILABLE", `cannot fetch ${src.display}: ${msg}`, { cause: err });
}

export interface SyncOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  /** Also fetch the origin's HEAD (needed when the task names no ref). */
  wantHead: boolean;
}

/** The git repo of a bare cache. */
export const cacheRepo = (dir: string): GitRepo => ({ gitDir: dir });

/** When the cache was last used (see `markCacheUsed`); the retention of caches reads it. */
export const CACHE_USED_FILE = "mesh-used";

export async function markCacheUsed(dir: string): Promise<void> {
  await writeFile(join(dir, CACHE_USED_FILE), `${new Date().toISOString()}\n`);
}

/**
 * Makes sure the bare cache of `src` exists at `dir` with the daemon's config, and fetches it.
 * Call under the repo lock.
 */
export async function syncCache(git: Git, dir: string, src: RepoSource, opts: SyncOptions): Promise<void> {
  if (src.localPath) {
    const st = await stat(src.localPath).catch(() => undefined);
    if (!st?.isDirectory()) throw invalid(`repo ${src.display} does not exist (no such directory)`);
  }
  await ensureCache(git, dir, opts.signal);
  await resetCacheConfig(git, dir);
  await markCacheUsed(dir);
  // The URL is given here, never read from config, and so is the program run on the other side.
  const args = [
    "fetch",
    "--prune",
    "--progress",
    "--no-write-fetch-head",
    "--upload-pack=git-upload-pack",
    "--",
    src.url,
    "+refs/heads/*:refs/remotes/origin/*",
    "+refs/tags/*:refs/tags/*",
  ];
  if (opts.wantHead) args.push(`+HEAD:${ORIGIN_HEAD}`);
  try {
    await git.run(args, {
      repo: cacheRepo(dir),
      timeoutMs: opts.timeoutMs,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    throw fetchError(err, src);
  }
}

/** The cache of a repo shipped through the mesh: made and reset like any; its commits come from bundles. */
export async function prepareMeshCache(git: Git, dir: string, signal?: AbortSignal): Promise<void> {
  await ensureCache(git, dir, signal);
  await resetCacheConfig(git, dir);
  await markCacheUsed(dir);
}

async function ensureCache(git: Git, dir: string, signal?: AbortSignal): Promise<void> {
  const sig = signal ? { signal } : {};
  if ((await exists(join(dir, "HEAD"))) && (await exists(join(dir, "objects")))) return;
  // Missing or half-made (a crash during creation): build it aside, then move it in place.
  await rm(dir, { recursive: true, force: true });
  const root = dirname(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const tmp = `${dir}.tmp-${randomBytes(4).toString("hex")}`;
  try {
    await git.run(["init", "--quiet", "--bare", "--template=", "--", tmp], {
      repo: cacheRepo(tmp),
      cwd: root,
      ...sig,
    });
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** The commit a new task branch starts from. Throws INVALID_ARGUMENT for a ref that is not there. */
export async function resolveBase(
  git: Git,
  dir: string,
  src: RepoSource,
  ref: string | undefined,
  signal?: AbortSignal,
): Promise<string> {
  const candidates = ref
    ? [
        `refs/remotes/origin/${ref.replace(/^refs\/heads\//, "")}`,
        `refs/tags/${ref.replace(/^refs\/tags\//, "")}`,
        ref,
      ]
    : [ORIGIN_HEAD];
  for (const c of candidates) {
    const sha = await git.tryRun(["rev-parse", "--verify", "--quiet", `${c}^{commit}`], {
      repo: cacheRepo(dir),
      ...(signal ? { signal } : {}),
    });
    if (sha?.trim()) return sha.trim();
  }
  if (!ref) throw invalid(`repo ${src.display}: cannot find its default branch; give a ref`);
  throw invalid(`ref "${ref}" not found in ${src.display} (not a branch, tag or commit there)`, "ref");
}
