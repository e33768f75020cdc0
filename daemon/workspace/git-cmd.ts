/**
 * Runs git through simple-git: argv only (never a shell), a controlled environment, English
 * messages, no prompts, and a non-zero exit always an error (simple-git alone ignores an exit
 * code that came without stderr).
 */
import { GitError, GitPluginError, type SimpleGitOptions, simpleGit } from "simple-git";
import { ALLOWED_PROTOCOLS, redactUrlCredentials } from "../tasks/repo-syntax.js";

export { ALLOWED_PROTOCOLS, redactUrlCredentials };

/** Daemon variables git may keep, with the simple-git guard each one needs lifted. */
const PASS_GIT_ENV: Record<string, keyof NonNullable<SimpleGitOptions["unsafe"]> | null> = {
  GIT_SSL_CAINFO: null,
  GIT_SSL_CAPATH: null,
  GIT_SSL_CERT: null,
  GIT_SSL_KEY: null,
  GIT_SSL_NO_VERIFY: null,
  GIT_SSH_VARIANT: null,
  GIT_CONFIG_NOSYSTEM: null,
  GIT_AUTHOR_NAME: null,
  GIT_AUTHOR_EMAIL: null,
  GIT_COMMITTER_NAME: null,
  GIT_COMMITTER_EMAIL: null,
  GIT_SSH: "allowUnsafeSshCommand",
  GIT_SSH_COMMAND: "allowUnsafeSshCommand",
  GIT_ASKPASS: "allowUnsafeAskPass",
  GIT_PROXY_COMMAND: "allowUnsafeGitProxy",
  GIT_CONFIG_GLOBAL: "allowUnsafeConfigPaths",
  GIT_CONFIG_SYSTEM: "allowUnsafeConfigPaths",
};

/** Non-git variables simple-git guards; git needs none of them here (no editor, no pager). */
const DROP_ENV = new Set(["editor", "visual", "pager", "prefix", "ssh_askpass"]);

/** git exited non-zero (or could not run). `stderr` is already stripped of URL credentials. */
export class GitCommandError extends Error {
  override name = "GitCommandError";
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    readonly kind: "failed" | "aborted" | "timeout",
    cause?: unknown,
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

export interface GitRunOptions {
  cwd: string;
  signal?: AbortSignal;
  /** Kill git after this long without output. */
  timeoutMs?: number;
}

export class Git {
  private readonly env: Record<string, string>;
  private readonly allow: string[];
  private readonly unsafe: NonNullable<SimpleGitOptions["unsafe"]> = {};

  constructor(base: NodeJS.ProcessEnv = process.env) {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(base)) {
      if (v === undefined || DROP_ENV.has(k.toLowerCase())) continue;
      if (k.startsWith("GIT_")) {
        if (!(k in PASS_GIT_ENV)) continue;
        const flag = PASS_GIT_ENV[k];
        if (flag) this.unsafe[flag] = true;
      }
      env[k] = v;
    }
    Object.assign(env, {
      LC_ALL: "C",
      LANGUAGE: "C",
      GIT_TERMINAL_PROMPT: "0",
      GCM_INTERACTIVE: "never",
      GIT_ALLOW_PROTOCOL: ALLOWED_PROTOCOLS.join(":"),
    });
    this.env = env;
    this.allow = Object.keys(env).filter((k) => k.startsWith("GIT_"));
  }

  async run(args: string[], opts: GitRunOptions): Promise<string> {
    const git = simpleGit({
      baseDir: opts.cwd,
      allowEnvironment: this.allow,
      unsafe: this.unsafe,
      ...(opts.signal ? { abort: opts.signal } : {}),
      ...(opts.timeoutMs ? { timeout: { block: opts.timeoutMs } } : {}),
      errors: (error, result) => {
        if (error) return error;
        if (result.exitCode === 0) return undefined;
        const text = Buffer.concat(result.stdErr).toString("utf8");
        return Buffer.from(text.trim() ? text : `exit code ${result.exitCode}`);
      },
    }).env(this.env);
    try {
      return await git.raw(args);
    } catch (err) {
      if (err instanceof GitPluginError && (err.plugin === "abort" || err.plugin === "timeout")) {
        throw new GitCommandError(args, "", err.plugin === "abort" ? "aborted" : "timeout", err);
      }
      const text = err instanceof GitError ? err.message : String(err);
      throw new GitCommandError(args, redactUrlCredentials(text), "failed", err);
    }
  }

  /** The output, or undefined when git failed (not when it was aborted). */
  async tryRun(args: string[], opts: GitRunOptions): Promise<string | undefined> {
    try {
      return await this.run(args, opts);
    } catch (err) {
      if (err instanceof GitCommandError && err.kind === "failed") return undefined;
      throw err;
    }
  }
}
