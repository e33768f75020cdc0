/**
 * The task spec: what a user submits (YAML or JSON). Validated with zod; unknown fields are
 * rejected with their path so a typo never silently drops an option.
 */
import { z } from "zod";
import { isMeshError, MeshError } from "../errors.js";
import { parseDuration, yaml } from "../util/index.js";
import { MAX_OWNS, normaliseGlob } from "./glob.js";
import { COMMIT_ID_RE, hasControlChars, MESH_REPO_RE, parseRepo, validateRef } from "./repo-syntax.js";
import { deniedEnvReason } from "./task-env.js";

export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
/**
 * The whole spec, serialised as JSON, is at most this big. A task record holds its spec and its
 * attempts and must stay below NATS' max_payload (1 MiB by default): this leaves 768 KiB for
 * the attempts and the result.
 */
export const MAX_SPEC_BYTES = 256 * 1024;
/** A prompt larger than this is refused (it is most of the spec's budget). */
export const MAX_PROMPT_BYTES = MAX_SPEC_BYTES;
export const MAX_BATCH = 1000;
/** A plan holds at most this many tasks (submitted in one go, all or nothing). */
export const MAX_PLAN_TASKS = 10_000;
/** The longest duration a timer can hold (setTimeout's limit, about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
export const MAX_ENV_VARS = 256;

/** Claude Code permission modes, least to most permissive (see tasks/policy.ts). */
export const PERMISSION_ORDER = ["plan", "dontAsk", "default", "acceptEdits", "bypassPermissions"] as const;

export const formatTimerLimit = (): string =>
  `${Math.floor(MAX_TIMER_MS / 86_400_000)}d (${MAX_TIMER_MS} ms)`;

const duration = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  const ms = typeof v === "number" ? v * 1000 : parseDuration(v); // plain numbers are seconds
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration; use e.g. 30s, 10m, 2h` });
    return z.NEVER;
  }
  if (ms > MAX_TIMER_MS) {
    ctx.addIssue({ code: "custom", message: `"${v}" is longer than the limit of ${formatTimerLimit()}` });
    return z.NEVER;
  }
  return ms;
});

/** One line of text: no control characters (a newline or NUL would break the argv or file it reaches). */
const line = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !hasControlChars(s), { message: "must be one line without control characters" });

/** A value that reaches a child's command line: it must never read as an option. */
const argValue = (re: RegExp, what: string, max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !s.startsWith("-"), {
      message: `must not start with "-" (it would be read as an option)`,
    })
    .refine((s) => re.test(s) && !hasControlChars(s), { message: what });

const noNul = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !s.includes("\0"), { message: "must not hold NUL characters" });

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _");

const model = argValue(
  /^[A-Za-z0-9][A-Za-z0-9._:@/[\]-]*$/,
  "model names are letters, digits and . _ : @ / [ ] -",
  200,
);
const tool = argValue(
  /^[A-Za-z]/,
  'tool names start with a letter, e.g. "Read", "Bash(npm test:*)", "mcp__server__tool"',
  256,
);

export const agentSettingsSchema = z.strictObject({
  model: model.optional(),
  maxTurns: z.number().int().positive().max(10_000).optional(),
  maxBudgetUsd: z.number().positive().max(100_000).optional(),
  permissionMode: z.enum(PERMISSION_ORDER).optional(),
  allowedTools: z.array(tool).max(256).optional(),
  disallowedTools: z.array(tool).max(256).optional(),
  appendSystemPrompt: noNul(64 * 1024).optional(),
  resume: z.enum(["auto", "never"]).optional(),
});

/** The submit-time form of the claiming worker's repo/ref checks (repo-syntax.ts). */
function refineRepo(repo: string | undefined, ref: string | undefined, ctx: z.RefinementCtx): void {
  const check = (fn: () => void, path: "repo" | "ref"): void => {
    try {
      fn();
    } catch (err) {
      if (!isMeshError(err)) throw err;
      ctx.addIssue({ code: "custom", path: [path], message: err.message.replace(/^(repo|ref) /, "") });
    }
  };
  if (repo !== undefined) {
    check(() => parseRepo(repo), "repo");
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i.test(repo)) {
      ctx.addIssue({
        code: "custom",
        path: ["repo"],
        message:
          "holds a password: credentials never travel on the bus; give the workers git credentials (ssh keys, a credential helper) instead",
      });
    }
  }
  if (ref !== undefined) check(() => validateRef(ref), "ref");
  if (repo !== undefined && MESH_REPO_RE.test(repo) && (ref === undefined || !COMMIT_ID_RE.test(ref))) {
    ctx.addIssue({
      code: "custom",
      path: ["ref"],
      message:
        "a mesh:// repo needs ref: the full commit id to run on (`mesh submit` sets both from repo: .)",
    });
  }
}

export const taskSpecSchema = z
  .strictObject({
    id: z
      .string()
      .regex(ID_RE, "ids are 1-128 of A-Z a-z 0-9 _ - and start with a letter or digit")
      .optional(),
    title: line(200).optional(),
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
    labels: z
      .record(z.string().regex(LABEL_KEY_RE, "bad label key"), line(128).or(z.literal("")))
      .default({}),
    timeout: duration.optional(),
    maxAttempts: z.number().int().min(1).max(100).default(3),
    runner: z.enum(["claude", "command", "noop"]).default("claude"),
    command: z
      .array(noNul(128 * 1024))
      .min(1)
      .max(1000)
      .refine((argv) => argv[0] !== "", { message: "command[0] must name a program", path: [0] })
      .optional(),
    /** The plan this task belongs to (its id); set by `mesh plan submit`, never by hand. */
    plan: z
      .string()
      .regex(ID_RE, "plan ids are 1-128 of A-Z a-z 0-9 _ - and start with a letter or digit")
      .optional(),
    /** Task ids of the same plan that must succeed before this task is queued. */
    needs: z
      .array(z.string().regex(ID_RE, "needs are task ids"))
      .max(MAX_PLAN_TASKS)
      .refine((n) => new Set(n).size === n.length, { message: "lists a task twice" })
      .optional(),
    /** The task that delegated this one (issue 14 §5). */
    parent: z.string().regex(ID_RE, "parent is a task id").optional(),
    /** Delegation depth: 0 for a top-level task. */
    depth: z.number().int().min(0).max(100).optional(),
    /** What a failed, dead or cancelled need does to this task: cancel it (default) or keep it waiting. */
    dependencyFailure: z.enum(["cancel", "wait"]).optional(),
    agent: agentSettingsSchema.default({}),
    /** The paths the task may change (globs, normalised); checked on its result (README "owns"). */
    owns: z
      .array(z.string())
      .max(MAX_OWNS, `at most ${MAX_OWNS} globs; use ** or {a,b} to say more with fewer`)
      .transform((globs, ctx) => {
        const out: string[] = [];
        globs.forEach((g, i) => {
          try {
            const n = normaliseGlob(g, `owns[${i}]`);
            if (!out.includes(n)) out.push(n);
          } catch (err) {
            if (!isMeshError(err)) throw err;
            ctx.addIssue({ code: "custom", path: [i], message: err.message.replace(/^owns\[\d+\]: /, "") });
          }
        });
        return out;
      })
      .optional(),
    /** What a change outside `owns` does to a successful attempt: fail it (default) or report it. */
    ownsViolation: z.enum(["fail", "report"]).optional(),
    /** Shared resources this task holds while it runs (issue 15): name -> units, each at least 1. */
    uses: z
      .record(
        z.string().regex(NAME_RE, "resource names are 1-64 of A-Z a-z 0-9 _ -"),
        z.number().int("a use is a whole number of units").min(1, "a use is at least 1 unit").max(1_000_000),
      )
      .refine((u) => Object.keys(u).length <= 32, { message: "at most 32 resources" })
      .optional(),
    env: z
      .record(envName, noNul(32 * 1024))
      .default({})
      .superRefine((env, ctx) => {
        const names = Object.keys(env);
        if (names.length > MAX_ENV_VARS) {
          ctx.addIssue({ code: "custom", message: `at most ${MAX_ENV_VARS} variables` });
        }
        // The names no worker takes from a task; each worker's own allowlist is checked by policy.ts.
        for (const k of names) {
          const why = deniedEnvReason(k);
          if (why) ctx.addIssue({ code: "custom", path: [k], message: `"${k}" is refused: ${why}` });
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
    if (t.needs && t.needs.length > 0 && !t.plan) {
      ctx.addIssue({
        code: "custom",
        path: ["needs"],
        message:
          "only a task of a plan has needs: write the tasks in a plan document and use `mesh plan submit`",
      });
    }
    if (t.plan && t.needs?.includes(t.id ?? "")) {
      ctx.addIssue({ code: "custom", path: ["needs"], message: "a task cannot need itself" });
    }
    refineRepo(t.repo, t.ref, ctx);
    if (t.push && t.repo && MESH_REPO_RE.test(t.repo)) {
      ctx.addIssue({
        code: "custom",
        path: ["push"],
        message:
          "a repo shipped through the mesh has no origin to push to: drop push; `mesh fetch <id>` brings the result home",
      });
    }
    const bytes = Buffer.byteLength(JSON.stringify(t));
    if (bytes > MAX_SPEC_BYTES) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: `the task is ${Math.ceil(bytes / 1024)} KiB as JSON, over the limit of ${MAX_SPEC_BYTES / 1024} KiB; put long context in a file in the repo`,
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
  } else if (issue.code === "invalid_key") {
    // zod reports a bad record key as "Invalid key in record"; say what is wrong with the name.
    const inner = issue.issues[0]?.message;
    msg = `the name "${String(issue.path.at(-1))}" is not allowed${inner ? `: ${inner}` : ""}`;
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
 * "at line L, column C" of a 0-based offset. An error found at the very end of the text (an
 * unclosed bracket, a missing quote) is reported on the last line that has text, not on the
 * empty line after the final newline.
 */
export function describePosition(text: string, offset: number): string {
  const at = Math.max(0, Math.min(offset, text.length));
  if (at >= text.trimEnd().length) {
    const lines = text.trimEnd().split("\n");
    return `at the end of the input (line ${Math.max(1, lines.length)})`;
  }
  const before = text.slice(0, at);
  const line = before.split("\n").length;
  const col = at - (before.lastIndexOf("\n") + 1) + 1;
  return `at line ${line}, column ${col}`;
}

/**
 * Parse a spec document (YAML or JSON; JSON is YAML). Accepts one task, a list of tasks, or
 * `{ tasks: [...] }`. Returns raw objects; validate with `validateTaskBatch`.
 */
export function parseTaskDocument(text: string, source = "input"): unknown[] {
  // prettyErrors off: the message is the problem alone; the position is added once, below.
  const docs = yaml().parseAllDocuments(text, { prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  for (const doc of list) {
    const e = doc.errors[0];
    if (e) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `${source}: not valid YAML/JSON ${describePosition(text, e.pos[0])}: ${e.message.split("\n")[0]}`,
        { field: source, cause: e },
      );
    }
    let value: unknown;
    try {
      // An alias to nothing, or more aliases than yaml's limit (an "alias bomb"), throws here.
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `${source}: not valid YAML/JSON: ${(err instanceof Error ? err.message : String(err)).split("\n")[0]}`,
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

/**
 * Checks a spec as stored in a record (validated once at submit, its timeout already in ms)
 * against today's rules: a record written to the bus directly, or by another version, may hold
 * one that would crash or misuse a runner (a string `command`, a null `env`). Throws
 * INVALID_ARGUMENT naming the field.
 */
export function checkStoredSpec(spec: TaskSpec): void {
  const { timeout, ...rest } = spec as Partial<TaskSpec> & Record<string, unknown>;
  validateTaskSpec(rest);
  // Submit fills these in; a stored spec without them was not written by a submit.
  for (const k of ["id", "pool", "labels", "maxAttempts", "runner", "agent", "env"] as const) {
    if (rest[k] === undefined) throw new MeshError("INVALID_ARGUMENT", `${k}: is required`, { field: k });
  }
  if (timeout !== undefined && !(Number.isSafeInteger(timeout) && timeout > 0 && timeout <= MAX_TIMER_MS)) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `timeout: ${JSON.stringify(timeout)} is not a duration in ms up to ${MAX_TIMER_MS}`,
      {
        field: "timeout",
      },
    );
  }
}
