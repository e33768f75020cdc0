/**
 * JSON Schemas for editors (task files, plan files, meshd's config), generated from the zod schemas the
 * daemon validates with, so they cannot drift: `npm run schema` writes schema/*.json and
 * test/cli-habits.test.ts fails when the committed files are not current. Durations and sizes
 * are accepted as numbers or text (e.g. "30s", "8MiB"): the schema says string for the text.
 */
import { z } from "zod";
import { daemonOptionsSchema, taskSpecSchema } from "../daemon/index.js";

function fromZod(schema: z.ZodType): Record<string, unknown> {
  // Input side: what a person writes (before defaults and transforms).
  const s = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}

/** The task file: one task, a list of tasks, or {tasks: [...]} (as `mesh submit` reads it). */
function taskFileSchema(): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "agent-mesh task file (mesh submit)",
    $defs: { task: fromZod(taskSpecSchema) },
    anyOf: [
      { $ref: "#/$defs/task" },
      { type: "array", items: { $ref: "#/$defs/task" }, minItems: 1 },
      {
        type: "object",
        properties: { tasks: { type: "array", items: { $ref: "#/$defs/task" }, minItems: 1 } },
        required: ["tasks"],
        additionalProperties: false,
      },
    ],
  };
}

/**
 * The plan file (`mesh plan submit`): plan, title, defaults and tasks; each task is a task spec
 * whose `id` is its name in the plan, with `needs` (names of the plan's tasks) and
 * `dependencyFailure`; `plan`, `parent` and `depth` are the mesh's to set.
 */
function planFileSchema(): Record<string, unknown> {
  const task = fromZod(taskSpecSchema) as { properties?: Record<string, unknown>; required?: string[] };
  const props = { ...(task.properties ?? {}) };
  for (const k of ["plan", "parent", "depth"]) delete props[k];
  props.needs = {
    type: "array",
    items: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$" },
    description: "names (ids) of tasks of this plan that must succeed first",
  };
  const planTask = { ...task, properties: props, required: ["id", ...(task.required ?? [])] };
  const defaults = { ...task, properties: { ...props }, required: [] as string[] };
  for (const k of ["id", "needs", "owns"]) delete (defaults.properties as Record<string, unknown>)[k];
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "agent-mesh plan file (mesh plan submit)",
    type: "object",
    properties: {
      plan: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$" },
      title: { type: "string", minLength: 1, maxLength: 200 },
      defaults,
      tasks: { type: "array", items: planTask, minItems: 1 },
    },
    required: ["tasks"],
    additionalProperties: false,
  };
}

function daemonConfigSchema(): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "agent-mesh daemon config (meshd --config, mesh up --config)",
    ...fromZod(daemonOptionsSchema),
  };
}

/** File name under schema/ to its text. */
export function jsonSchemaFiles(): Record<string, string> {
  return {
    "task-file.json": `${JSON.stringify(taskFileSchema(), null, 2)}\n`,
    "plan-file.json": `${JSON.stringify(planFileSchema(), null, 2)}\n`,
    "meshd-config.json": `${JSON.stringify(daemonConfigSchema(), null, 2)}\n`,
  };
}
