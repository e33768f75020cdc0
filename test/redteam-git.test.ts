/**
 * Red team, issue 10 section 3: an agent (or a task's own command) that may change its worktree,
 * the repo cache and the daemon user's home tries to make the daemon's own git run something
 * after the run: a rewritten `.git` file pointing at a git dir of its own, config (hooksPath,
 * fsmonitor, filters, receivepack, include, worktree config), hooks, attributes, a nested repo.
 * Each attack leaves a marker file when it works; none may. The attempt then either succeeds
 * with the right result or fails once with a clear reason, and the daemon keeps serving.
 * Real git throughout, real daemons on a real nats-server, and the real Claude Code against the
 * mock Messages API.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Daemon, DaemonOptions, TaskRecord } from "../daemon/index.js";
import { createLogger } from "../daemon/log.js";
import { type TaskSpec, validateTaskSpec } from "../daemon/tasks/spec.js";
import { Git } from "../daemon/workspace/git-cmd.js";
import {
  cacheDirFor,
  GitWorkspaceProvider,
  type PreparedWorkspace,
  parseRepo,
} from "../daemon/workspace/index.js";
import { makeTempDir, NatsServer, removeTempDirs } from "./harness/index.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  type MockReply,
  startMockAnthropic,
  type TurnContext,
  writeFile as writeFileTool,
} from "./mock-anthropic/index.js";
import { type MeshClient, openClient, startDaemon, waitForState } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

const log = createLogger("silent");
const ID = ["-c", "user.name=Test User", "-c", "user.email=test@example.com"];

async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa("git", [...ID, ...args], {
    cwd,
    env: { LC_ALL: "C", GIT_CONFIG_NOSYSTEM: "1", HOME: cwd },
    extendEnv: true,
  });
  return r.stdout.trim();
}

async function makeOrigin(): Promise<{ dir: string; main: string }> {
  const dir = await makeTempDir("rt-origin-");
  await git(dir, "init", "--quiet", "-b", "main");
  await writeFile(join(dir, "README.md"), "hello\n");
  await git(dir, "add", "README.md");
  await git(dir, "commit", "--quiet", "-m", "first");
  return { dir, main: await git(dir, "rev-parse", "HEAD") };
}

/** A folder the attacks leave markers in; it must stay empty. */
async function markers(): Promise<{
  dir: string;
  touch: (name: string) => string;
  left: () => Promise<string[]>;
}> {
  const dir = await makeTempDir("rt-markers-");
  return {
    dir,
    touch: (name) => `touch ${join(dir, name)}`,
    left: async () => (await readdir(dir)).sort(),
  };
}

async function hook(dir: string, name: string, body: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, name), `#!/bin/sh\n${body}\n`);
  await chmod(join(dir, name), 0o755);
}

/** A bare git dir of the attacker's with every hook and an fsmonitor that leave markers. */
async function attackerGitDir(m: Awaited<ReturnType<typeof markers>>): Promise<string> {
  const evil = join(await makeTempDir("rt-evil-"), "evil.git");
  await git(join(evil, ".."), "init", "--quiet", "--bare", evil);
  // Not bare: git takes the folder holding the `.git` file that names it as its work tree.
  await git(evil, "config", "core.bare", "false");
  await git(evil, "config", "core.fsmonitor", `${m.touch("evil-fsmonitor")}; false #`);
  for (const h of ["pre-commit", "commit-msg", "post-commit", "reference-transaction", "pre-push"]) {
    await hook(join(evil, "hooks"), h, m.touch(`evil-${h}`));
  }
  return evil;
}

const HOOKS = [
  "pre-commit",
  "prepare-commit-msg",
  "commit-msg",
  "post-commit",
  "pre-push",
  "reference-transaction",
  "post-checkout",
  "post-index-change",
  "pre-auto-gc",
];

afterAll(async () => {
  await removeTempDirs();
});

describe("the daemon's git after a run executes nothing the workspace holds", () => {
  async function setup(opts: { push?: boolean } = {}) {
    const o = await makeOrigin();
    const stateDir = await makeTempDir("rt-state-");
    const home = await makeTempDir("rt-home-");
    const ws = new GitWorkspaceProvider({
      stateDir,
      retentionMs: 86_400_000,
      log,
      env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config") },
    });
    const spec = validateTaskSpec({ id: uniqueId("rt"), prompt: "p", repo: o.dir, push: opts.push ?? true });
    const w = await ws.prepare(spec, 1, new AbortController().signal);
    const cache = ws.cacheDir(o.dir);
    return { o, ws, spec, w, cache, home, m: await markers() };
  }

  /** Nothing ran (checked first: it is what the attack is after), and the attempt was refused. */
  async function expectRefused(w: PreparedWorkspace, s: Awaited<ReturnType<typeof setup>>, re: RegExp) {
    const [res] = await Promise.allSettled([w.finish({ succeeded: true, message: "attacked" })]);
    expect(await s.m.left()).toEqual([]);
    expect(res.status).toBe("rejected");
    const err = res.status === "rejected" ? (res.reason as Error) : undefined;
    expect(err).toMatchObject({ name: "MeshError", code: "FAILED_PRECONDITION" });
    expect(err?.message).toMatch(re);
    expect(await git(s.cache, "rev-parse", `refs/heads/mesh/${s.spec.id}`)).toBe(s.o.main);
    await expect(git(s.o.dir, "rev-parse", "--verify", `refs/heads/mesh/${s.spec.id}`)).rejects.toThrow();
  }

  /** After an attack the cache still serves a plain task of the same repo (and runs nothing). */
  async function expectCacheServes(s: Awaited<ReturnType<typeof setup>>) {
    const next = validateTaskSpec({ id: uniqueId("rt-next"), prompt: "p", repo: s.o.dir, push: true });
    const w = await s.ws.prepare(next, 1, new AbortController().signal);
    await writeFile(join(w.workdir, "next.txt"), "next\n");
    const fin = await w.finish({ succeeded: true, message: "after the attack" });
    expect(await git(s.o.dir, "show", `${fin.headCommit}:next.txt`)).toBe("next");
  }

  it("a .git file rewritten to point at the attacker's git dir (hooks, fsmonitor): refused", async () => {
    const s = await setup();
    const evil = await attackerGitDir(s.m);
    await writeFile(join(s.w.workdir, "work.txt"), "work\n");
    await writeFile(join(s.w.workdir, ".git"), `gitdir: ${evil}\n`);
    await expectRefused(s.w, s, /\.git file was rewritten/);
    expect(await s.m.left()).toEqual([]);
    await expectCacheServes(s);
    expect(await s.m.left()).toEqual([]);
    // Its removal past the retention runs no git in it either, and the cache forgets it.
    const old = new Date(Date.now() - 2 * 86_400_000);
    await utimes(s.w.workdir, old, old);
    await s.ws.sweep();
    expect(existsSync(s.w.workdir)).toBe(false);
    expect(await s.m.left()).toEqual([]);
    expect(await git(s.cache, "worktree", "list", "--porcelain")).not.toContain(s.w.workdir);
    expect(existsSync(evil)).toBe(true);
  });

  it("a .git file replaced by a git directory of the attacker's: refused", async () => {
    const s = await setup();
    const evil = await attackerGitDir(s.m);
    await execa("rm", ["-f", join(s.w.workdir, ".git")]);
    await execa("cp", ["-r", evil, join(s.w.workdir, ".git")]);
    await expectRefused(s.w, s, /\.git file .* was replaced/);
    expect(await s.m.left()).toEqual([]);
  });

  it("config written into the repo cache (hooksPath, fsmonitor, filters, textconv, receivepack, include): refused and reset", async () => {
    const s = await setup();
    const hooks = join(await makeTempDir("rt-hooks-"), "hooks");
    for (const h of HOOKS) await hook(hooks, h, s.m.touch(`cfg-${h}`));
    const included = join(await makeTempDir("rt-inc-"), "included.cfg");
    await writeFile(included, `[core]\n\tfsmonitor = "${s.m.touch("include-fsmonitor")}; false #"\n`);
    // As the agent would, with its own git inside the worktree (it writes the cache's config).
    const wt = s.w.workdir;
    await git(wt, "config", "core.hooksPath", hooks);
    await git(wt, "config", "core.fsmonitor", `${s.m.touch("cfg-fsmonitor")}; false #`);
    await git(wt, "config", "filter.evil.clean", `${s.m.touch("cfg-filter-clean")}; cat`);
    await git(wt, "config", "filter.evil.process", s.m.touch("cfg-filter-process"));
    await git(wt, "config", "diff.evil.textconv", `${s.m.touch("cfg-textconv")}; cat`);
    await git(wt, "config", "diff.external", s.m.touch("cfg-diff-external"));
    await git(wt, "config", "remote.origin.url", s.o.dir);
    await git(wt, "config", "remote.origin.receivepack", `${s.m.touch("cfg-receivepack")}; git-receive-pack`);
    await git(wt, "config", "include.path", included);
    await writeFile(join(wt, ".gitattributes"), "* filter=evil diff=evil\n");
    await writeFile(join(wt, "work.txt"), "work\n");
    await expectRefused(s.w, s, /repo cache's git config .* was changed/);
    expect(await s.m.left()).toEqual([]);
    // The next task of this cache runs on the daemon's config again (with the attacker's
    // .gitattributes nowhere near it, nothing would run anyway; the config is what matters).
    await expectCacheServes(s);
    expect(await s.m.left()).toEqual([]);
    expect(await git(s.cache, "config", "--file", "config", "--list")).not.toMatch(
      /evil|hooksPath|fsmonitor/i,
    );
  });

  it("a worktree config (extensions.worktreeConfig and config.worktree with fsmonitor and hooksPath): refused", async () => {
    const s = await setup();
    const hooks = join(await makeTempDir("rt-hooks-"), "hooks");
    for (const h of HOOKS) await hook(hooks, h, s.m.touch(`wtcfg-${h}`));
    await git(s.w.workdir, "config", "extensions.worktreeConfig", "true");
    const priv = await git(s.w.workdir, "rev-parse", "--path-format=absolute", "--git-dir");
    await writeFile(
      join(priv, "config.worktree"),
      `[core]\n\tbare = false\n\thooksPath = ${hooks}\n\tfsmonitor = "${s.m.touch("wtcfg-fsmonitor")}; false #"\n`,
    );
    await writeFile(join(s.w.workdir, "work.txt"), "work\n");
    await expectRefused(s.w, s, /repo cache's git config .* was changed/);
    await expectCacheServes(s);
    expect(await s.m.left()).toEqual([]);
  });

  it("hooks dropped into the cache, its worktree dir and the attacker's own paths never run; the result is right", async () => {
    const s = await setup();
    const common = await git(s.w.workdir, "rev-parse", "--path-format=absolute", "--git-common-dir");
    const priv = await git(s.w.workdir, "rev-parse", "--path-format=absolute", "--git-dir");
    for (const h of HOOKS) {
      await hook(join(common, "hooks"), h, s.m.touch(`cache-${h}`));
      await hook(join(priv, "hooks"), h, s.m.touch(`private-${h}`));
    }
    await writeFile(join(s.w.workdir, "work.txt"), "work\n");
    const [res] = await Promise.allSettled([s.w.finish({ succeeded: true, message: "with hooks around" })]);
    expect(await s.m.left()).toEqual([]);
    const fin = res.status === "fulfilled" ? res.value : { headCommit: String(res.reason) };
    expect(await git(s.o.dir, "show", `mesh/${s.spec.id}:work.txt`)).toBe("work");
    expect(await git(s.o.dir, "rev-parse", `mesh/${s.spec.id}`)).toBe(fin.headCommit);
    // The next prepare on this cache (a checkout: post-checkout) runs none either.
    await expectCacheServes(s);
    expect(await s.m.left()).toEqual([]);
  });

  it("a worktree git dir whose commondir was pointed at the attacker's repo: refused", async () => {
    const s = await setup();
    const evil = await attackerGitDir(s.m);
    const priv = await git(s.w.workdir, "rev-parse", "--path-format=absolute", "--git-dir");
    await writeFile(join(priv, "commondir"), `${evil}\n`);
    await writeFile(join(s.w.workdir, "work.txt"), "work\n");
    await expectRefused(s.w, s, /commondir was rewritten/);
    expect(await s.m.left()).toEqual([]);
  });

  it("the daemon user's ~/.gitconfig and global attributes are not read; the result is right", async () => {
    const s = await setup();
    const hooks = join(await makeTempDir("rt-hooks-"), "hooks");
    for (const h of HOOKS) await hook(hooks, h, s.m.touch(`home-${h}`));
    await writeFile(
      join(s.home, ".gitconfig"),
      [
        "[core]",
        `\thooksPath = ${hooks}`,
        `\tfsmonitor = "${s.m.touch("home-fsmonitor")}; false #"`,
        `\tsshCommand = "${s.m.touch("home-ssh")}; false #"`,
        '[filter "evil"]',
        `\tclean = "${s.m.touch("home-filter")}; cat"`,
        `\tprocess = "${s.m.touch("home-filter-process")}"`,
        '[diff "evil"]',
        `\ttextconv = "${s.m.touch("home-textconv")}; cat"`,
        "[diff]",
        `\texternal = "${s.m.touch("home-diff-external")}"`,
        "[credential]",
        `\thelper = "!${s.m.touch("home-credential")}"`,
        "",
      ].join("\n"),
    );
    await mkdir(join(s.home, ".config", "git"), { recursive: true });
    await writeFile(join(s.home, ".config", "git", "attributes"), "* filter=evil diff=evil\n");
    await writeFile(join(s.w.workdir, ".gitattributes"), "* filter=evil diff=evil\n");
    await writeFile(join(s.w.workdir, "work.txt"), "work\n");
    const [res] = await Promise.allSettled([s.w.finish({ succeeded: true, message: "home config" })]);
    expect(await s.m.left()).toEqual([]);
    const fin = res.status === "fulfilled" ? res.value : { headCommit: String(res.reason) };
    // Committed as written (no clean filter ran), on the cache's branch and the origin's.
    expect(await git(s.cache, "show", `${fin.headCommit}:work.txt`)).toBe("work");
    expect(await git(s.o.dir, "rev-parse", `mesh/${s.spec.id}`)).toBe(fin.headCommit);
  });

  it("a cache config changed between the daemon's reset and its fetch still cannot pick the ssh or askpass program", async () => {
    const m = await markers();
    const cache = join(await makeTempDir("rt-race-"), "c.git");
    await git(join(cache, ".."), "init", "--quiet", "--bare", cache);
    await git(cache, "config", "core.sshCommand", `${m.touch("race-ssh")}; false #`);
    await git(cache, "config", "core.askPass", m.touch("race-askpass"));
    const g = new Git({ env: { ...process.env, HOME: cache } });
    const out = g.run(
      ["fetch", "--", "ssh://git@127.0.0.1:1/nothing.git", "+refs/heads/*:refs/remotes/x/*"],
      {
        repo: { gitDir: cache },
        timeoutMs: 30_000,
      },
    );
    await expect(out).rejects.toMatchObject({ name: "GitCommandError", kind: "failed" });
    expect(await m.left()).toEqual([]);
  });

  it("a nested repository with its own fsmonitor, filter and hooks is committed as a gitlink without running them", async () => {
    const s = await setup({ push: false });
    const nested = join(s.w.workdir, "vendor", "lib");
    await mkdir(nested, { recursive: true });
    await git(nested, "init", "--quiet");
    await git(nested, "commit", "--quiet", "--allow-empty", "-m", "nested");
    await git(nested, "config", "core.fsmonitor", `${s.m.touch("nested-fsmonitor")}; false #`);
    await git(nested, "config", "filter.evil.clean", `${s.m.touch("nested-filter")}; cat`);
    for (const h of HOOKS) await hook(join(nested, ".git", "hooks"), h, s.m.touch(`nested-${h}`));
    await writeFile(join(nested, ".gitattributes"), "* filter=evil\n");
    await writeFile(join(nested, "x.txt"), "x\n");
    const fin = await s.w.finish({ succeeded: true, message: "nested" });
    expect(await s.m.left()).toEqual([]);
    expect(await git(s.cache, "ls-tree", fin.headCommit!, "vendor/lib")).toMatch(/^160000 commit /);
  });
});

// ---------------------------------------------------------------- through a daemon

let nats: NatsServer;
let client: MeshClient;
let mock: MockAnthropic;
let keyFile: string;
const daemons: Daemon[] = [];
const scripts = new Map<string, (ctx: TurnContext) => MockReply>();
const WORKDIR_RE = /\/work\/([^/]+)\/a(\d+)$/;

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  mock = await startMockAnthropic({
    script: (ctx) => {
      const id = ctx.workdir ? WORKDIR_RE.exec(ctx.workdir)?.[1] : undefined;
      const script = id ? scripts.get(id) : undefined;
      return script ? script(ctx) : answer("no script for this conversation");
    },
  });
  keyFile = join(await makeTempDir("rt-key-"), "anthropic-key");
  await writeFile(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
});

afterEach(async () => {
  await Promise.allSettled(daemons.splice(0).map((d) => d.stop(2_000)));
});

afterAll(async () => {
  await client?.close();
  await mock?.close();
  await nats?.cleanup();
});

async function daemon(pool: string, opts: Partial<DaemonOptions>): Promise<Daemon> {
  const d = await startDaemon(nats.url, { pools: [pool], slots: 1, ...opts });
  daemons.push(d);
  return d;
}

async function run(spec: TaskSpec): Promise<TaskRecord> {
  await client.api.submit([spec]);
  return (await waitForState(client.api, spec.id, ["succeeded", "failed", "dead", "cancelled"], 120_000))
    .record;
}

/** The attack as a shell script the task's own command runs in its worktree. */
function rewriteGitFileScript(evil: string, m: Awaited<ReturnType<typeof markers>>): string {
  return [
    "set -e",
    "echo work > work.txt",
    `printf 'gitdir: %s\\n' '${evil}' > .git`,
    `git config --file '${evil}/config' core.hooksPath '${evil}/hooks'`,
    `echo '* filter=evil' > .gitattributes`,
    `git config --file '${evil}/config' filter.evil.clean '${m.touch("cmd-filter")}; cat'`,
  ].join("\n");
}

describe("through a daemon: a command task attacks the daemon's git", () => {
  it("a rewritten .git is refused (failed once, clear reason); hooks in the cache do not run; the daemon still serves", async () => {
    const pool = "rt-command";
    const o = await makeOrigin();
    const m = await markers();
    const evil = await attackerGitDir(m);
    const d = await daemon(pool, { runners: ["command"] });

    const rewrite = validateTaskSpec({
      id: uniqueId("rt-gitfile"),
      prompt: "attack",
      repo: o.dir,
      push: true,
      pool,
      runner: "command",
      maxAttempts: 3,
      command: ["sh", "-c", rewriteGitFileScript(evil, m)],
    });
    const r1 = await run(rewrite);
    expect(await m.left()).toEqual([]);
    expect(r1.state).toBe("failed");
    expect(r1.attempts).toHaveLength(1);
    expect(r1.reason).toMatch(/\.git file was rewritten/);
    expect(await m.left()).toEqual([]);
    await expect(git(o.dir, "rev-parse", "--verify", `refs/heads/mesh/${rewrite.id}`)).rejects.toThrow();

    // Hooks and a hooksPath dropped by the task itself, with its own git: harmless.
    const hookScript = [
      "set -e",
      "common=$(git rev-parse --path-format=absolute --git-common-dir)",
      'mkdir -p "$common/hooks"',
      ...HOOKS.map(
        (h) =>
          `printf '#!/bin/sh\\n${m.touch(`cmd-${h}`)}\\n' > "$common/hooks/${h}" && chmod +x "$common/hooks/${h}"`,
      ),
      "echo hooked > hooked.txt",
    ].join("\n");
    const hooked = validateTaskSpec({
      id: uniqueId("rt-hooks"),
      prompt: "hooks",
      repo: o.dir,
      push: true,
      pool,
      runner: "command",
      command: ["sh", "-c", hookScript],
    });
    const r2 = await run(hooked);
    expect(await m.left()).toEqual([]);
    expect(r2.state, JSON.stringify(r2.attempts)).toBe("succeeded");
    const cache = cacheDirFor(join(d.config.stateDir, "repos"), parseRepo(o.dir));
    expect(existsSync(join(cache, "hooks", "reference-transaction"))).toBe(true);
    expect(await m.left()).toEqual([]);
    expect(await git(o.dir, "show", `mesh/${hooked.id}:hooked.txt`)).toBe("hooked");
    expect(await git(o.dir, "rev-parse", `mesh/${hooked.id}`)).toBe(r2.result?.headCommit);

    // Still serving: a plain task of the same repo.
    const plain = validateTaskSpec({
      id: uniqueId("rt-plain"),
      prompt: "plain",
      repo: o.dir,
      push: true,
      pool,
      runner: "command",
      command: ["sh", "-c", "echo plain > plain.txt"],
    });
    const r3 = await run(plain);
    expect(await m.left()).toEqual([]);
    expect(r3.state, JSON.stringify(r3.attempts)).toBe("succeeded");
    expect(await git(o.dir, "show", `mesh/${plain.id}:plain.txt`)).toBe("plain");
    expect(await m.left()).toEqual([]);
  });
});

describe("through a daemon: the real Claude Code's Bash and Write steps attack the daemon's git", () => {
  it("a .git rewrite by Bash is refused; a hook and config written by Bash and Write never run", async () => {
    const pool = "rt-claude";
    const o = await makeOrigin();
    const m = await markers();
    const evil = await attackerGitDir(m);
    const d = await daemon(pool, {
      runners: ["claude"],
      claude: {
        command: [CLAUDE_BIN],
        env: { ANTHROPIC_BASE_URL: mock.url },
        apiKeyFile: keyFile,
        allowedTools: ["Bash", "Write"],
      },
    });
    const claudeTask = (name: string, steps: MockReply[]): TaskSpec => {
      const spec = validateTaskSpec({
        id: uniqueId(name),
        prompt: "Please do the scripted work.",
        repo: o.dir,
        push: true,
        pool,
        maxAttempts: 2,
      });
      scripts.set(spec.id, (ctx) => steps[ctx.turn] ?? answer("done"));
      return spec;
    };

    // Claude Code refuses to edit `.git` itself ("a sensitive file"), by Write and by a plain
    // shell redirect; a script it writes and then runs is not looked into.
    const rewrite = claudeTask("rt-claude-gitfile", [
      writeFileTool("work.txt", "work\n"),
      writeFileTool("relink.sh", `printf 'gitdir: %s\\n' '${evil}' > .git\nrm relink.sh\ncat .git\n`),
      bash("sh relink.sh"),
    ]);
    const r1 = await run(rewrite);
    expect(await m.left()).toEqual([]);
    expect(r1.state, JSON.stringify(r1.attempts)).toBe("failed");
    expect(r1.attempts).toHaveLength(1);
    expect(r1.reason).toMatch(/\.git file was rewritten/);
    expect(await m.left()).toEqual([]);
    // Claude Code did run the Bash step (the mock saw its output), so the refusal is the daemon's.
    const afterBash = mock
      .messages()
      .find((q) => q.conversation?.endsWith(`/${rewrite.id}/a1`) && q.turn === 3);
    expect(afterBash?.view?.lastToolResult).toMatchObject({
      isError: false,
      text: expect.stringContaining(evil),
    });

    const hooks = claudeTask("rt-claude-hooks", [
      bash(
        [
          "common=$(git rev-parse --path-format=absolute --git-common-dir)",
          'mkdir -p "$common/hooks"',
          ...["pre-commit", "post-commit", "pre-push", "reference-transaction"].map(
            (h) =>
              `printf '#!/bin/sh\\n${m.touch(`claude-${h}`)}\\n' > "$common/hooks/${h}" && chmod +x "$common/hooks/${h}"`,
          ),
        ].join(" && "),
      ),
      writeFileTool(".gitattributes", "* filter=evil\n"),
      writeFileTool("work.txt", "from claude\n"),
    ]);
    const r2 = await run(hooks);
    expect(await m.left()).toEqual([]);
    expect(r2.state, JSON.stringify(r2.attempts)).toBe("succeeded");
    // The hooks are there (Claude Code ran the step), and none ran.
    const cache = cacheDirFor(join(d.config.stateDir, "repos"), parseRepo(o.dir));
    expect(existsSync(join(cache, "hooks", "post-commit"))).toBe(true);
    expect(await m.left()).toEqual([]);
    expect(await git(o.dir, "show", `mesh/${hooks.id}:work.txt`)).toBe("from claude");
    expect(await readFile(join(o.dir, "README.md"), "utf8")).toBe("hello\n");
  });
});
