/**
 * `mesh run "<prompt>"`: one task from flags, no file. The task is built as a document and goes
 * through submit's own path (the same validation, repo shipping, waiting and exit codes).
 */
import { Command, Option } from "commander";
import type { Ctx } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { run } from "../run.js";
import { addWaitOptions, type SubmitOpts, submitDocument } from "./submit.js";

interface RunOpts extends Omit<SubmitOpts, "repo"> {
  repo?: string;
  id?: string;
  title?: string;
  runner?: string;
  pool?: string;
  label: string[];
  maxAttempts?: string;
  taskTimeout?: string;
  model?: string;
}

const collect = (v: string, acc: string[]) => [...acc, v];

/** The task document `mesh run` submits. Exported for its tests. */
export function runTask(prompt: string, o: RunOpts, command: string[]): Record<string, unknown> {
  const labels: Record<string, string> = {};
  for (const l of o.label) {
    const eq = l.indexOf("=");
    if (eq <= 0) {
      throw new CliError(
        EXIT.USAGE,
        `--label "${l}": write key=value (e.g. --label gpu=true)`,
        "INVALID_ARGUMENT",
        {
          field: "--label",
        },
      );
    }
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  let maxAttempts: number | undefined;
  if (o.maxAttempts !== undefined) {
    maxAttempts = Number(o.maxAttempts);
    if (!/^\d+$/.test(o.maxAttempts)) {
      throw new CliError(
        EXIT.USAGE,
        `--max-attempts "${o.maxAttempts}" is not a whole number`,
        "INVALID_ARGUMENT",
        {
          field: "--max-attempts",
        },
      );
    }
  }
  const runner = o.runner ?? (command.length > 0 ? "command" : undefined);
  return {
    prompt,
    ...(o.id ? { id: o.id } : {}),
    ...(o.title ? { title: o.title } : {}),
    ...(o.repo ? { repo: o.repo } : {}),
    ...(runner ? { runner } : {}),
    ...(command.length > 0 ? { command } : {}),
    ...(o.pool ? { pool: o.pool } : {}),
    ...(o.label.length > 0 ? { labels } : {}),
    ...(maxAttempts !== undefined ? { maxAttempts } : {}),
    ...(o.taskTimeout ? { timeout: o.taskTimeout } : {}),
    ...(o.model ? { agent: { model: o.model } } : {}),
  };
}

async function runPrompt(ctx: Ctx, prompt: string, command: string[], o: RunOpts): Promise<void> {
  const task = runTask(prompt, o, command);
  // --repo is the task's repository here; results of a local one are fetched back into it.
  const { repo: _repo, ...submitOpts } = o;
  await submitDocument(ctx, submitOpts, async () => ({ text: JSON.stringify(task), source: "mesh run" }));
}

export function runCommand(): Command {
  return addWaitOptions(
    new Command("run")
      .description("submit one task from a prompt, no file needed (the same checks and flags as submit)")
      .argument("<prompt>", "what the agent should do")
      .argument("[command...]", "with --runner command (implied): the argv to run, after --")
      .option(
        "--repo <repo>",
        "repository the task works on: . (this one, shipped through the mesh), a path or a URL",
      )
      .option("--id <id>", "task id (default: generated); submitting the same id again is idempotent")
      .option("--title <title>", "a short title")
      .addOption(
        new Option("--runner <runner>", "claude (default), command or noop").choices([
          "claude",
          "command",
          "noop",
        ]),
      )
      .option("--pool <pool>", "pool to run in (default: default)")
      .option("--label <key=value>", "a label a worker must have (repeatable)", collect, [])
      .option("--max-attempts <n>", "attempts before the task is dead (default 3)")
      .option(
        "--task-timeout <duration>",
        "timeout of each attempt (e.g. 30m); --timeout is the request deadline",
      )
      .option("--model <model>", "claude model for this task"),
  )
    .addHelpText(
      "after",
      `
Examples:
  mesh run "fix the failing test in src/util" --repo . --wait
  mesh run "say hi" --runner command --wait -- node -e "console.log('hi')"
--json output: as \`mesh submit --help\` says.`,
    )
    .action(
      run<[string, string[], RunOpts]>((ctx, prompt, command, opts) => runPrompt(ctx, prompt, command, opts)),
    );
}
