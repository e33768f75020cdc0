/**
 * Merges without a working tree (daemon/workspace/merge.ts) on real git repos: the start of a
 * dependent from several result branches (the same commit on any host), contained branches
 * dropped, conflicts named; the paths a branch changes.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import { changedPaths, Git, mergeHeads, mergeTree, NeedsConflictError } from "../daemon/workspace/index.js";
import { makeTempDir, removeTempDirs } from "./harness/index.js";
import { git } from "./support/plan-mesh.js";

const daemonGit = new Git();
const AUTHOR = { name: "agent-mesh", email: "mesh@localhost" };
let work: string;
/** Bare copies, as repo caches are. */
let cacheA: string;
let cacheB: string;
const heads: Record<string, string> = {};
/** Each branch commit is a day later than the one before, all long ago. */
let day = 1;

/** A branch off `from` that writes `files`, committed; its head. */
async function branch(name: string, from: string, files: Record<string, string>): Promise<string> {
  await git(work, "checkout", "--quiet", "-b", name, from);
  for (const [f, text] of Object.entries(files)) await writeFile(join(work, f), text);
  await git(work, "add", ".");
  const date = `2001-01-${String(day++).padStart(2, "0")}T12:00:00Z`;
  await execa(
    "git",
    ["-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", name],
    {
      cwd: work,
      env: { LC_ALL: "C", GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
    },
  );
  heads[name] = await git(work, "rev-parse", "HEAD");
  return heads[name]!;
}

beforeAll(async () => {
  work = await makeTempDir("merge-work-");
  await git(work, "init", "--quiet", "-b", "main");
  await writeFile(join(work, "shared.txt"), "one\ntwo\nthree\n");
  await git(work, "add", ".");
  await git(work, "commit", "--quiet", "-m", "base");
  await branch("x", "main", { "x.txt": "x\n" });
  await branch("y", "main", { "y.txt": "y\n" });
  await branch("z", "main", { "z.txt": "z\n", "shared.txt": "one\ntwo\nTHREE by z\n" });
  await branch("x2", "x", { "x.txt": "x again\n" });
  await branch("w", "main", { "shared.txt": "one\ntwo\nTHREE by w\n" });
  cacheA = join(await makeTempDir("merge-cache-a-"), "c.git");
  cacheB = join(await makeTempDir("merge-cache-b-"), "c.git");
  await git(work, "clone", "--quiet", "--bare", work, cacheA);
  await git(work, "clone", "--quiet", "--bare", work, cacheB);
});

afterAll(() => removeTempDirs());

const repo = (gitDir: string) => ({ gitDir });

describe("mergeHeads", () => {
  it("merges three branches into one commit with every head as a parent, the same commit on two caches", async () => {
    const inputs = ["x", "y", "z"].map((t) => ({ taskId: t, head: heads[t]! }));
    const a = await mergeHeads(daemonGit, repo(cacheA), inputs, { author: AUTHOR });
    const b = await mergeHeads(daemonGit, repo(cacheB), inputs, { author: AUTHOR });
    expect(a.kind).toBe("merge");
    if (a.kind !== "merge") return;
    expect(b).toEqual(a);
    // Dated as its newest parent (z, 2001-01-03), not now: that is what makes it the same everywhere.
    expect(await git(cacheA, "show", "-s", "--format=%an <%ae> %cI", a.commit)).toBe(
      "agent-mesh <mesh@localhost> 2001-01-03T12:00:00+00:00",
    );
    expect(a.parents).toEqual([heads.x, heads.y, heads.z]);
    expect((await git(cacheA, "rev-list", "--parents", "-n", "1", a.commit)).split(" ").slice(1)).toEqual(
      a.parents,
    );
    expect((await git(cacheA, "ls-tree", "--name-only", a.commit)).split("\n").sort()).toEqual([
      "shared.txt",
      "x.txt",
      "y.txt",
      "z.txt",
    ]);
    expect(await git(cacheA, "show", `${a.commit}:shared.txt`)).toBe("one\ntwo\nTHREE by z");
  });

  it("drops a branch another one contains: one left is a start at its head", async () => {
    const out = await mergeHeads(
      daemonGit,
      repo(cacheA),
      [
        { taskId: "x", head: heads.x! },
        { taskId: "x2", head: heads.x2! },
      ],
      { author: AUTHOR },
    );
    expect(out).toEqual({ kind: "head", head: heads.x2, taskId: "x2" });
    const three = await mergeHeads(
      daemonGit,
      repo(cacheA),
      ["x", "x2", "y"].map((t) => ({ taskId: t, head: heads[t]! })),
      { author: AUTHOR },
    );
    expect(three).toMatchObject({ kind: "merge", parents: [heads.x2, heads.y] });
    expect(await mergeHeads(daemonGit, repo(cacheA), [], { author: AUTHOR })).toEqual({ kind: "none" });
  });

  it("a conflict names the files and the branches merged so far, as FAILED_PRECONDITION on needs", async () => {
    const err = await mergeHeads(
      daemonGit,
      repo(cacheA),
      ["w", "x", "z"].map((t) => ({ taskId: t, head: heads[t]! })),
      { author: AUTHOR },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NeedsConflictError);
    expect(isMeshError(err, "FAILED_PRECONDITION")).toBe(true);
    const c = err as NeedsConflictError;
    expect(c.field).toBe("needs");
    expect(c.tasks).toEqual(["w", "x", "z"]);
    expect(c.files).toEqual(["shared.txt"]);
    expect(c.message).toContain("w, x and z conflict in shared.txt");
  });
});

describe("mergeTree and changedPaths", () => {
  it("reports a clean merge with no conflicts and a conflicting one with its files", async () => {
    expect((await mergeTree(daemonGit, repo(cacheA), heads.x!, heads.y!)).conflicts).toEqual([]);
    const m = await mergeTree(daemonGit, repo(cacheA), heads.z!, heads.w!);
    expect(m.conflicts).toEqual(["shared.txt"]);
    expect(m.tree).toMatch(/^[0-9a-f]{40}$/);
  });

  it("lists the paths a branch changes", async () => {
    const base = await git(cacheA, "rev-parse", "main");
    expect(await changedPaths(daemonGit, repo(cacheA), base, heads.z!)).toEqual(["shared.txt", "z.txt"]);
    expect(await changedPaths(daemonGit, repo(cacheA), base, base)).toEqual([]);
  });
});
