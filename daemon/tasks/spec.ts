/**
 * The task spec: what a user submits (YAML or JSON). Validated with zod; unknown fields are
 * rejected with their path so a typo never silently drops an option.
 */
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { MeshError } from "../errors.js";
import { parseDuration } from "../util/duration.js";

export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
/** A prompt larger than this is refused: it would not fit a NATS message with headroom. */
export const MAX_PROMPT_BYTES = 256 * 1024;
export const MAX_BATCH = 1000;

const duration = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === "number") return v * 1000; // plain numbers are seconds
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration; use e.g. 30s, 10m, 2h` });
    return z.NEVER;
  }
  return ms;
});

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _");
/** Names that look like secrets are refused: secrets come from the daemon's environment, never the bus. */
const SECRET_ENV_RE = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)/i;

export const agentSettingsSchema = z.strictObject({
  model: z.string().min(1).max(200).optional(),
  maxTurns: z.number().int().positive().max(10_000).optional(),
  maxBudgetUsd: z.number().positive().max(100_000).optional(),
  permissionMode: z.enum(["acceptEdits", "default", "plan", "dontAsk", "bypassPermissions"]).optional(),
  allowedTools: z.array(z.string().min(1)).optional(),
  disallowedTools: z.array(z.string().min(1)).optional(),
  appendSystemPrompt: z
    .string()
    .max(64 * 1024)
    .optional(),
  resume: z.enum(["auto", "never"]).optional(),
});

export const taskSpecSchema = z
  .strictObject({
    id: z
      .string()
      .regex(ID_RE, "ids are 1-128 of A-Z a-z 0-9 _ - and start with a letter or digit")
      .optional(),
    title: z.string().min(1).max(200).optional(),
    prompt: z
      .string()
      .min(1, "prompt is required and must not be empty")
      .refine((p) => Buffer.byteLength(p) <= MAX_PROMPT_BYTES, {
        message: `prompt is larger than ${MAX_PROMPT_BYTES / 1024} KiB; put long context in a file in the repo`,
      }),
    repo: z.string().min(1).max(2048).optional(),
    ref: z.string().min(1).max(256).optional(),
    push: z.boolean().optional(),
    pool: z.string().regex(NAME_RE, "pool names are 1-64 of A-Z a-z 0-9 _ -").default("default"),
    labels: z.record(z.string().regex(LABEL_KEY_RE, "bad label key"), z.string().max(128)).default({}),
    timeout: duration.optional(),
    maxAttempts: z.number().int().min(1).max(100).default(3),
    runner: z.enum(["claude", "command", "noop"]).default("claude"),
    command: z.array(z.string()).min(1).max(1000).optional(),
    agent: agentSettingsSchema.default({}),
    env: z
      .record(envName, z.string().max(32 * 1024))
      .default({})
      .superRefine((env, ctx) => {
        for (const k of Object.keys(env)) {
          if (SECRET_ENV_RE.test(k)) {
            ctx.addIssue({
              code: "custom",
              path: [k],
              message: `"${k}" looks like a secret; secrets never travel on the bus: set it in the daemon's environment instead`,
            });
          }
        }
      }),
  })
  .superRefine((t, ctx) => {
    if (t.runner === "command" && !t.command) {
      ctx.addIssue({
        code: "custom",
        path: ["command"],
        message: 'runner "command" needs command: [argv...]',
      });
    }
    if (t.runner !== "command" && t.command) {
      ctx.addIssue({
        code: "custom",
        path: ["runner"],
        message: 'command is only valid with runner: "command"',
      });
    }
  });

export type TaskSpecInput = z.input<typeof taskSpecSchema>;
/** A validated spec; `id` is always set (generated when the user gave none). */
export type TaskSpec = z.output<typeof taskSpecSchema> & { id: string };

function formatPath(prefix: string, path: ReadonlyArray<PropertyKey>): string {
  let out = prefix;
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(root)";
}

function describeIssue(issue: z.core.$ZodIssue, prefix: string): { field: string; text: string } {
  let path = issue.path;
  let msg = issue.message;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    path = [...issue.path, key];
    msg = `unknown field "${key}"; check the spelling (see the task spec in README)`;
  } else if (issue.code === "invalid_type" && /received undefined$/.test(msg)) {
    msg = "is required";
  } else if (issue.code === "invalid_type" && msg.startsWith("Invalid input: expected")) {
    msg = msg.replace("Invalid input: ", "");
  }
  const field = formatPath(prefix, path);
  return { field, text: `${field}: ${msg}` };
}

/** One line naming every problem (up to a few), the first problem's field as the error's field. */
function zodToMeshError(err: z.ZodError, prefix: string): MeshError {
  const all = err.issues.map((i) => describeIssue(i, prefix));
  const shown = all.slice(0, 4).map((d) => d.text);
  if (all.length > 4) shown.push(`and ${all.length - 4} more`);
  return new MeshError("INVALID_ARGUMENT", shown.join("; "), { field: all[0]!.field, cause: err });
}

export function newTaskId(): string {
  // time-sortable and unique enough across machines: ms timestamp + 8 random base36 chars
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => (b % 36).toString(36)).join("");
  return `t-${Date.now().toString(36)}-${rand}`;
}

/** Validate one already-parsed spec object. `prefix` names it in errors (e.g. `tasks[3]`). */
export function validateTaskSpec(input: unknown, prefix = ""): TaskSpec {
  const res = taskSpecSchema.safeParse(input);
  if (!res.success) throw zodToMeshError(res.error, prefix);
  return { ...res.data, id: res.data.id ?? newTaskId() };
}

/** Validate a batch: all or nothing; duplicate ids inside the batch are refused. */
export function validateTaskBatch(inputs: unknown[]): TaskSpec[] {
  if (inputs.length === 0) throw new MeshError("INVALID_ARGUMENT", "no tasks given", { field: "tasks" });
  if (inputs.length > MAX_BATCH) {
    throw new MeshError("INVALID_ARGUMENT", `a batch holds at most ${MAX_BATCH} tasks; split it`, {
      field: "tasks",
    });
  }
  const specs = inputs.map((t, i) => validateTaskSpec(t, inputs.length === 1 ? "" : `tasks[${i}]`));
  const seen = new Map<string, number>();
  specs.forEach((s, i) => {
    const prev = seen.get(s.id);
    if (prev !== undefined) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `tasks[${i}].id: duplicate id "${s.id}" (also tasks[${prev}])`,
        {
          field: `tasks[${i}].id`,
        },
      );
    }
    seen.set(s.id, i);
  });
  return specs;
}

/**
 * Parse a spec document (YAML or JSON; JSON is YAML). Accepts one task, a list of tasks, or
 * `{ tasks: [...] }`. Returns raw objects; validate with `validateTaskBatch`.
 */
export function parseTaskDocument(text: string, source = "input"): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  for (const doc of list) {
    const e = doc.errors[0];
    if (e) {
      const where = e.linePos?.[0] ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "";
      throw new MeshError(
        "INVALID_ARGUMENT",
        `${source}: not valid YAML/JSON${where}: ${e.message.split("\n")[0]}`,
        {
          field: source,
          cause: e,
        },
      );
    }
    let value: unknown;
    try {
      // Aliases expand on output: bound them (a "billion laughs" document is refused).
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `${source}: not usable YAML/JSON: ${(err as Error).message}; use fewer aliases (*name) and less nesting`,
        { field: source, cause: err },
      );
    }
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) out.push(...value);
    else if (typeof value === "object" && "tasks" in value && Object.keys(value).length === 1) {
      const tasks = (value as { tasks: unknown }).tasks;
      if (!Array.isArray(tasks))
        throw new MeshError("INVALID_ARGUMENT", "tasks: must be a list", { field: "tasks" });
      out.push(...tasks);
    } else out.push(value);
  }
  if (out.length === 0)
    throw new MeshError("INVALID_ARGUMENT", `${source}: holds no task`, { field: source });
  return out;
}

export function parseTaskSpecs(text: string, source?: string): TaskSpec[] {
  return validateTaskBatch(parseTaskDocument(text, source));
}
