/** `mesh quota`: the mesh-wide caps, the slots in use and by whom, each account's state. */
import { Command } from "commander";
import type { QuotaEntry } from "../../proto/index.js";
import type { Ctx } from "../context.js";
import { dash, table } from "../format.js";
import { run } from "../run.js";

function entryJson(e: QuotaEntry) {
  return {
    kind: e.kind,
    name: e.name,
    capacity: e.capacity > 0 ? e.capacity : null,
    inUse: e.inUse,
    holders: e.holders.map((h) => ({
      taskId: h.taskId,
      attempt: h.attempt,
      workerId: h.workerId,
      host: h.host,
      units: h.units,
      since: h.since,
    })),
    ...(e.kind === "account"
      ? {
          startsPerMinute: e.startsPerMinute > 0 ? e.startsPerMinute : null,
          startedLastMinute: e.startedLastMinute,
          workers: e.workers,
          state: e.state || "ok",
          rejectedUntil: e.rejectedUntil || null,
        }
      : {}),
  };
}

async function quota(ctx: Ctx): Promise<void> {
  const entries = (await ctx.client().getQuota()).entries.map(entryJson);
  if (ctx.json) return ctx.printJson({ entries });
  if (entries.length === 0) {
    ctx.note(
      "no caps: declare them in meshd's config (quota.accounts.<name>.maxSessions, quota.pools.<name>.maxSessions, quota.resources.<name>.capacity)",
    );
    return;
  }
  ctx.print(
    table(
      ["KIND", "NAME", "IN USE", "STARTS/MIN", "STATE", "HELD BY"],
      entries.map((e) => [
        e.kind,
        e.name,
        `${e.inUse}/${e.capacity ?? "-"}`,
        "startsPerMinute" in e ? `${e.startedLastMinute}/${e.startsPerMinute ?? "-"}` : "-",
        "state" in e ? `${e.state}${e.rejectedUntil ? ` until ${e.rejectedUntil}` : ""}` : "-",
        dash(e.holders.map((h) => `${h.taskId}@${h.host}${h.units > 1 ? ` x${h.units}` : ""}`).join(", ")),
      ]),
      ctx.style,
    ),
  );
}

export function quotaCommand(): Command {
  return new Command("quota")
    .description("mesh-wide caps: slots in use and by which task on which host, account states")
    .addHelpText(
      "after",
      `
--json output:
  {"entries":[{"kind":"account"|"pool"|"resource","name","capacity" (null: no cap),"inUse",
               "holders":[{"taskId","attempt","workerId","host","units","since"}],
               accounts only: "startsPerMinute" (null: no cap),"startedLastMinute","workers",
               "state" ("ok" or the recorded rate-limit state),"rejectedUntil"}]}`,
    )
    .action(run<[]>((ctx) => quota(ctx)));
}
