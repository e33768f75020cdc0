/**
 * The repo cache's git config belongs to the daemon. It is the one config file the daemon's git
 * still reads (global and system config are off), and an agent running as the daemon's user can
 * write it, so its content is fixed: what `git init --bare` writes on this machine, nothing
 * else (no remote: fetch and push name the URL themselves). It is rewritten before the daemon
 * uses a cache and compared before any git runs after an agent: a changed file means someone
 * tried to configure the daemon's git (a filter or diff driver, `core.fsmonitor`, an
 * `include.path`, `extensions.worktreeConfig`, a `receivepack`...), and the attempt is refused.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Git } from "./git-cmd.js";

let canonical: Promise<string> | undefined;

/** What a fresh bare repo's config holds on this machine (e.g. `ignorecase` on macOS). */
export function canonicalCacheConfig(git: Git): Promise<string> {
  canonical ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "mesh-git-init-"));
    try {
      const repo = join(dir, "r.git");
      await git.run(["init", "--quiet", "--bare", "--template=", "--", repo], {
        repo: { gitDir: repo },
        cwd: dir,
      });
      return await readFile(join(repo, "config"), "utf8");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  canonical.catch(() => {
    canonical = undefined;
  });
  return canonical;
}

/** Puts the daemon's config in place (atomically) and drops the cache's hooks folder. */
export async function resetCacheConfig(git: Git, cache: string): Promise<void> {
  const text = await canonicalCacheConfig(git);
  const tmp = join(cache, `config.mesh-${randomBytes(4).toString("hex")}`);
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, join(cache, "config"));
  // Hooks never run (core.hooksPath=/dev/null); nothing of an agent's should lie around either.
  await rm(join(cache, "hooks"), { recursive: true, force: true });
}

/** Why the cache's config is not the daemon's, or undefined when it is. */
export async function cacheConfigChange(git: Git, cache: string): Promise<string | undefined> {
  const path = join(cache, "config");
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile()) return `the repo cache's git config ${path} was replaced or removed`;
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text !== (await canonicalCacheConfig(git))) return `the repo cache's git config ${path} was changed`;
  return undefined;
}
