/**
 * What the owns hook knows about its task, written by the shim into the attempt's private
 * runtime folder (never the repo). The port token is not in it: it comes through the env.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { firstIssue } from "./task-port-protocol.js";

export const OWNS_HOOK_CONFIG_FILE = "owns-hook.json";

export const ownsHookConfigSchema = z.strictObject({
  v: z.literal(1),
  taskId: z.string().min(1),
  attempt: z.number().int().nonnegative(),
  /** The task's worktree; every write must land inside it. */
  worktree: z.string().min(1),
  /** The task's `owns` globs; absent: the task owns nothing in particular and takes file leases. */
  owns: z.array(z.string().min(1)).optional(),
  /** The `owns` of the other tasks of its plan, to name who owns a refused path. */
  others: z.record(z.string(), z.array(z.string().min(1))).default({}),
  /** The per-task port's socket (file leases); required when `owns` is absent. */
  port: z.string().min(1).optional(),
});
export type OwnsHookConfig = z.output<typeof ownsHookConfigSchema>;
export type OwnsHookConfigInput = z.input<typeof ownsHookConfigSchema>;

export function readOwnsHookConfig(path: string): OwnsHookConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read the hook config ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`the hook config ${path} is not JSON`);
  }
  const res = ownsHookConfigSchema.safeParse(value);
  if (!res.success) throw new Error(`the hook config ${path} is invalid: ${firstIssue(res.error)}`);
  if (!res.data.owns && !res.data.port) throw new Error(`the hook config ${path} has neither owns nor port`);
  return res.data;
}
