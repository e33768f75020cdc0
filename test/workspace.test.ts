/**
 * Git workspaces with real git repos in temp dirs: worktrees on `mesh/<id>`, commits and pushes
 * on success, concurrent tasks of one repo, leftovers of crashed attempts, permanent errors for
 * bad repos and refs, and the retention sweep.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig } from "../daemon/config.js";
import type { Daemon } from "../daemon/index.js";
import { createLogger } from "../daemon/log.js";
import { type TaskSpec, validateTaskSpec } from "../daemon/tasks/spec.js";
import {
  GitWorkspaceProvider,
  keepBranchWhileTaskLives,
  MeshWorkspaces,
  type PreparedWorkspace,
  parseRepo,
  type TaskRecordView,
} from "../daemon/workspace/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { type MeshClient, openClient, plantOrphanedTask, startDaemon, waitForState } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

afterAll(async () => {
  await removeTempDirs();
});

const log = createLogger("silent");
const ID = ["-c", "user.name=Test User", "-c", "user.email=test@example.com"];

async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa("git", [...ID, ...args], { cwd, env: { LC_ALL: "C" } });
  return r.stdout.trim();
}

/** A non-bare origin on `main` (README), a `dev` branch (dev.txt) and a tag `v1` on the first commit. */
async function makeOrigin(): Promise<{ dir: string; first: string; main: string; dev: string }> {
  const dir = await makeTempDir("origin-");
  await git(dir, "init", "--quiet", "-b", "main");
  await writeFile(join(dir, "README.md"), "hello\n");
  await git(dir, "add", "README.md");
  await git(dir, "commit", "--quiet", "-m", "first");
  const first = await git(dir, "rev-parse", "HEAD");
  await git(dir, "tag", "v1");
  await git(dir, "checkout", "--quiet", "-b", "dev");
  await writeFile(join(dir, "dev.txt"), "dev\n");
  await git(dir, "add", "dev.txt");
  await git(dir, "commit", "--quiet", "-m", "dev work");
  const dev = await git(dir, "rev-parse", "HEAD");
  await git(dir, "checkout", "--quiet", "main");
  await writeFile(join(dir, "main.txt"), "main\n");
  await git(dir, "add", "main.txt");
  await git(dir, "commit", "--quiet", "-m", "main work");
  const main = await git(dir, "rev-parse", "HEAD");
  return { dir, first, main, dev };
}

/** A provider whose git sees no user config (so the mesh's own author is used). */
async function provider(
  opts: { retentionMs?: number; home?: string } = {},
): Promise<{ ws: GitWorkspaceProvider; stateDir: string }> {
  const stateDir = await makeTempDir("ws-state-");
  const home = opts.home ?? (await makeTempDir("ws-home-"));
  const ws = new GitWorkspaceProvider({
    stateDir,
    retentionMs: opts.retentionMs ?? 86_400_000,
    log,
    env: { ...process.env, HOME: home, GIT_CONFIG_NOSYSTEM: "1" },
  });
  return { ws, stateDir };
}

/** Submit refuses a bad repo or ref too; these specs skip it, to test the workspace's own defence. */
function spec(repo: string | undefined, extra: Record<string, unknown> = {}): TaskSpec {
  return { ...validateTaskSpec({ id: uniqueId("ws"), prompt: "p" }), ...(repo ? { repo } : {}), ...extra };
}

const live = () => new AbortController().signal;

async function expectInvalid(p: Promise<unknown>, re: RegExp): Promise<void> {
  await expect(p).rejects.toMatchObject({ name: "MeshError", code: "INVALID_ARGUMENT" });
  await expect(p).rejects.toThrow(re);
}

describe("GitWorkspaceProvider", () => {
  it("creates a worktree on mesh/<id> from the default branch, a branch, a tag or a commit", async () => {
    const o = await makeOrigin();
    const { ws, stateDir } = await provider();
    const cases: Array<[string | undefined, string, string]> = [
      [undefined, o.main, "main.txt"],
      ["dev", o.dev, "dev.txt"],
      ["refs/heads/dev", o.dev, "dev.txt"],
      ["v1", o.first, "README.md"],
      [o.first, o.first, "README.md"],
    ];
    for (const [ref, sha, file] of cases) {
      const s = spec(o.dir, ref ? { ref } : {});
      const w = await ws.prepare(s, 1, live());
      expect(w.workdir).toBe(join(stateDir, "work", s.id, "a1"));
      expect(w.branch).toBe(`mesh/${s.id}`);
      expect(await git(w.workdir, "rev-parse", "HEAD")).toBe(sha);
      expect(await git(w.workdir, "symbolic-ref", "HEAD")).toBe(`refs/heads/mesh/${s.id}`);
      expect(existsSync(join(w.workdir, file))).toBe(true);
      expect(await git(w.workdir, "status", "--porcelain")).toBe("");
    }
    // One bare cache for the origin, under <stateDir>/repos.
    const cache = ws.cacheDir(o.dir);
    expect(cache.startsWith(join(stateDir, "repos"))).toBe(true);
    expect(await git(cache, "rev-parse", "--is-bare-repository")).toBe("true");
  });

  it("fetches before each task: a new commit on the origin is the next task's base", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const a = await ws.prepare(spec(o.dir), 1, live());
    expect(await git(a.workdir, "rev-parse", "HEAD")).toBe(o.main);
    await writeFile(join(o.dir, "later.txt"), "later\n");
    await git(o.dir, "add", "later.txt");
    await git(o.dir, "commit", "--quiet", "-m", "later");
    const b = await ws.prepare(spec(o.dir), 1, live());
    expect(await git(b.workdir, "rev-parse", "HEAD")).toBe(await git(o.dir, "rev-parse", "HEAD"));
  });

  it("on success commits what the agent left uncommitted, as agent-mesh when git config names nobody", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s = spec(o.dir);
    const w = await ws.prepare(s, 1, live());
    await writeFile(join(w.workdir, "new.txt"), "new\n");
    await writeFile(join(w.workdir, "README.md"), "changed\n");
    const fin = await w.finish({ succeeded: true, message: "task done" });
    expect(fin.headCommit).toMatch(/^[0-9a-f]{40}$/);
    const cache = ws.cacheDir(o.dir);
    expect(await git(cache, "rev-parse", `refs/heads/mesh/${s.id}`)).toBe(fin.headCommit);
    expect(await git(cache, "log", "-1", "--format=%an <%ae>|%s", `mesh/${s.id}`)).toBe(
      "agent-mesh <mesh@localhost>|task done",
    );
    expect(await git(cache, "show", `mesh/${s.id}:new.txt`)).toBe("new");
    expect(await git(cache, "rev-parse", `mesh/${s.id}~1`)).toBe(o.main);
    expect(await git(w.workdir, "status", "--porcelain")).toBe("");
    // Not pushed unless asked.
    expect(await git(o.dir, "branch", "--list", `mesh/${s.id}`)).toBe("");
  });

  it("uses the author from git config when there is one; keeps the agent's own commits", async () => {
    const o = await makeOrigin();
    const home = await makeTempDir("ws-home-");
    await writeFile(join(home, ".gitconfig"), "[user]\n\tname = Alice\n\temail = alice@example.com\n");
    const { ws } = await provider({ home });
    const s = spec(o.dir);
    const w = await ws.prepare(s, 1, live());
    await writeFile(join(w.workdir, "a.txt"), "a\n");
    await git(w.workdir, "add", "a.txt");
    await git(w.workdir, "commit", "--quiet", "-m", "agent commit");
    const agentCommit = await git(w.workdir, "rev-parse", "HEAD");
    // Nothing left uncommitted: no extra commit.
    const fin = await w.finish({ succeeded: true, message: "task done" });
    expect(fin.headCommit).toBe(agentCommit);

    const s2 = spec(o.dir);
    const w2 = await ws.prepare(s2, 1, live());
    await writeFile(join(w2.workdir, "b.txt"), "b\n");
    const fin2 = await w2.finish({ succeeded: true, message: "second" });
    expect(await git(w2.workdir, "log", "-1", "--format=%an <%ae>", fin2.headCommit!)).toBe(
      "Alice <alice@example.com>",
    );
  });

  it("pushes the branch to a non-bare local origin when asked, leaving its checkout alone", async () => {
    const o = await makeOrigin();
    await writeFile(join(o.dir, "wip.txt"), "the user's uncommitted work\n");
    const { ws } = await provider();
    const s = spec(o.dir, { push: true });
    const w = await ws.prepare(s, 1, live());
    await writeFile(join(w.workdir, "pushed.txt"), "pushed\n");
    const fin = await w.finish({ succeeded: true, message: "push me" });
    expect(await git(o.dir, "rev-parse", `refs/heads/mesh/${s.id}`)).toBe(fin.headCommit);
    expect(await git(o.dir, "show", `mesh/${s.id}:pushed.txt`)).toBe("pushed");
    expect(await git(o.dir, "symbolic-ref", "HEAD")).toBe("refs/heads/main");
    expect(await git(o.dir, "rev-parse", "HEAD")).toBe(o.main);
    expect(await readFile(join(o.dir, "wip.txt"), "utf8")).toBe("the user's uncommitted work\n");
    expect(existsSync(join(o.dir, "pushed.txt"))).toBe(false);
  });

  it("a fence lost during the push stops it: finish rejects FENCED and the origin gets nothing", async () => {
    const o = await makeOrigin();
    // The origin's pre-receive hook says it started, then holds the push until released; it
    // refuses afterwards, so a push that were not stopped would still end (as a failure). The
    // hook (a grandchild of the daemon's git) holds git's output pipes open: stopping the push
    // must not wait for them.
    const started = join(o.dir, "hook-started");
    const release = join(o.dir, "hook-release");
    await writeFile(
      join(o.dir, ".git", "hooks", "pre-receive"),
      `#!/bin/sh\ncat >/dev/null\n: > "${started}"\nwhile [ ! -e "${release}" ]; do sleep 0.05; done\nexit 1\n`,
      { mode: 0o755 },
    );
    const { ws } = await provider();
    const s = spec(o.dir, { push: true });
    const w = await ws.prepare(s, 1, live());
    await writeFile(join(w.workdir, "late.txt"), "late\n");
    const fence = new AbortController();
    const fin = w.finish({ succeeded: true, message: "too late", signal: fence.signal });
    fin.catch(() => undefined);
    await waitFor(() => existsSync(started), { name: "push reached the origin's hook", timeoutMs: 15_000 });
    fence.abort(new Error("lease lost"));
    // Rejected while the hook still holds the push: the worker stopped it instead of waiting.
    await expect(fin).rejects.toMatchObject({ code: "FENCED" });
    expect(existsSync(release)).toBe(false);
    await writeFile(release, "");
    expect(await git(o.dir, "branch", "--list", `mesh/${s.id}`)).toBe("");
  });

  it("a fenced finish commits nothing", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s = spec(o.dir, { push: true });
    const w = await ws.prepare(s, 1, live());
    await writeFile(join(w.workdir, "never.txt"), "never\n");
    const fence = new AbortController();
    fence.abort(new Error("lease lost"));
    await expect(w.finish({ succeeded: true, message: "x", signal: fence.signal })).rejects.toMatchObject({
      code: "FENCED",
    });
    expect(await git(ws.cacheDir(o.dir), "rev-parse", `mesh/${s.id}`)).toBe(o.main);
    expect(await git(o.dir, "branch", "--list", `mesh/${s.id}`)).toBe("");
  });

  it("a failed attempt commits nothing and keeps its worktree for inspection", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s = spec(o.dir, { push: true });
    const w = await ws.prepare(s, 1, live());
    await writeFile(join(w.workdir, "half.txt"), "half\n");
    expect(await w.finish({ succeeded: false, message: "x" })).toEqual({});
    expect(await readFile(join(w.workdir, "half.txt"), "utf8")).toBe("half\n");
    expect(await git(ws.cacheDir(o.dir), "rev-parse", `mesh/${s.id}`)).toBe(o.main);
    expect(await git(o.dir, "branch", "--list", `mesh/${s.id}`)).toBe("");
  });

  it("prepares two tasks of one repo at once in separate worktrees that do not disturb each other", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s1 = spec(o.dir);
    const s2 = spec(o.dir, { ref: "dev" });
    const [w1, w2] = await Promise.all([ws.prepare(s1, 1, live()), ws.prepare(s2, 1, live())]);
    expect(w1.workdir).not.toBe(w2.workdir);
    await Promise.all([
      writeFile(join(w1.workdir, "one.txt"), "1\n"),
      writeFile(join(w2.workdir, "two.txt"), "2\n"),
    ]);
    const [f1, f2] = await Promise.all([
      w1.finish({ succeeded: true, message: "one" }),
      w2.finish({ succeeded: true, message: "two" }),
    ]);
    const cache = ws.cacheDir(o.dir);
    const files = async (c: string) => (await git(cache, "ls-tree", "--name-only", c)).split("\n").sort();
    expect(await files(f1.headCommit!)).toEqual(["README.md", "main.txt", "one.txt"]);
    expect(await files(f2.headCommit!)).toEqual(["README.md", "dev.txt", "two.txt"]);
  });

  it("replaces a dirty leftover of a crashed attempt and continues on the task branch", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s = spec(o.dir);
    const a1 = await ws.prepare(s, 1, live());
    // The agent committed one file and left another uncommitted; then the daemon died.
    await writeFile(join(a1.workdir, "kept.txt"), "committed\n");
    await git(a1.workdir, "add", "kept.txt");
    await git(a1.workdir, "commit", "--quiet", "-m", "agent commit");
    const committed = await git(a1.workdir, "rev-parse", "HEAD");
    await writeFile(join(a1.workdir, "dirty.txt"), "uncommitted\n");
    await writeFile(join(a1.workdir, "README.md"), "scribbled\n");

    // The same attempt number again (its folder is a leftover): a clean worktree.
    const again = await ws.prepare(s, 1, live());
    expect(again.workdir).toBe(a1.workdir);
    expect(existsSync(join(again.workdir, "dirty.txt"))).toBe(false);
    expect(await readFile(join(again.workdir, "README.md"), "utf8")).toBe("hello\n");
    expect(await git(again.workdir, "rev-parse", "HEAD")).toBe(committed);
    expect(await git(again.workdir, "status", "--porcelain")).toBe("");
    await writeFile(join(again.workdir, "dirty.txt"), "uncommitted again\n");

    // The next attempt: a new clean worktree on the branch; the old one is kept, detached.
    const a2 = await ws.prepare(s, 2, live());
    expect(a2.workdir).not.toBe(a1.workdir);
    expect(await git(a2.workdir, "symbolic-ref", "HEAD")).toBe(`refs/heads/mesh/${s.id}`);
    expect(await git(a2.workdir, "rev-parse", "HEAD")).toBe(committed);
    expect(existsSync(join(a2.workdir, "kept.txt"))).toBe(true);
    expect(existsSync(join(a2.workdir, "dirty.txt"))).toBe(false);
    expect(await readFile(join(a1.workdir, "dirty.txt"), "utf8")).toBe("uncommitted again\n");
    await expect(git(a1.workdir, "symbolic-ref", "--quiet", "HEAD")).rejects.toThrow();
    await writeFile(join(a2.workdir, "more.txt"), "more\n");
    const fin = await a2.finish({ succeeded: true, message: "attempt 2" });
    expect(await git(ws.cacheDir(o.dir), "rev-parse", `mesh/${s.id}~1`)).toBe(committed);
    expect(fin.headCommit).toBe(await git(ws.cacheDir(o.dir), "rev-parse", `mesh/${s.id}`));
  });

  it("moves the task branch to HEAD when the agent switched branches", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s = spec(o.dir);
    const w = await ws.prepare(s, 1, live());
    await git(w.workdir, "checkout", "--quiet", "-b", "agent-branch");
    await writeFile(join(w.workdir, "x.txt"), "x\n");
    const fin = await w.finish({ succeeded: true, message: "switched" });
    expect(await git(ws.cacheDir(o.dir), "rev-parse", `mesh/${s.id}`)).toBe(fin.headCommit);
    expect(await git(ws.cacheDir(o.dir), "show", `mesh/${s.id}:x.txt`)).toBe("x");
  });

  it("refuses bad repos and refs with INVALID_ARGUMENT (permanent)", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const notRepo = await makeTempDir("not-a-repo-");
    const empty = await makeTempDir("empty-repo-");
    await git(empty, "init", "--quiet", "--bare");
    await expectInvalid(ws.prepare(spec("/nonexistent/mesh/repo"), 1, live()), /does not exist/);
    await expectInvalid(ws.prepare(spec(notRepo), 1, live()), /not a git repository/);
    await expectInvalid(ws.prepare(spec(empty), 1, live()), /no default branch/);
    await expectInvalid(ws.prepare(spec("relative/path"), 1, live()), /absolute path or a URL/);
    await expectInvalid(ws.prepare(spec("--upload-pack=touch /tmp/x"), 1, live()), /must not start with "-"/);
    await expectInvalid(ws.prepare(spec("ext::sh -c touch% /tmp/pwned"), 1, live()), /remote helpers/);
    await expectInvalid(ws.prepare(spec("gopher://example.com/repo"), 1, live()), /not allowed/);
    await expectInvalid(
      ws.prepare(spec(o.dir, { ref: "no-such-branch" }), 1, live()),
      /ref "no-such-branch" not found/,
    );
    await expectInvalid(
      ws.prepare(spec(o.dir, { ref: "--output=/tmp/x" }), 1, live()),
      /must not start with "-"/,
    );
    await expectInvalid(ws.prepare(spec(o.dir, { ref: "a b" }), 1, live()), /not a branch, tag or commit/);
    // A good task of the same repo still works afterwards.
    const w = await ws.prepare(spec(o.dir), 1, live());
    expect(await git(w.workdir, "rev-parse", "HEAD")).toBe(o.main);
  });

  it("reads repo URLs without touching the network; an unreachable origin is retryable, not permanent", async () => {
    expect(parseRepo("https://user:s3cret@example.com/org/repo.git")).toMatchObject({
      url: "https://user:s3cret@example.com/org/repo.git",
      display: "https://***@example.com/org/repo.git",
    });
    expect(parseRepo("git@github.com:org/repo.git").url).toBe("git@github.com:org/repo.git");
    expect(parseRepo("ssh://git@example.com/org/repo").url).toBe("ssh://git@example.com/org/repo");
    const local = parseRepo("file:///srv/repos/x");
    expect(local).toMatchObject({ url: "/srv/repos/x", localPath: "/srv/repos/x" });
    // The same origin by path and by file:// URL shares one cache.
    expect(local.key).toBe(parseRepo("/srv/repos/x").key);

    const { ws } = await provider();
    const p = ws.prepare(spec("http://user:s3cret@127.0.0.1:1/repo.git"), 1, live());
    await expect(p).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(p).rejects.not.toThrow(/s3cret/);
  });

  it("an aborted prepare stops without a worktree", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const ac = new AbortController();
    ac.abort("cancelled");
    await expect(ws.prepare(spec(o.dir), 1, ac.signal)).rejects.toThrow();
  });

  it("sweep removes idle worktrees past the retention, keeps running ones and the branches", async () => {
    const o = await makeOrigin();
    const { ws } = await provider({ retentionMs: 60_000 });
    const done = spec(o.dir);
    const running = spec(o.dir);
    const fresh = spec(o.dir);
    const wDone = await ws.prepare(done, 1, live());
    await writeFile(join(wDone.workdir, "f.txt"), "f\n");
    const fin = await wDone.finish({ succeeded: false, message: "x" });
    expect(fin).toEqual({});
    const wRunning = await ws.prepare(running, 1, live());
    const wFresh = await ws.prepare(fresh, 1, live());
    await wFresh.finish({ succeeded: false, message: "x" });
    const old = new Date(Date.now() - 3_600_000);
    await utimes(wDone.workdir, old, old);
    await utimes(wRunning.workdir, old, old);

    await ws.sweep();
    expect(existsSync(wDone.workdir)).toBe(false);
    expect(existsSync(join(wDone.workdir, ".."))).toBe(false);
    expect(existsSync(wRunning.workdir)).toBe(true);
    expect(existsSync(wFresh.workdir)).toBe(true);
    const cache = ws.cacheDir(o.dir);
    const list = await git(cache, "worktree", "list", "--porcelain");
    expect(list).not.toContain(wDone.workdir);
    expect(list).toContain(wRunning.workdir);
    expect(await git(cache, "rev-parse", "--verify", `refs/heads/mesh/${done.id}`)).toBe(o.main);

    // Once the running attempt finishes, it ages like the others.
    await wRunning.finish({ succeeded: false, message: "x" });
    await utimes(wRunning.workdir, old, old);
    await ws.sweep();
    expect(existsSync(wRunning.workdir)).toBe(false);
  });
});

describe("MeshWorkspaces (the daemon's default)", () => {
  it("gives tasks with a repo a worktree and others an empty folder; sweeps both and old scratch", async () => {
    const o = await makeOrigin();
    const stateDir = await makeTempDir("ws-state-");
    const ws = new MeshWorkspaces({ stateDir, retentionMs: 60_000, log, sweepIntervalMs: 3_600_000 });
    try {
      const plain = spec(undefined);
      const repo = spec(o.dir);
      const wp: PreparedWorkspace = await ws.prepare(plain, 1, live());
      expect(wp.branch).toBeUndefined();
      expect(wp.workdir).toBe(join(stateDir, "work", plain.id, "a1"));
      expect(existsSync(join(wp.workdir, ".git"))).toBe(false);
      const wr = await ws.prepare(repo, 1, live());
      expect(wr.branch).toBe(`mesh/${repo.id}`);
      expect((await stat(join(wr.workdir, ".git"))).isFile()).toBe(true);

      const scratch = join(stateDir, "scratch", plain.id, "a1");
      await mkdir(scratch, { recursive: true });
      // The Claude runner's per-task state goes with the task's last work folder.
      const claudeState = join(stateDir, "claude", repo.id, "config");
      await mkdir(claudeState, { recursive: true });
      const old = new Date(Date.now() - 3_600_000);
      for (const p of [wp.workdir, wr.workdir, scratch]) await utimes(p, old, old);
      // Still running: nothing goes.
      await ws.sweep();
      expect([wp.workdir, wr.workdir, scratch, claudeState].every((p) => existsSync(p))).toBe(true);

      await wp.finish({ succeeded: true, message: "m" });
      await wr.finish({ succeeded: false, message: "m" });
      for (const p of [wp.workdir, wr.workdir, scratch]) await utimes(p, old, old);
      await ws.sweep();
      expect([wp.workdir, wr.workdir, scratch].some((p) => existsSync(p))).toBe(false);
      expect(existsSync(join(stateDir, "claude", repo.id))).toBe(false);
    } finally {
      ws.close();
    }
  });
});

describe("a task branch pushed by an attempt whose result was never recorded", () => {
  it("the next attempt on another worker continues from the pushed branch and pushes fast-forward", async () => {
    const o = await makeOrigin();
    const a = await provider();
    const b = await provider();
    const s = spec(o.dir, { push: true });
    // Worker A's attempt 1 pushes, then dies before recording (nothing more happens on A).
    const a1 = await a.ws.prepare(s, 1, live());
    await writeFile(join(a1.workdir, "one.txt"), "one\n");
    const pushed = (await a1.finish({ succeeded: true, message: "attempt 1" })).headCommit!;
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}`)).toBe(pushed);

    // Worker B takes over (attempt 2): its cache has no such branch, the origin does.
    const b2 = await b.ws.prepare(s, 2, live());
    expect(await git(b2.workdir, "rev-parse", "HEAD")).toBe(pushed);
    expect(await readFile(join(b2.workdir, "one.txt"), "utf8")).toBe("one\n");
    await writeFile(join(b2.workdir, "two.txt"), "two\n");
    const fin = await b2.finish({ succeeded: true, message: "attempt 2" });
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}`)).toBe(fin.headCommit);
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}~1`)).toBe(pushed);

    // Back on A (attempt 3): its own branch is behind the origin's, and is moved up to it.
    const a3 = await a.ws.prepare(s, 3, live());
    expect(await git(a3.workdir, "rev-parse", "HEAD")).toBe(fin.headCommit);
    await writeFile(join(a3.workdir, "three.txt"), "three\n");
    const fin3 = await a3.finish({ succeeded: true, message: "attempt 3" });
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}~1`)).toBe(fin.headCommit);
    expect(fin3.headCommit).toBe(await git(o.dir, "rev-parse", `mesh/${s.id}`));
  });

  it("a push rejected because the origin's branch moved during the run is retryable, and the retry continues from it", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s = spec(o.dir, { push: true });
    const w1 = await ws.prepare(s, 1, live());
    await writeFile(join(w1.workdir, "mine.txt"), "mine\n");
    // Someone pushes the task branch while the attempt runs.
    await git(o.dir, "branch", `mesh/${s.id}`, o.dev);
    const p = w1.finish({ succeeded: true, message: "attempt 1" });
    await expect(p).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(p).rejects.toThrow(/moved during the run/);
    const w2 = await ws.prepare(s, 2, live());
    expect(await git(w2.workdir, "rev-parse", "HEAD")).toBe(o.dev);
    await writeFile(join(w2.workdir, "again.txt"), "again\n");
    const fin = await w2.finish({ succeeded: true, message: "attempt 2" });
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}`)).toBe(fin.headCommit);
  });

  it("a local branch that diverged from the pushed one gives way to what was pushed", async () => {
    const o = await makeOrigin();
    const a = await provider();
    const b = await provider();
    const s = spec(o.dir, { push: true });
    // A's attempt 1 committed but failed (nothing pushed); B's attempt 2 pushed and died.
    const a1 = await a.ws.prepare(s, 1, live());
    await writeFile(join(a1.workdir, "lost.txt"), "lost\n");
    await git(a1.workdir, "add", "lost.txt");
    await git(a1.workdir, "commit", "--quiet", "-m", "unpushed");
    await a1.finish({ succeeded: false, message: "x" });
    const b2 = await b.ws.prepare(s, 2, live());
    await writeFile(join(b2.workdir, "pushed.txt"), "pushed\n");
    const pushed = (await b2.finish({ succeeded: true, message: "attempt 2" })).headCommit!;

    const a3 = await a.ws.prepare(s, 3, live());
    expect(await git(a3.workdir, "rev-parse", "HEAD")).toBe(pushed);
    await writeFile(join(a3.workdir, "three.txt"), "three\n");
    const fin = await a3.finish({ succeeded: true, message: "attempt 3" });
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}~1`)).toBe(pushed);
    expect(fin.headCommit).toBe(await git(o.dir, "rev-parse", `mesh/${s.id}`));
  });

  it("a branch on the origin from before the task's first attempt is refused (INVALID_ARGUMENT, field id)", async () => {
    const o = await makeOrigin();
    const { ws } = await provider();
    const s = spec(o.dir, { push: true });
    await git(o.dir, "branch", `mesh/${s.id}`, o.first);
    const p = ws.prepare(s, 1, live());
    await expect(p).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "id" });
    await expect(p).rejects.toThrow(/already has a branch mesh\/.* from before this task's first attempt/);
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}`)).toBe(o.first);
    // Without push the origin's branch is none of the task's business.
    const quiet = spec(o.dir);
    await git(o.dir, "branch", `mesh/${quiet.id}`, o.first);
    const w = await ws.prepare(quiet, 1, live());
    expect(await git(w.workdir, "rev-parse", "HEAD")).toBe(o.main);
  });
});

describe("the operator's git settings", () => {
  it("workspaces.gitConfig reaches the daemon's git (here: turning a hook back on, which nothing else can)", async () => {
    const o = await makeOrigin();
    const hooks = await makeTempDir("ws-hooks-");
    const marker = join(hooks, "ran");
    await writeFile(join(hooks, "post-commit"), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const ws = new GitWorkspaceProvider({
      stateDir: await makeTempDir("ws-state-"),
      retentionMs: 60_000,
      log,
      gitConfig: { "core.hooksPath": hooks },
      env: { ...process.env, HOME: await makeTempDir("ws-home-") },
    });
    const w = await ws.prepare(spec(o.dir), 1, live());
    await writeFile(join(w.workdir, "a.txt"), "a\n");
    await w.finish({ succeeded: true, message: "m" });
    expect(existsSync(marker)).toBe(true);
  });

  it("config refuses a bad workspaces.gitConfig key or value and a bad cacheRetention, naming the field", () => {
    expect(() => compileConfig({ workspaces: { gitConfig: { "no-dot": "x" } } })).toThrow(
      /workspaces\.gitConfig\.no-dot: expected a git config key/,
    );
    expect(() => compileConfig({ workspaces: { gitConfig: { "credential.helper": "a\nb" } } })).toThrow(
      /workspaces\.gitConfig\.credential\.helper: must be one line/,
    );
    expect(() => compileConfig({ workspaces: { cacheRetention: "soon" } })).toThrow(
      /workspaces\.cacheRetention/,
    );
    const c = compileConfig({ workspaces: { cacheRetention: "forever", gitConfig: { "http.proxy": "" } } });
    expect(c.workspaces).toMatchObject({ cacheRetention: 0, gitConfig: { "http.proxy": "" } });
    expect(compileConfig({}).workspaces.cacheRetention).toBe(7 * 86_400_000);
  });
});

describe("retention of task branches and repo caches", () => {
  const DAY = 86_400_000;

  it("deletes a finished task's branch once its worktrees are gone and the task no longer needs it", async () => {
    const o = await makeOrigin();
    const needed = new Set<string>();
    const stateDir = await makeTempDir("ws-state-");
    const ws = new GitWorkspaceProvider({
      stateDir,
      retentionMs: 60_000,
      log,
      keepBranch: async (id) => needed.has(id),
      env: { ...process.env, HOME: await makeTempDir("ws-home-") },
    });
    const gone = spec(o.dir);
    const live1 = spec(o.dir);
    const stillHere = spec(o.dir);
    const running = spec(o.dir);
    for (const s of [gone, live1, stillHere]) {
      const w = await ws.prepare(s, 1, live());
      await w.finish({ succeeded: true, message: "m" });
    }
    const wRunning = await ws.prepare(running, 1, live());
    needed.add(live1.id);
    // The worktrees of all but `stillHere` pass their retention.
    const old = new Date(Date.now() - 3_600_000);
    for (const s of [gone, live1]) await utimes(join(stateDir, "work", s.id, "a1"), old, old);
    await ws.sweep();
    const cache = ws.cacheDir(o.dir);
    const branches = (await git(cache, "for-each-ref", "--format=%(refname:short)", "refs/heads/mesh/"))
      .split("\n")
      .sort();
    expect(branches).toEqual([`mesh/${live1.id}`, `mesh/${running.id}`, `mesh/${stillHere.id}`].sort());
    expect(existsSync(cache)).toBe(true);
    await wRunning.finish({ succeeded: false, message: "x" });
  });

  it("removes a cache unused past its retention once it holds no task branch or worktree", async () => {
    const o = await makeOrigin();
    const stateDir = await makeTempDir("ws-state-");
    let keep = true;
    const mk = (cacheRetentionMs: number) =>
      new GitWorkspaceProvider({
        stateDir,
        retentionMs: 60_000,
        cacheRetentionMs,
        log,
        keepBranch: async () => keep,
        env: { ...process.env, HOME: stateDir },
      });
    const ws = mk(7 * DAY);
    const s = spec(o.dir);
    const w = await ws.prepare(s, 1, live());
    await w.finish({ succeeded: true, message: "m" });
    const cache = ws.cacheDir(o.dir);
    const week = Date.now() + 8 * DAY;

    // A worktree is still there: nothing goes.
    await ws.evict(week);
    expect(existsSync(cache)).toBe(true);
    await ws.removeWorktree(w.workdir);
    await rm(join(stateDir, "work", s.id), { recursive: true, force: true });
    // The task still needs its branch: the cache stays.
    await ws.evict(week);
    expect(existsSync(cache)).toBe(true);
    expect(await git(cache, "rev-parse", "--verify", `refs/heads/mesh/${s.id}`)).toMatch(/^[0-9a-f]{40}$/);
    // The branch goes; used recently, the cache stays; unused past the retention, it goes.
    keep = false;
    await ws.evict(Date.now());
    expect(existsSync(cache)).toBe(true);
    await expect(git(cache, "rev-parse", "--verify", `refs/heads/mesh/${s.id}`)).rejects.toThrow();
    await mk(0).evict(week);
    expect(existsSync(cache)).toBe(true);
    await ws.evict(week);
    expect(existsSync(cache)).toBe(false);

    // The next task of that repo makes it again.
    const again = await ws.prepare(spec(o.dir), 1, live());
    expect(await git(again.workdir, "rev-parse", "HEAD")).toBe(o.main);
  });

  it("the daemon keeps a branch while the task's record exists and is not finished past the task retention", async () => {
    const now = Date.parse("2026-01-10T00:00:00Z");
    const records = new Map<string, TaskRecordView>([
      ["running", { state: "running" }],
      ["queued", { state: "queued" }],
      ["recent", { state: "succeeded", finishedAt: "2026-01-09T00:00:00Z" }],
      ["expired", { state: "failed", finishedAt: "2026-01-01T00:00:00Z" }],
    ]);
    const keep = keepBranchWhileTaskLives(
      async (id) => records.get(id),
      7 * DAY,
      () => now,
    );
    const forever = keepBranchWhileTaskLives(
      async (id) => records.get(id),
      0,
      () => now,
    );
    const ids = ["running", "queued", "recent", "expired", "missing"];
    expect(await Promise.all(ids.map(keep))).toEqual([true, true, true, false, false]);
    expect(await Promise.all(ids.map(forever))).toEqual([true, true, true, true, false]);
  });
});

describe("through a daemon: pushed but not recorded is never a push loop", () => {
  let nats: NatsServer;
  let client: MeshClient;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    client = await openClient(nats.url);
  });

  afterAll(async () => {
    await Promise.allSettled(daemons.map((d) => d.stop(2_000)));
    await client?.close();
    await nats?.cleanup();
  });

  const commandTask = (pool: string, repo: string, script: string) =>
    validateTaskSpec({
      id: uniqueId("pushed"),
      prompt: "p",
      repo,
      push: true,
      pool,
      runner: "command",
      maxAttempts: 3,
      command: ["sh", "-c", script],
    });

  async function pushGhostCommit(origin: string, id: string, base: string): Promise<string> {
    // What a dead worker's attempt left on the origin: the task branch with its work.
    const tmp = await makeTempDir("ghost-clone-");
    await git(tmp, "clone", "--quiet", origin, "c");
    const c = join(tmp, "c");
    await git(c, "checkout", "--quiet", "-b", `mesh/${id}`, base);
    await writeFile(join(c, "ghost.txt"), "from the lost attempt\n");
    await git(c, "add", "ghost.txt");
    await git(c, "commit", "--quiet", "-m", "lost attempt's work");
    await git(c, "push", "--quiet", "origin", `mesh/${id}`);
    return git(c, "rev-parse", "HEAD");
  }

  it("a taken-over attempt continues from the branch the lost one pushed, and succeeds", async () => {
    const pool = "ws-pushed-continue";
    const o = await makeOrigin();
    daemons.push(await startDaemon(nats.url, { pools: [pool], runners: ["command"], slots: 1 }));
    const s = commandTask(pool, o.dir, "test -f ghost.txt && echo more > more.txt");
    const ghost = await pushGhostCommit(o.dir, s.id, o.main);
    await plantOrphanedTask(client, s);
    const r = (await waitForState(client.api, s.id, ["succeeded", "failed", "dead"], 60_000)).record;
    expect(r.state, JSON.stringify(r.attempts)).toBe("succeeded");
    expect(r.attempts.map((a) => a.outcome)).toEqual(["lost", "succeeded"]);
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}`)).toBe(r.result?.headCommit);
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}~1`)).toBe(ghost);
  });

  it("a first attempt that finds the branch on the origin fails once with the reason, and the daemon serves on", async () => {
    const pool = "ws-pushed-refuse";
    const o = await makeOrigin();
    daemons.push(await startDaemon(nats.url, { pools: [pool], runners: ["command"], slots: 1 }));
    const s = commandTask(pool, o.dir, "echo mine > mine.txt");
    const ghost = await pushGhostCommit(o.dir, s.id, o.main);
    await client.api.submit([s]);
    const r = (await waitForState(client.api, s.id, ["succeeded", "failed", "dead"], 60_000)).record;
    expect(r.state, JSON.stringify(r.attempts)).toBe("failed");
    expect(r.attempts).toHaveLength(1);
    expect(r.reason).toMatch(/already has a branch mesh\/.* from before this task's first attempt/);
    expect(await git(o.dir, "rev-parse", `mesh/${s.id}`)).toBe(ghost);

    const next = commandTask(pool, o.dir, "echo next > next.txt");
    await client.api.submit([next]);
    const rn = (await waitForState(client.api, next.id, ["succeeded", "failed", "dead"], 60_000)).record;
    expect(rn.state, JSON.stringify(rn.attempts)).toBe("succeeded");
  });
});
