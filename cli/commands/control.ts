/** `mesh cancel <id>` and `mesh retry <id>`. */
import { Command } from "commander";
import type { Ctx } from "../context.js";
import { paintState } from "../format.js";
import { taskJson } from "../json.js";
import { run } from "../run.js";

async function cancel(ctx: Ctx, id: string): Promise<void> {
  const { task } = await ctx.client().cancelTask(id);
  if (!task) throw new Error(`the daemon answered CancelTask(${id}) without a task`);
  const t = taskJson(task);
  if (ctx.json) return ctx.printJson({ task: t });
  if (t.state === "cancelled") ctx.print(`${t.id} ${paintState(ctx.style, "cancelled")}`);
  else
    ctx.print(
      `${t.id}: cancel requested; it is ${paintState(ctx.style, t.state)} and stops shortly (\`mesh watch ${t.id}\`)`,
    );
}

async function retry(ctx: Ctx, id: string): Promise<void> {
  const { task } = await ctx.client().retryTask(id);
  if (!task) throw new Error(`the daemon answered RetryTask(${id}) without a task`);
  const t = taskJson(task);
  if (ctx.json) return ctx.printJson({ task: t });
  ctx.print(
    `${t.id} ${paintState(ctx.style, t.state)} again; it runs as a new attempt (\`mesh watch ${t.id}\`)`,
  );
}

export function cancelCommand(): Command {
  return new Command("cancel")
    .description("cancel a task: a queued task ends at once, a running one is stopped by its worker")
    .argument("<id>", "task id")
    .addHelpText(
      "after",
      `\n--json output:\n  {"task":TASK} (see \`mesh tasks --help\`); exit 5 when the task already finished`,
    )
    .action(run<[string]>((ctx, id) => cancel(ctx, id)));
}

export function retryCommand(): Command {
  return new Command("retry")
    .description("run a failed or dead task again as a new attempt")
    .argument("<id>", "task id")
    .addHelpText(
      "after",
      `\n--json output:\n  {"task":TASK} (see \`mesh tasks --help\`); exit 5 when the task is not failed or dead`,
    )
    .action(run<[string]>((ctx, id) => retry(ctx, id)));
}
