/**
 * The job a daemon hands to `mesh-shim`, as a JSON file. It never holds the API key: the key
 * reaches the shim, and from there Claude Code, through the environment only.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";

export const PERMISSION_MODES = ["acceptEdits", "default", "plan", "dontAsk", "bypassPermissions"] as const;
export type PermissionMode = (typeof PERMISSION_MODES)[number];

const ms = z.number().int().positive();

export const shimJobSchema = z.strictObject({
  v: z.literal(1),
  taskId: z.string().min(1),
  attempt: z.number().int().nonnegative(),
  prompt: z.string().min(1),
  /** The agent's working directory (the task's worktree). */
  workdir: z.string().min(1),
  /** argv of the Claude Code command, e.g. `["claude"]` or `["node", "/x/cli.js"]`. */
  claudeCommand: z.array(z.string().min(1)).min(1),
  model: z.string().min(1).optional(),
  maxTurns: z.number().int().positive().optional(),
  maxBudgetUsd: z.number().positive().optional(),
  permissionMode: z.enum(PERMISSION_MODES).default("acceptEdits"),
  allowedTools: z.array(z.string().min(1)).default([]),
  disallowedTools: z.array(z.string().min(1)).default([]),
  appendSystemPrompt: z.string().optional(),
  /** `--settings`: a file path or inline JSON text. */
  settings: z.string().min(1).optional(),
  /** New session id (`--session-id`); ignored when resuming. */
  sessionId: z.uuid().optional(),
  /** Resume this session (`--resume`) when its transcript is in `configDir`; else start fresh. */
  resumeSessionId: z.string().min(1).optional(),
  /** `CLAUDE_CONFIG_DIR`: stable per task so a later attempt can resume. */
  configDir: z.string().min(1),
  /** `CLAUDE_CODE_TMPDIR` and `XDG_RUNTIME_DIR`, owned by this attempt. */
  tmpDir: z.string().min(1),
  runtimeDir: z.string().min(1),
  /** `CLAUDE_CODE_MAX_RETRIES`: bounds how long Claude Code retries API errors itself. */
  maxRetries: z.number().int().nonnegative().optional(),
  /** Variables added to the environment Claude Code gets (on top of the shim's own). */
  env: z.record(z.string(), z.string()).default({}),
  /**
   * Install the ownership hook (PreToolUse on file tools and Bash): the task's `owns`, the other
   * tasks' of its plan (to name an owner), and the per-task port for file leases.
   */
  ownsHook: z
    .strictObject({
      owns: z.array(z.string().min(1)).min(1).optional(),
      others: z.record(z.string(), z.array(z.string().min(1))).default({}),
      port: z.strictObject({ path: z.string().min(1), token: z.string().min(16) }).optional(),
    })
    .refine((h) => h.owns || h.port, { message: "ownsHook needs owns or port" })
    .optional(),
  /**
   * Put `mesh-task` on the agent's PATH: it adds tasks to the task's plan through this per-task
   * port (the same port as `ownsHook.port`, when both are given).
   */
  meshTask: z.strictObject({ path: z.string().min(1), token: z.string().min(16) }).optional(),
  hangTimeoutMs: ms.default(15 * 60_000),
  heartbeatMs: ms.default(15_000),
  /** After the interrupt request: how long to wait for the result line. */
  interruptGraceMs: ms.default(10_000),
  /** After closing stdin, and again after SIGTERM: how long to wait for exit. */
  exitGraceMs: ms.default(5_000),
});

export type ShimJobInput = z.input<typeof shimJobSchema>;
export type ShimJob = z.output<typeof shimJobSchema>;

export class ShimJobError extends Error {
  override name = "ShimJobError";
}

export function parseShimJob(value: unknown): ShimJob {
  const res = shimJobSchema.safeParse(value);
  if (res.success) return res.data;
  const issue = res.error.issues[0];
  const where = issue?.path.length ? issue.path.join(".") : "(root)";
  throw new ShimJobError(`invalid job: ${where}: ${issue?.message ?? "invalid"}`, { cause: res.error });
}

export async function readShimJob(path: string): Promise<ShimJob> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ShimJobError(`cannot read job file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ShimJobError(`job file ${path} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseShimJob(value);
}
