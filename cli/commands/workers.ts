/** `mesh workers`: every live worker in the mesh. */
import { Command } from "commander";
import type { Ctx } from "../context.js";
import { ago, dash, labelsText, table } from "../format.js";
import { workerJson } from "../json.js";
import { run } from "../run.js";

async function workers(ctx: Ctx): Promise<void> {
  const list = (await ctx.client().listWorkers()).workers.map(workerJson);
  if (ctx.json) return ctx.printJson({ workers: list });
  if (list.length === 0) {
    ctx.note(
      "no workers: start a daemon (`mesh up`, or `meshd --nats <url>`) on a machine that should run tasks",
    );
    return;
  }
  ctx.print(
    table(
      ["WORKER", "HOST", "POOLS", "LABELS", "SLOTS", "RUNNING", "LAST SEEN"],
      list.map((w) => [
        w.draining ? `${w.workerId} (draining)` : w.workerId,
        w.host,
        w.pools.join(","),
        labelsText(w.labels),
        `${w.slotsTotal - w.slotsFree}/${w.slotsTotal}`,
        dash(w.running.join(",")),
        ago(w.lastSeen),
      ]),
      ctx.style,
    ),
  );
  // A task for a runner nobody offers waits: say why each worker does not offer one.
  const missing = list.flatMap((w) => w.unavailableRunners.map((u) => ({ w, u })));
  if (missing.length > 0) {
    ctx.print("");
    for (const { w, u } of missing) ctx.print(`${w.workerId} does not offer ${u.runner}: ${u.reason}`);
  }
}

export function workersCommand(): Command {
  return new Command("workers")
    .description("list the live workers of the whole mesh (SLOTS = busy/total)")
    .addHelpText(
      "after",
      `
--json output:
  {"workers":[{"workerId","name","host","pools","labels","runners","slotsTotal","slotsFree",
               "running","version","startedAt","lastSeen","draining","httpUrl",
               "unavailableRunners":[{"runner","reason"}]}]}
  unavailableRunners: the runners a worker does not offer, each with why and the fix`,
    )
    .action(run<[]>((ctx) => workers(ctx)));
}
