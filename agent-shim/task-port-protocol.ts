/**
 * The per-task port: a unix socket the daemon serves for one running attempt, reached by the
 * agent's hook and by `mesh-task` (the agent's command for adding tasks to its plan). One JSON object per line each way; every
 * request carries the attempt's token. New kinds are added to `portRequestSchema`'s union.
 */
import { z } from "zod";

export const TASK_PORT_PROTOCOL_VERSION = 1;
/** Env names the shim hands to Claude Code (and so to its hooks). */
export const TASK_PORT_ENV = "MESH_TASK_PORT";
export const TASK_PORT_TOKEN_ENV = "MESH_TASK_PORT_TOKEN";
/** A request line longer than this is refused and the connection closed. */
export const MAX_PORT_LINE = 64 * 1024;

const base = {
  v: z.literal(TASK_PORT_PROTOCOL_VERSION),
  id: z.union([z.string().max(64), z.number().int()]),
  token: z.string().min(1).max(256),
};

/** `lease`: may this attempt write `path` (repository-relative)? First come, first served. */
export const leaseRequestSchema = z.strictObject({
  ...base,
  kind: z.literal("lease"),
  path: z.string().min(1).max(4096),
});

/** A task name inside a plan (the child's id is `<plan>-<name>`). */
const taskName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
    "names are 1-64 of A-Z a-z 0-9 _ - and start with a letter or digit",
  );

/**
 * `add-task`: add a task to the running task's own plan (delegation, issue 14 §5). The daemon
 * fills in everything else from the parent (repo, ref, pool, runner, agent settings).
 */
export const addTaskRequestSchema = z.strictObject({
  ...base,
  kind: z.literal("add-task"),
  name: taskName,
  prompt: z
    .string()
    .min(1)
    .max(64 * 1024),
  title: z.string().min(1).max(200).optional(),
  owns: z.array(z.string().min(1).max(1024)).min(1).max(64),
  needs: z.array(taskName).max(64).default([]),
});

export const portRequestSchema = z.discriminatedUnion("kind", [leaseRequestSchema, addTaskRequestSchema]);
export type PortRequest = z.infer<typeof portRequestSchema>;
export type LeaseRequest = z.infer<typeof leaseRequestSchema>;
export type AddTaskRequest = z.infer<typeof addTaskRequestSchema>;

export const leaseHolderSchema = z.strictObject({
  taskId: z.string(),
  attempt: z.number().int(),
  workerId: z.string(),
});
export type LeaseHolder = z.infer<typeof leaseHolderSchema>;

export const portResponseSchema = z.union([
  z.strictObject({ id: base.id, ok: z.literal(true), kind: z.literal("lease"), granted: z.literal(true) }),
  z.strictObject({
    id: base.id,
    ok: z.literal(true),
    kind: z.literal("lease"),
    granted: z.literal(false),
    holder: leaseHolderSchema,
  }),
  z.strictObject({
    id: base.id,
    ok: z.literal(true),
    kind: z.literal("add-task"),
    taskId: z.string(),
    created: z.boolean(),
    state: z.string(),
    depth: z.number().int(),
  }),
  z.strictObject({
    id: z.union([base.id, z.null()]),
    ok: z.literal(false),
    error: z.strictObject({ code: z.string(), message: z.string() }),
  }),
]);
export type PortResponse = z.infer<typeof portResponseSchema>;

/** The first problem of a zod error as `field: message`. */
export function firstIssue(err: z.ZodError): string {
  const issue = err.issues[0];
  const where = issue?.path.length ? issue.path.join(".") : "(root)";
  return `${where}: ${issue?.message ?? "invalid"}`;
}
