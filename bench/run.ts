/**
 * `npm run bench [-- <scenario...>] [--count N] [--rounds R] [--warmup W] [--kills K] [--lease-ms L]
 * [--size-mb M] [--seconds S] [--daemons D] [--base <ref>] [--records N] [--flags "<node flags>"]
 * [--light-only] [--light-count N] [--light-rate R] [--workers N] [--tasks N]`: runs benchmark scenarios, prints a table and writes
 * bench/results/<scenario>-<time>.json. Numbers are measured, never asserted. A scenario that
 * cannot run here (e.g. `transfer` without network namespaces) says why and writes nothing.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chunksScenario } from "./chunks.js";
import { claimsScenario } from "./claims.js";
import { failoverScenario } from "./failover.js";
import { footprintScenario } from "./footprint.js";
import { recordsScenario } from "./records.js";
import { plansScenario } from "./plans.js";
import { presenceScenario } from "./presence.js";
import { shimScenario } from "./shim.js";
import { table } from "./stats.js";
import { transferScenario } from "./transfer.js";

const args = process.argv.slice(2);
const VALUE_FLAGS = [
  "--count",
  "--rounds",
  "--warmup",
  "--kills",
  "--lease-ms",
  "--size-mb",
  "--seconds",
  "--daemons",
  "--base",
  "--records",
  "--flags",
  "--light-count",
  "--light-rate",
  "--workers",
  "--tasks",
];
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`${name}: "${args[i + 1] ?? ""}" is not a whole number\n`);
    process.exit(2);
  }
  return v;
};
const count = flag("--count", 2000);
const rounds = Math.max(1, flag("--rounds", 3));
const warmup = flag("--warmup", 6000);
const kills = Math.max(1, flag("--kills", 10));
const leaseMs = Math.max(1000, flag("--lease-ms", 4000));
const sizeMb = Math.max(1, flag("--size-mb", 50));
const seconds = Math.max(1, flag("--seconds", 30));
const daemons = Math.max(1, flag("--daemons", 3));
const records = Math.max(1000, flag("--records", 100_000));
// claims: only its latency rows (idle pickup, light load), to repeat them quickly.
const lightOnly = args.includes("--light-only");
const lightCount = Math.max(1, flag("--light-count", 200));
const lightRate = Math.max(1, flag("--light-rate", 5));
const workers = Math.max(1, flag("--workers", 200));
const planTasks = Math.max(10, flag("--tasks", 5000));
const baseAt = args.indexOf("--base");
const base = baseAt >= 0 ? args[baseAt + 1] : undefined;
if (baseAt >= 0 && (!base || base.startsWith("--"))) {
  process.stderr.write("--base: give a commit or branch to compare against, e.g. --base main\n");
  process.exit(2);
}
const flagsAt = args.indexOf("--flags");
const tryFlags = flagsAt >= 0 ? (args[flagsAt + 1] ?? "").split(/\s+/).filter(Boolean) : undefined;
if (tryFlags && (tryFlags.length === 0 || !tryFlags.every((f) => f.startsWith("--")))) {
  process.stderr.write(
    '--flags: give node flags to try, quoted, e.g. --flags "--max-semi-space-size=1 --no-expose-wasm"\n',
  );
  process.exit(2);
}
const roundsGiven = args.includes("--rounds");
const wanted = args.filter((a, i) => !a.startsWith("--") && !VALUE_FLAGS.includes(args[i - 1] ?? ""));
const scenarios =
  wanted.length > 0 ? wanted : ["claims", "shim", "failover", "footprint", "records", "presence", "plans"];
const resultsDir = fileURLToPath(new URL("../../bench/results/", import.meta.url));

for (const name of scenarios) {
  let result: { rows?: object[] } & Record<string, unknown>;
  if (name === "claims")
    result = await claimsScenario({
      count,
      rounds,
      warmup,
      light: { count: lightCount, ratePerSec: lightRate, warmup: 20 },
      lightOnly,
    });
  else if (name === "shim") result = await shimScenario({ runs: Math.min(count, 20) });
  else if (name === "failover") result = await failoverScenario({ kills, leaseMs });
  else if (name === "transfer")
    result = await transferScenario({ sizeMb, rounds: roundsGiven ? rounds : 20, syncRounds: 3 });
  else if (name === "footprint")
    result = await footprintScenario({
      daemons,
      seconds,
      ...(base ? { base } : {}),
      ...(tryFlags ? { tryFlags } : {}),
    });
  else if (name === "presence")
    result = await presenceScenario({ workers, seconds: args.includes("--seconds") ? seconds : 20 });
  else if (name === "plans") result = await plansScenario({ tasks: planTasks });
  else if (name === "chunks") result = await chunksScenario({ rounds: Math.max(3, rounds) });
  else if (name === "records") result = await recordsScenario({ records, reps: roundsGiven ? rounds : 3 });
  else {
    process.stderr.write(
      `unknown scenario "${name}"; known: claims, shim, failover, transfer, chunks, footprint, records, presence, plans\n`,
    );
    process.exit(2);
  }
  if (typeof result.skipped === "string") {
    process.stderr.write(`${name}: skipped: ${result.skipped}\n`);
    continue;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  await mkdir(resultsDir, { recursive: true });
  const file = `${resultsDir}${name}-${stamp}.json`;
  await writeFile(file, `${JSON.stringify({ ...result, at: new Date().toISOString() }, null, 2)}\n`);
  process.stdout.write(
    `\n${name}\n${table(((result.rows ?? []) as Array<Record<string, unknown>>).map(flatRow))}\n`,
  );
  const { rows: _rows, ...rest } = result;
  process.stdout.write(`${JSON.stringify(rest, null, 2)}\nwritten to ${file}\n`);
}

/** Nested numbers (e.g. cpuMsPerTask) become columns of their own in the printed table. */
function flatRow(r: Record<string, unknown>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(r)) {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) out[`${k}.${k2}`] = v2 as number;
    } else out[k] = Array.isArray(v) ? v.join(",") : (v as string | number);
  }
  return out;
}
