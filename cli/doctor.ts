/**
 * `mesh doctor`'s checks: what this machine needs to run meshd and its agents, each with the
 * fix. Side effects (commands run, env, files) go through `DoctorEnv`, so each check is one
 * small function. Secrets are only ever said to be present, never shown.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** A failed required check makes `mesh doctor` exit non-zero. */
  required: boolean;
  detail: string;
  fix: string | null;
}

export interface DoctorEnv {
  env: NodeJS.ProcessEnv;
  /** Runs argv (no shell); stdout+stderr, or undefined when it cannot run or exits non-zero. */
  run(argv: string[]): Promise<string | undefined>;
  exists(path: string): boolean;
  home: string;
}

export const realDoctorEnv = (): DoctorEnv => ({
  env: process.env,
  run: (argv) =>
    new Promise((resolve) => {
      execFile(
        argv[0] as string,
        argv.slice(1),
        { timeout: 10_000, encoding: "utf8" },
        (err, stdout, stderr) => resolve(err ? undefined : `${stdout}${stderr}`),
      );
    }),
  exists: existsSync,
  home: homedir(),
});

export interface NatsProbe {
  url: string;
  credsFile?: string;
  /** A local `mesh up`'s nkey seed file, used on loopback when no creds file is given. */
  nkeyFile?: string;
}

const result = (
  name: string,
  required: boolean,
  ok: boolean,
  detail: string,
  fix: string,
  failAs: CheckStatus = "fail",
): CheckResult => ({ name, required, status: ok ? "ok" : failAs, detail, fix: ok ? null : fix });

/** nats-server reachable (its version), and JetStream enabled on it: two results. */
export async function checkNats(p: NatsProbe): Promise<CheckResult[]> {
  const { AuthorizationError, connect, credsAuthenticator, nkeyAuthenticator } = await import(
    "@nats-io/transport-node"
  );
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const { readFile } = await import("node:fs/promises");
  let nc: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    const creds = p.credsFile ? await readFile(p.credsFile) : undefined;
    const seed = !creds && p.nkeyFile ? (await readFile(p.nkeyFile, "utf8")).trim() : undefined;
    nc = await connect({
      servers: [p.url],
      timeout: 3000,
      maxReconnectAttempts: 0,
      ...(creds
        ? { authenticator: credsAuthenticator(creds) }
        : seed
          ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) }
          : {}),
    });
  } catch (err) {
    const e = err as Error;
    // A server that answered but refused us is there: the fix is credentials, not starting one.
    const refused = e instanceof AuthorizationError;
    return [
      result(
        "nats",
        true,
        false,
        `cannot ${refused ? "log in to" : "reach"} NATS at ${p.url} (${e.message})`,
        refused
          ? "give the mesh's credentials with --nats-creds <file> (a local `mesh up`: run doctor with the same MESH_STATE_DIR, its nats-daemon.nk is used)"
          : "start one with `mesh up` (it runs a local nats-server), or give the mesh's URL with --nats <url> (and --nats-creds)",
      ),
      result("jetstream", true, false, "not checked: NATS is not reachable", "fix nats first"),
    ];
  }
  try {
    const version = nc.info?.version ?? "unknown";
    const out = [result("nats", true, true, `nats-server ${version} at ${p.url}`, "")];
    try {
      const jsm = await jetstreamManager(nc, { timeout: 3000 });
      const info = await jsm.getAccountInfo();
      out.push(result("jetstream", true, true, `enabled (${info.streams} streams in this account)`, ""));
    } catch (err) {
      out.push(
        result(
          "jetstream",
          true,
          false,
          `JetStream is not enabled for this account (${(err as Error).message})`,
          "start nats-server with -js (or `jetstream {}` in its config) and give the account JetStream",
        ),
      );
    }
    return out;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

const firstLine = (s: string): string =>
  s
    .split("\n")
    .find((l) => l.trim())
    ?.trim() ?? "";

/** git >= 2.38 (merge-tree --write-tree finds conflicts between a plan's branches). */
export async function checkGit(e: DoctorEnv): Promise<CheckResult> {
  const out = await e.run(["git", "--version"]);
  const fix = "install git 2.38 or newer (Debian: apt-get install git; it must be on meshd's PATH)";
  if (!out) return result("git", true, false, "git not found on PATH", fix);
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
  const [maj, min] = [Number(m?.[1] ?? 0), Number(m?.[2] ?? 0)];
  const ok = maj > 2 || (maj === 2 && min >= 38);
  return result(
    "git",
    true,
    ok,
    ok ? firstLine(out) : `${firstLine(out)} is older than 2.38 (merge-tree --write-tree)`,
    fix,
  );
}

/** Claude Code, for the claude runner (only a warning: command and noop tasks run without it). */
export async function checkClaude(e: DoctorEnv, command = "claude"): Promise<CheckResult> {
  const out = await e.run([command, "--version"]);
  return result(
    "claude",
    false,
    out !== undefined,
    out
      ? `Claude Code ${firstLine(out)}`
      : `${command} not found on PATH (the claude runner cannot run here)`,
    "npm install -g @anthropic-ai/claude-code (or set claude.command in meshd's config)",
    "warn",
  );
}

/** An Anthropic credential for Claude Code: its presence only, never its value. */
export function checkCredentials(e: DoctorEnv, apiKeyFile?: string): CheckResult {
  const found: string[] = [];
  if (e.env.ANTHROPIC_API_KEY) found.push("ANTHROPIC_API_KEY is set");
  if (e.env.CLAUDE_CODE_OAUTH_TOKEN) found.push("CLAUDE_CODE_OAUTH_TOKEN is set");
  if (apiKeyFile && e.exists(apiKeyFile)) found.push(`${apiKeyFile} exists`);
  const login = join(e.home, ".claude", ".credentials.json");
  if (e.exists(login)) found.push(`${login} exists`);
  return result(
    "credentials",
    false,
    found.length > 0,
    found.length ? found.join("; ") : "no Anthropic credential found for Claude Code",
    "set ANTHROPIC_API_KEY in meshd's environment, or claude.apiKeyFile in its config, or log in with `claude login`",
    "warn",
  );
}

/** util-linux setpriv: children die with meshd even when it is SIGKILLed. */
export function checkSetpriv(e: DoctorEnv): CheckResult {
  const path = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => e.exists(p));
  return result(
    "setpriv",
    false,
    path !== undefined,
    path
      ? `${path} (children die with meshd)`
      : "not found: a SIGKILLed meshd may leave agent processes behind",
    "install util-linux (Debian: apt-get install util-linux)",
    "warn",
  );
}

/** The nats-server binary `mesh up` starts (not needed to join an existing NATS). */
export async function checkNatsServerBinary(e: DoctorEnv): Promise<CheckResult> {
  const bins = ["nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"];
  for (const b of bins) {
    const out = await e.run([b, "--version"]);
    if (out)
      return result("nats-server", false, true, `${firstLine(out)} (${b}; \`mesh up\` can start it)`, "");
  }
  return result(
    "nats-server",
    false,
    false,
    "no nats-server binary: `mesh up` cannot start a local NATS (joining one with --nats still works)",
    "apt-get install nats-server (or download it from https://github.com/nats-io/nats-server/releases)",
    "warn",
  );
}

export async function runDoctor(e: DoctorEnv, p: NatsProbe): Promise<CheckResult[]> {
  const [nats, git, claude, binary] = await Promise.all([
    checkNats(p),
    checkGit(e),
    checkClaude(e),
    checkNatsServerBinary(e),
  ]);
  return [...nats, binary, git, claude, checkCredentials(e), checkSetpriv(e)];
}
