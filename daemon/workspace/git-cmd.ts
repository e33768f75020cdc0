/**
 * Runs the daemon's own git: argv only (never a shell), a controlled environment, English
 * messages, no prompts, and a non-zero exit always an error.
 *
 * Every command runs hardened, because an agent may have written to anything its worktree's
 * `.git` file names (the worktree's private git dir, the repo cache) and to the daemon user's
 * home: hooks are switched off, fsmonitor, pagers, editors, external diffs, submodule recursion
 * and auto-gc too; system and global config files are not read; attributes files outside the
 * repo are ignored; the repository is named explicitly (`GIT_DIR`, `GIT_COMMON_DIR`,
 * `GIT_WORK_TREE`) instead of found from a `.git` file. The one config file git still reads is
 * the repo cache's, which the workspace rewrites and checks itself (see cache-config.ts):
 * `-c` cannot reset every key (multi-valued ones like `remote.*.receivepack` keep the file's
 * value first), and filter and diff drivers are named by the attacker.
 */
import type { Readable, Writable } from "node:stream";
import { spawnChild } from "../../lib/index.js";
import { ALLOWED_PROTOCOLS, redactUrlCredentials } from "../tasks/index.js";

export { ALLOWED_PROTOCOLS, redactUrlCredentials };

/** Daemon variables git may keep (set by the operator; an agent cannot change them). */
const PASS_GIT_ENV = new Set([
  "GIT_SSL_CAINFO",
  "GIT_SSL_CAPATH",
  "GIT_SSL_CERT",
  "GIT_SSL_KEY",
  "GIT_SSL_NO_VERIFY",
  "GIT_SSH_VARIANT",
  "GIT_AUTHOR_NAME",
  "GIT_AUTHOR_EMAIL",
  "GIT_COMMITTER_NAME",
  "GIT_COMMITTER_EMAIL",
  "GIT_SSH",
  "GIT_SSH_COMMAND",
  "GIT_ASKPASS",
  "GIT_PROXY_COMMAND",
]);

/** Non-git variables that make git run a program; git needs none of them here. */
const DROP_ENV = new Set(["EDITOR", "VISUAL", "PAGER", "LESS", "SSH_ASKPASS", "PREFIX"]);

/**
 * `-c` settings on every command. Command-line config beats every file, so these hold whatever
 * the cache's config or a worktree config says.
 */
export const HARDENING_CONFIG: ReadonlyArray<readonly [string, string]> = [
  ["core.hooksPath", "/dev/null"],
  ["core.fsmonitor", "false"],
  ["core.untrackedCache", "false"],
  ["core.attributesFile", "/dev/null"],
  ["core.pager", "cat"],
  ["core.editor", "false"],
  ["sequence.editor", "false"],
  ["credential.helper", ""],
  ["core.askPass", ""],
  ["protocol.ext.allow", "never"],
  ["commit.gpgsign", "false"],
  ["tag.gpgsign", "false"],
  ["gc.auto", "0"],
  ["maintenance.auto", "false"],
  ["fetch.writeCommitGraph", "false"],
  ["submodule.recurse", "false"],
  ["fetch.recurseSubmodules", "false"],
  ["push.recurseSubmodules", "no"],
];

/** git exited non-zero (or could not run). `stderr` is already stripped of URL credentials. */
export class GitCommandError extends Error {
  override name = "GitCommandError";
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    readonly kind: "failed" | "aborted" | "timeout",
    cause?: unknown,
    /** What git printed on stdout (e.g. `push --porcelain` says there why a ref was rejected). */
    readonly stdout = "",
  ) {
    const what = args.find((a) => !a.startsWith("-") && !a.includes("=")) ?? "git";
    const text = summarize(stderr);
    super(
      kind === "aborted"
        ? `git ${what} aborted`
        : kind === "timeout"
          ? `git ${what} timed out${text ? `: ${text}` : ""}`
          : `git ${what} failed${text ? `: ${text}` : ""}`,
      { cause },
    );
  }
}

function summarize(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("hint:"));
  return lines.slice(0, 3).join(" | ").slice(0, 400);
}

/** The repository a command works on, named explicitly (never discovered from the cwd). */
export interface GitRepo {
  /** `$GIT_DIR`: a bare cache, or a worktree's private dir `<cache>/worktrees/<name>`. */
  gitDir: string;
  /** `$GIT_COMMON_DIR` for a worktree: its cache (git then ignores the `commondir` file). */
  commonDir?: string;
  /** `$GIT_WORK_TREE`. */
  workTree?: string;
  /** `$GIT_INDEX_FILE`: an index other than the repository's own (e.g. a scratch copy). */
  indexFile?: string;
}

export interface GitRunOptions {
  repo: GitRepo;
  /** Where git runs (default: the work tree, else the git dir). */
  cwd?: string;
  signal?: AbortSignal;
  /** Kill git after this long without output. */
  timeoutMs?: number;
  /** Written to git's stdin (e.g. `bundle create --stdin`, `cat-file --batch-check`). */
  input?: string;
  /** Piped into git's stdin (e.g. a pack for `index-pack --stdin`); an error in it ends git's stdin early. */
  stdin?: Readable;
  /** git's stdout goes here instead of the result (e.g. `bundle create -`); not ended by git: the caller ends it. */
  stdout?: Writable;
  /** Commit dates for `commit-tree` (`GIT_AUTHOR_DATE`, `GIT_COMMITTER_DATE`), to make a commit reproducible. */
  date?: string;
}

const MAX_OUTPUT = 16 * 1024 * 1024;

export interface GitOptions {
  /** The daemon's environment (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** The operator's git settings (`workspaces.gitConfig`), passed after the hardening. */
  config?: Readonly<Record<string, string>>;
  /** The git binary (default: `git` on PATH). */
  binary?: string;
}

export class Git {
  private readonly env: Record<string, string>;
  private readonly config: string[];
  private readonly binary: string;

  constructor(opts: GitOptions = {}) {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.env ?? process.env)) {
      if (v === undefined || DROP_ENV.has(k.toUpperCase())) continue;
      if (k.toUpperCase().startsWith("GIT_") && !PASS_GIT_ENV.has(k)) continue;
      env[k] = v;
    }
    Object.assign(env, {
      LC_ALL: "C",
      LANGUAGE: "C",
      GIT_TERMINAL_PROMPT: "0",
      GCM_INTERACTIVE: "never",
      GIT_ALLOW_PROTOCOL: ALLOWED_PROTOCOLS.join(":"),
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_ATTR_NOSYSTEM: "1",
      GIT_PAGER: "cat",
      GIT_EDITOR: "false",
      GIT_NO_REPLACE_OBJECTS: "1",
    });
    this.env = env;
    this.config = [];
    // ssh as the operator set it (GIT_SSH_COMMAND beats config anyway), never from a config file.
    const ssh: Array<readonly [string, string]> = env.GIT_SSH ? [] : [["core.sshCommand", "ssh"]];
    for (const [k, v] of [...HARDENING_CONFIG, ...ssh, ...Object.entries(opts.config ?? {})]) {
      this.config.push("-c", `${k}=${v}`);
    }
    this.binary = opts.binary ?? "git";
  }

  async run(args: string[], opts: GitRunOptions): Promise<string> {
    const env: Record<string, string> = { ...this.env, GIT_DIR: opts.repo.gitDir };
    if (opts.repo.commonDir) env.GIT_COMMON_DIR = opts.repo.commonDir;
    if (opts.repo.workTree) env.GIT_WORK_TREE = opts.repo.workTree;
    if (opts.repo.indexFile) env.GIT_INDEX_FILE = opts.repo.indexFile;
    if (opts.date) {
      env.GIT_AUTHOR_DATE = opts.date;
      env.GIT_COMMITTER_DATE = opts.date;
    }
    const cwd = opts.cwd ?? opts.repo.workTree ?? opts.repo.gitDir;
    return this.spawn([...this.config, ...args], args, env, cwd, opts);
  }

  /** The output, or undefined when git failed (not when it was aborted or timed out). */
  async tryRun(args: string[], opts: GitRunOptions): Promise<string | undefined> {
    try {
      return await this.run(args, opts);
    } catch (err) {
      if (err instanceof GitCommandError && err.kind === "failed") return undefined;
      throw err;
    }
  }

  /**
   * Finds the repository that contains `dir` (a user's checkout, never a daemon cache): its
   * top level, its git dir and its common dir, all absolute. No `GIT_DIR` is set for this one
   * command (git discovers the repo from the folder, as the user's own git would); every later
   * command names the repository explicitly.
   */
  async discover(dir: string, signal?: AbortSignal): Promise<Required<Omit<GitRepo, "indexFile">>> {
    const out = await this.spawn(
      [
        ...this.config,
        "rev-parse",
        "--path-format=absolute",
        "--show-toplevel",
        "--git-dir",
        "--git-common-dir",
      ],
      ["rev-parse"],
      { ...this.env },
      dir,
      { timeoutMs: 30_000, ...(signal ? { signal } : {}) },
    );
    const [workTree, gitDir, commonDir] = out.split("\n").map((l) => l.trim());
    if (!workTree || !gitDir || !commonDir) {
      throw new GitCommandError(
        ["rev-parse"],
        `${dir} is not inside a work tree (a bare repository?)`,
        "failed",
      );
    }
    return { workTree, gitDir, commonDir };
  }

  /**
   * `git config --global --get <key>` from the daemon user's own config (it runs nothing: git
   * only parses files). Used for the commit identity, which is not a security setting.
   */
  async globalConfig(key: string, cwd: string): Promise<string | undefined> {
    const env = { ...this.env };
    delete env.GIT_CONFIG_GLOBAL;
    try {
      const out = await this.spawn(["config", "--global", "--get", key], ["config"], env, cwd, {
        timeoutMs: 10_000,
      });
      return out.trim() || undefined;
    } catch {
      return undefined;
    }
  }

  private spawn(
    argv: string[],
    args: readonly string[],
    env: Record<string, string>,
    cwd: string,
    opts: { signal?: AbortSignal; timeoutMs?: number; input?: string; stdin?: Readable; stdout?: Writable },
  ): Promise<string> {
    if (opts.signal?.aborted) return Promise.reject(new GitCommandError(args, "", "aborted"));
    // Its own process group (lib/child): a stop reaches what git started too (ssh, a local
    // receive-pack and its hooks), which would otherwise hold git's pipes open; what is left in
    // the group when git exits is killed with it. No parent-death wrapper: git ends on its own.
    const child = spawnChild([this.binary, ...argv], {
      cwd,
      env,
      parentDeath: "none",
      killGraceMs: 5_000,
      stdin: opts.input === undefined && opts.stdin === undefined ? "ignore" : "pipe",
    });
    if (opts.input !== undefined && child.stdin) {
      // git may exit before reading it all (an error): that is its exit code's business.
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.input);
    } else if (opts.stdin && child.stdin) {
      const sink = child.stdin;
      sink.on("error", () => undefined);
      // A source that fails ends git's input early: git then fails on the short input.
      opts.stdin.once("error", () => sink.destroy());
      opts.stdin.pipe(sink);
    }
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    let size = 0;
    let ended: "aborted" | "timeout" | undefined;
    let idle: NodeJS.Timeout | undefined;
    const kill = (why: "aborted" | "timeout"): void => {
      ended ??= why;
      void child.stop();
    };
    const arm = (): void => {
      if (!opts.timeoutMs) return;
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => kill("timeout"), opts.timeoutMs);
    };
    const onAbort = (): void => kill("aborted");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    arm();
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      arm();
      size += chunk.length;
      if (size <= MAX_OUTPUT) into.push(chunk);
    };
    if (opts.stdout && child.stdout) {
      child.stdout.on("data", () => arm());
      child.stdout.pipe(opts.stdout, { end: false });
    } else child.stdout?.on("data", collect(out));
    child.stderr?.on("data", collect(errOut));
    const streamsDone = Promise.all(
      [child.stdout, child.stderr].map(
        (s) =>
          new Promise<void>((resolve) => (s && !s.destroyed ? s.once("close", () => resolve()) : resolve())),
      ),
    );
    return (async () => {
      const exit = await child.exited;
      // A stopped git is done when it exits, whoever still holds its pipes.
      if (ended) {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }
      await streamsDone;
      if (idle) clearTimeout(idle);
      opts.signal?.removeEventListener("abort", onAbort);
      const stderr = redactUrlCredentials(Buffer.concat(errOut).toString("utf8"));
      if (ended) throw new GitCommandError(args, ended === "timeout" ? stderr : "", ended);
      if (exit.spawnError) throw new GitCommandError(args, exit.spawnError, "failed");
      if (exit.exitCode !== 0) {
        const stdout = redactUrlCredentials(Buffer.concat(out).toString("utf8"));
        const code = exit.exitCode ?? exit.signal;
        throw new GitCommandError(
          args,
          stderr.trim() ? stderr : `exit code ${code}`,
          "failed",
          undefined,
          stdout,
        );
      }
      return Buffer.concat(out).toString("utf8");
    })();
  }
}
