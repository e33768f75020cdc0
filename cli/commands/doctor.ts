/** `mesh doctor [--json]`: is this machine ready for the mesh? Each check with its fix. */
import { Command, Option } from "commander";
import { localNkeyFor } from "../../daemon/lite.js";
import type { Ctx } from "../context.js";
import { type CheckResult, realDoctorEnv, runDoctor } from "../doctor.js";
import { CliError, EXIT } from "../errors.js";
import { paint, table } from "../format.js";
import { run } from "../run.js";

interface Opts {
  nats: string;
  natsCreds?: string;
}

const MARK = { ok: "ok", warn: "warn", fail: "FAIL" } as const;
const COLOR = { ok: "green", warn: "yellow", fail: "red" } as const;

async function doctor(ctx: Ctx, o: Opts): Promise<void> {
  const nkeyFile = o.natsCreds ? undefined : localNkeyFor(o.nats);
  const checks: CheckResult[] = await runDoctor(realDoctorEnv(), {
    url: o.nats,
    ...(o.natsCreds ? { credsFile: o.natsCreds } : {}),
    ...(nkeyFile ? { nkeyFile } : {}),
  });
  const failed = checks.filter((c) => c.required && c.status === "fail");
  if (ctx.json) {
    ctx.printJson({ ok: failed.length === 0, checks });
  } else {
    ctx.print(
      table(
        ["CHECK", "STATUS", "DETAIL"],
        checks.map((c) => [c.name, paint(ctx.style, COLOR[c.status], MARK[c.status]), c.detail]),
        ctx.style,
      ),
    );
    const fixes = checks.filter((c) => c.fix);
    if (fixes.length > 0) ctx.print("");
    for (const c of fixes) ctx.print(`fix ${c.name}: ${c.fix}`);
  }
  if (failed.length > 0) {
    const first = failed[0] as CheckResult;
    throw new CliError(
      EXIT.OTHER,
      `${failed.length} required check(s) failed (${failed.map((c) => c.name).join(", ")}); first fix: ${first.fix}`,
      "DOCTOR_FAILED",
    );
  }
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .description(
      "check this machine for the mesh: NATS and JetStream, git, Claude Code, credentials, setpriv; each with its fix",
    )
    .addOption(
      new Option("--nats <url>", "the NATS to check").env("MESH_NATS_URL").default("nats://127.0.0.1:4222"),
    )
    .addOption(
      new Option(
        "--nats-creds <file>",
        "a NATS .creds file to connect with (default on loopback: the nkey of a local `mesh up`)",
      ).env("NATS_CREDS"),
    )
    .addHelpText(
      "after",
      `
Exit 0 when every required check (nats, jetstream, git) passes, 5 otherwise; warnings
(claude, credentials, setpriv, nats-server) never fail it. Credentials are said to be present,
never shown.
--json output: {"ok","checks":[{"name","status":"ok|warn|fail","required","detail","fix"}]}`,
    )
    .action(run<[Opts]>((ctx, opts) => doctor(ctx, opts)));
}
