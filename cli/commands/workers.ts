/** `mesh workers`: every live worker in the mesh. */
import { Command } from "commander";
import type { Ctx } from "../context.js";
import { ago, dash, labelsText, table } from "../format.js";
import { type WorkerJson, workerJson } from "../json.js";
import { run } from "../run.js";

/** Where its HTTP side is reached: the advertised addresses, or "loopback only". */
function httpText(w: WorkerJson): string {
  const hosts = w.httpUrls.map((u) => u.replace(/^[a-z]+:\/\//, ""));
  if (hosts.length === 0) return "-";
  return w.reach === "loopback" ? `${hosts.join(",")} (loopback only)` : hosts.join(",");
}

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
      ["WORKER", "HOST", "POOLS", "LABELS", "SLOTS", "RUNNING", "LAST SEEN", "HTTP"],
      list.map((w) => [
        w.draining ? `${w.workerId} (draining)` : w.workerId,
        w.host,
        w.pools.join(","),
        labelsText(w.labels),
        `${w.slotsTotal - w.slotsFree}/${w.slotsTotal}`,
        dash(w.running.join(",")),
        ago(w.lastSeen),
        httpText(w),
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
               "running","version","startedAt","lastSeen","draining","httpUrl","httpUrls","reach",
               "unavailableRunners":[{"runner","reason"}]}]}
  unavailableRunners: the runners a worker does not offer, each with why and the fix
  httpUrls: every URL its HTTP side is advertised at; reach: "loopback" (only that machine
            reaches it: bound to 127.0.0.1, the default), "network", or null (no HTTP side)`,
    )
    .action(run<[]>((ctx) => workers(ctx)));
}
