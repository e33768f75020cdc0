#!/usr/bin/env node
/**
 * The PreToolUse hook the shim installs per task: `node owns-hook.js <config file>`, the tool
 * call as JSON on stdin. A refusal is a JSON `permissionDecision: "deny"` on stdout, the reason
 * on stderr, and exit 2 (either blocks). It fails closed: whatever goes wrong (an unreadable
 * config, malformed input, an unreachable port, a bug) refuses the call, because Claude Code
 * lets a call through when a hook crashes (older versions ignore `"onFailure": "block"`).
 */
import { readOwnsHookConfig } from "./hook-config.js";
import { OwnsJudge } from "./owns-decide.js";
import { askLease } from "./task-port-client.js";
import { TASK_PORT_TOKEN_ENV } from "./task-port-protocol.js";

const MAX_INPUT = 16 * 1024 * 1024;
/** Below the hook timeout the shim sets: a hook killed on timeout would let the call through. */
const PORT_TIMEOUT_MS = 15_000;

let answered = false;

function deny(reason: string): void {
  if (answered) return;
  answered = true;
  const out = {
    hookSpecificOutput: {
      hookEventName: "PreToolUse",
      permissionDecision: "deny",
      permissionDecisionReason: reason,
    },
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.stderr.write(`${reason}\n`);
  process.exitCode = 2;
}

function allow(note?: string): void {
  if (answered) return;
  answered = true;
  if (note) process.stdout.write(`${JSON.stringify({ systemMessage: note })}\n`);
  process.exitCode = 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_INPUT) throw new Error("the hook input is larger than 16 MiB");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<void> {
  const configPath = process.argv[2];
  if (!configPath) throw new Error("no config file argument");
  const cfg = readOwnsHookConfig(configPath);
  const text = await readStdin();
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    deny("mesh: the hook input is not JSON, so the call is refused");
    return;
  }
  const token = process.env[TASK_PORT_TOKEN_ENV] ?? "";
  const port = cfg.port;
  const judge = new OwnsJudge(
    cfg,
    port ? { lease: (rel) => askLease(port, token, rel, PORT_TIMEOUT_MS) } : {},
  );
  const d = await judge.decide(input);
  if (d.allow) allow(d.note);
  else deny(d.reason);
}

const failed = (err: unknown): void =>
  deny(
    `mesh: the ownership hook failed, so the call is refused (${err instanceof Error ? err.message : String(err)})`,
  );
process.on("uncaughtException", failed);
process.on("unhandledRejection", failed);
main().catch(failed);
