/** Running the real Claude Code CLI from node_modules against the mock, fully isolated. */
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLAUDE_BIN = join(REPO_ROOT, "node_modules", ".bin", "claude");
/** Looks like a real key so a leak is easy to grep for. */
export const FAKE_API_KEY = "sk-ant-api03-FAKE-mesh-test-key-0123456789abcdef";

/** An environment that keeps Claude Code away from the user's config, home and network. */
export async function isolatedClaudeEnv(
  dir: string,
  mockUrl: string,
  apiKey = FAKE_API_KEY,
): Promise<Record<string, string>> {
  const home = join(dir, "home");
  const config = join(dir, "claude-config");
  const tmp = join(dir, "claude-tmp");
  const run = join(dir, "run");
  await Promise.all([home, config, tmp, run].map((d) => mkdir(d, { recursive: true, mode: 0o700 })));
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    ANTHROPIC_BASE_URL: mockUrl,
    ANTHROPIC_API_KEY: apiKey,
    CLAUDE_CONFIG_DIR: config,
    CLAUDE_CODE_TMPDIR: tmp,
    XDG_RUNTIME_DIR: run,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_AUTOUPDATER: "1",
    CLAUDE_CODE_MAX_RETRIES: "0",
  };
}
