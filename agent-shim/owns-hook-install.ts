/**
 * Installing the ownership hook for one session: its config file in the attempt's private
 * runtime folder, the hook merged into the session's `--settings` (inline JSON, nothing in the
 * repo), and the port's address and token in the environment Claude Code hands its hooks.
 */
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { OWNS_HOOK_CONFIG_FILE, type OwnsHookConfigInput } from "./hook-config.js";
import type { ShimJob } from "./job.js";
import { HOOK_MATCHER } from "./owns-decide.js";
import { TASK_PORT_ENV, TASK_PORT_TOKEN_ENV } from "./task-port-protocol.js";

/** Claude Code's own limit for the hook, in seconds: above the hook's internal port timeout. */
const HOOK_TIMEOUT_S = 60;

/** argv of the hook program next to this module (built JS, or the TypeScript source through tsx). */
export function ownsHookArgv(): string[] {
  const here = fileURLToPath(import.meta.url);
  const dir = dirname(here);
  if (here.endsWith(".ts")) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    return [process.execPath, "--import", tsx, join(dir, "owns-hook.ts")];
  }
  return [process.execPath, join(dir, "owns-hook.js")];
}

/** Claude Code runs a hook's `command` through a shell: each argv word is single-quoted. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
}

/**
 * The hook's shell command. Claude Code lets a tool call through when a hook exits with any
 * code but 2 (a crash, node missing, a syntax error: it fails open), and older versions ignore
 * `onFailure`; so any failure of the hook program is turned into exit 2, which blocks. The
 * program itself denies with exit 2 and allows with exit 0.
 */
export function hookCommand(argv: readonly string[]): string {
  return `${shellQuote(argv)} || exit 2`;
}

async function baseSettings(settings: string | undefined): Promise<Record<string, unknown>> {
  if (!settings) return {};
  const text = settings.trimStart().startsWith("{") ? settings : await readFile(settings, "utf8");
  const value: unknown = JSON.parse(text);
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error("settings must be a JSON object");
  return value as Record<string, unknown>;
}

export interface InstalledHook {
  /** The session's `--settings`, with the hook in it. */
  settings: string;
  env: Record<string, string>;
  configPath: string;
}

export async function installOwnsHook(job: ShimJob): Promise<InstalledHook | undefined> {
  const h = job.ownsHook;
  if (!h) return undefined;
  const configPath = join(job.runtimeDir, OWNS_HOOK_CONFIG_FILE);
  const config: OwnsHookConfigInput = {
    v: 1,
    taskId: job.taskId,
    attempt: job.attempt,
    worktree: job.workdir,
    others: h.others,
  };
  if (h.owns) config.owns = h.owns;
  if (h.port) config.port = h.port.path;
  await writeFile(configPath, JSON.stringify(config), { mode: 0o600 });

  const settings = await baseSettings(job.settings);
  const hooks = (
    typeof settings.hooks === "object" && settings.hooks !== null ? settings.hooks : {}
  ) as Record<string, unknown>;
  const pre = Array.isArray(hooks.PreToolUse) ? hooks.PreToolUse : [];
  const ours = {
    matcher: HOOK_MATCHER,
    hooks: [
      {
        type: "command",
        command: hookCommand([...ownsHookArgv(), configPath]),
        timeout: HOOK_TIMEOUT_S,
        // Newer Claude Code: a failing hook blocks. The hook also denies on its own failures.
        onFailure: "block",
      },
    ],
  };
  // Settings cannot switch the mesh's hook off for this session.
  const merged = { ...settings, disableAllHooks: false, hooks: { ...hooks, PreToolUse: [ours, ...pre] } };
  const env: Record<string, string> = {};
  if (h.port) {
    env[TASK_PORT_ENV] = h.port.path;
    env[TASK_PORT_TOKEN_ENV] = h.port.token;
  }
  return { settings: JSON.stringify(merged), env, configPath };
}
