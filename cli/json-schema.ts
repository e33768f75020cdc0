/**
 * JSON Schemas for editors (task files, meshd's config), generated from the zod schemas the
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
    "meshd-config.json": `${JSON.stringify(daemonConfigSchema(), null, 2)}\n`,
  };
}
