/**
 * The git side of bundles, through the daemon's hardened git (workspace/git-cmd.ts): make a
 * bundle of one commit over the commits a receiver has (to a file, or streamed), check which
 * commits a repository has, and import a bundle while it streams in, verified before use.
 *
 * A bundle needs a ref to carry, and the user's repository must not change: bundles are made in
 * a scratch bare repository that borrows the user's objects (`objects/info/alternates`) and
 * holds the one ref `refs/mesh/c/<tip>`.
 */
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { errorMessage, MeshError } from "../errors.js";
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

/** Writes the bundle of `tip` over `requires` into `sink` while git makes it (`git bundle create -`). */
export async function streamBundle(
  git: Git,
  repo: GitRepo,
  tip: string,
  requires: string[],
  sink: Writable,
  signal?: AbortSignal,
): Promise<void> {
  await git.run(["update-ref", bundleRef(tip), tip], { repo });
  await git.run(["bundle", "create", "--quiet", "-", "--stdin"], {
    repo,
    input: `${bundleRef(tip)}\n${requires.map((r) => `^${r}\n`).join("")}`,
    stdout: sink,
    ...(signal ? { signal } : {}),
  });
}

/** The header of a v2/v3 bundle: its prerequisites and refs, and the pack bytes read past it. */
interface BundleHeader {
  prerequisites: string[];
  refs: Map<string, string>;
  rest: Buffer;
}

const MAX_HEADER = 1024 * 1024;
const OID_RE = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

async function readHeader(it: AsyncIterator<Buffer>): Promise<BundleHeader | string> {
  let buf = Buffer.alloc(0);
  let end = -1;
  while (end < 0) {
    const { done, value } = await it.next();
    if (done) return "it ends before its header does";
    buf = Buffer.concat([buf, Buffer.from(value)]);
    end = buf.indexOf("\n\n");
    if (end < 0 && buf.length > MAX_HEADER) return "its header is over 1 MiB";
  }
  const lines = buf.subarray(0, end).toString("utf8").split("\n");
  const sig = lines.shift();
  if (sig !== "# v2 git bundle" && sig !== "# v3 git bundle") return "it does not start as a git bundle";
  const out: BundleHeader = { prerequisites: [], refs: new Map(), rest: buf.subarray(end + 2) };
  for (const line of lines) {
    if (line.startsWith("@")) {
      if (line !== "@object-format=sha1" && line !== "@object-format=sha256")
        return `it needs the unknown capability ${line.slice(0, 60)}`;
      continue;
    }
    if (line.startsWith("-")) {
      const oid = line.slice(1).split(" ")[0] ?? "";
      if (!OID_RE.test(oid)) return "a prerequisite line is not an object id";
      out.prerequisites.push(oid);
      continue;
    }
    const sp = line.indexOf(" ");
    const oid = line.slice(0, sp);
    if (sp < 0 || !OID_RE.test(oid)) return "a ref line is not an object id and a ref";
    out.refs.set(line.slice(sp + 1), oid);
  }
  return out;
}

const refused = (tip: string, why: string, cause?: unknown): MeshError =>
  new MeshError(
    "DATA_LOSS",
    `the bundle of commit ${tip.slice(0, 12)} failed git bundle verify (${why}); it was not used`,
    { field: "repo", ...(cause ? { cause } : {}) },
  );

/**
 * Imports the bundle of `tip` into \`repo\` while it arrives, checking what \`git bundle
 * verify\` and \`git fetch\` check: a bundle header carrying \`tip\` as its ref, every prerequisite
 * present (before any of the pack is read), the pack's own checksums and objects
 * (\`index-pack --stdin\`), the store's digest of the whole bundle, and every object \`tip\`
 * reaches past the prerequisites (\`rev-list --objects\`). Only then the ref \`ref\` (when given);
 * on any failure the new pack is removed again: DATA_LOSS, nothing imported.
 */
export async function importBundleStream(
  git: Git,
  repo: GitRepo,
  bundle: { data: Readable; verified: Promise<void> },
  tip: string,
  ref: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const sig = signal ? { signal } : {};
  const it = bundle.data[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let packHash: string | undefined;
  try {
    const header = await readHeader(it);
    if (typeof header === "string") throw refused(tip, header);
    if (header.refs.get(bundleRef(tip)) !== tip) {
      throw new MeshError(
        "DATA_LOSS",
        `the bundle said to carry ${tip.slice(0, 12)} does not: it was not used`,
        {
          field: "repo",
        },
      );
    }
    const have = await presentCommits(git, repo, header.prerequisites);
    const missing = header.prerequisites.filter((p) => !have.has(p));
    if (missing.length) {
      throw refused(
        tip,
        `the repository lacks these prerequisite commits: ${missing.join(", ").slice(0, 200)}`,
      );
    }
    // The pack goes to index-pack as it arrives; the pump reads the store's stream to its end
    // even after index-pack is done, since only a clean end says the digest matched.
    const pack = new PassThrough();
    let gitDone = false;
    let wake: (() => void) | undefined;
    const pump = (async () => {
      try {
        let chunk: Buffer | undefined = header.rest.length ? header.rest : undefined;
        for (;;) {
          if (chunk && !gitDone && !pack.write(chunk)) {
            await new Promise<void>((r) => {
              wake = r;
              pack.once("drain", r);
            });
          }
          const { done, value } = await it.next();
          if (done) break;
          chunk = Buffer.from(value);
        }
        pack.end();
      } catch (err) {
        pack.destroy(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    })();
    pump.catch(() => undefined);
    const packDir = join(repo.commonDir ?? repo.gitDir, "objects", "pack");
    const tmpBefore = new Set(await tmpPacks(packDir));
    const out = await git
      .run(["index-pack", "--stdin", "--fix-thin"], { repo, stdin: pack, ...sig })
      .catch(async (err: unknown) => {
        // A failed index-pack leaves its tmp_pack_* behind: remove the one it made.
        for (const f of await tmpPacks(packDir)) {
          if (!tmpBefore.has(f)) await rm(join(packDir, f), { force: true });
        }
        throw refused(tip, `git index-pack: ${err instanceof Error ? err.message : String(err)}`, err);
      })
      .finally(() => {
        gitDone = true;
        wake?.();
      });
    packHash = /^(?:pack|keep)\t([0-9a-f]+)/.exec(out.trim())?.[1];
    await pump.catch((err: unknown) => {
      throw new MeshError(
        "DATA_LOSS",
        `the bundle of commit ${tip.slice(0, 12)} arrived damaged: ${errorMessage(err)}; it was not used`,
        {
          field: "repo",
          cause: err,
        },
      );
    });
    await bundle.verified;
    const objectsOk = await git.tryRun(
      ["rev-list", "--objects", "--quiet", tip, "--not", ...header.prerequisites, "--"],
      { repo, ...sig },
    );
    if (objectsOk === undefined) throw refused(tip, "objects the commit reaches are missing");
    if (ref) await git.run(["update-ref", ref, tip], { repo, ...sig });
    packHash = undefined;
  } finally {
    bundle.data.destroy();
    if (packHash) await removePack(repo, packHash);
  }
}

async function tmpPacks(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((f) => f.startsWith("tmp_pack_"));
}

async function removePack(repo: GitRepo, hash: string): Promise<void> {
  const base = join(repo.commonDir ?? repo.gitDir, "objects", "pack", `pack-${hash}`);
  await Promise.all([".pack", ".idx", ".rev", ".keep"].map((ext) => rm(`${base}${ext}`, { force: true })));
}
