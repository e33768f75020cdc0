#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * mesh: the agent-mesh CLI. A thin gRPC client of the local meshd, which answers for the
 * whole mesh. Every failure ends as one line on stderr and a documented exit code.
 */
import { Command, CommanderError, Option } from "commander";
import { isMeshError, VERSION } from "../daemon/lite.js";
import { completionCommand } from "./commands/completion.js";
import { cancelCommand, retryCommand } from "./commands/control.js";
import { doctorCommand } from "./commands/doctor.js";
import { diffCommand, fetchCommand } from "./commands/fetch.js";
import { hubCommand, inviteCommand, joinCommand } from "./commands/hub.js";
import { logsCommand } from "./commands/logs.js";
import { runCommand } from "./commands/run-prompt.js";
import { planCommand } from "./commands/plan.js";
import { submitCommand } from "./commands/submit.js";
import { taskCommand, tasksCommand } from "./commands/tasks.js";
import { tmuxSessionCommand } from "./commands/tmux.js";
import { topCommand } from "./commands/top.js";
import { watchCommand } from "./commands/watch.js";
import { quotaCommand } from "./commands/quota.js";
import { workersCommand } from "./commands/workers.js";
import { CliError, EXIT, EXIT_CODES_HELP } from "./errors.js";
import { defaultSocketPath } from "./target.js";
import { upCommand } from "./up.js";

// grpc-js passes the host as the TLS server name; for `--daemon 10.0.0.5:7443` Node then prints
// DEP0123 on every connection, breaking "errors are one line". The certificate is still
// checked against the IP address, so this warning carries nothing for a CLI user.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
  const opt = rest[0];
  const code = typeof opt === "object" && opt !== null ? (opt as { code?: unknown }).code : rest[1];
  if (code === "DEP0123") return;
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

// A reader that stops early (`mesh logs x | head -3`) closes the pipe: stop quietly with exit 0,
// as Unix tools do, instead of an unhandled EPIPE and a stack trace on stderr.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(EXIT.OK);
  throw err;
});

/** Which (sub)command's parse failed last: its --help is the one to point at. */
let failedIn = "";

/** "plan status " for `mesh plan status`: the words between `mesh` and `--help`. */
function commandPath(c: Command): string {
  let path = "";
  for (let at: Command | null = c; at?.parent; at = at.parent) path = `${at.name()} ${path}`;
  return path;
}

function buildProgram(json: boolean): Command {
  const program = new Command("mesh")
    .description(
      "agent-mesh: submit, discover, watch and cancel Claude Code work on every machine of the mesh",
    )
    .version(VERSION)
    .option("--json", "machine-readable output with stable field names (see each command's --help)")
    .addOption(
      new Option("--daemon <socket|host:port>", `meshd to talk to (default ${defaultSocketPath()})`).env(
        "MESH_DAEMON",
      ),
    )
    .addOption(
      new Option("--tls-ca <file>", "CA bundle to verify a TCP daemon's certificate").env("MESH_TLS_CA"),
    )
    .addOption(
      new Option("--tls-cert <file>", "client certificate for a daemon that requires one").env(
        "MESH_TLS_CERT",
      ),
    )
    .addOption(new Option("--tls-key <file>", "key of --tls-cert").env("MESH_TLS_KEY"))
    .addOption(
      new Option(
        "--token-file <file>",
        "read the bearer token for a TCP daemon from a file (or env MESH_TOKEN)",
      ),
    )
    .option("--timeout <duration>", "deadline of each request to the daemon", "30s")
    .option("--no-color", "no colour (also: NO_COLOR=1; colour is only used on a terminal)")
    .option("--debug", "print stack traces with errors")
    .addHelpText(
      "after",
      `
Environment:
  MESH_DAEMON     same as --daemon          MESH_STATE_DIR  state dir of the default socket (~/.agent-mesh)
  MESH_TOKEN      bearer token (or --token-file)  MESH_TLS_CA / MESH_TLS_CERT / MESH_TLS_KEY  TLS files
  NO_COLOR        disable colour

${EXIT_CODES_HELP}

Errors are one line on stderr (with --json: {"error":{"code","message","field","exitCode"}}).
JSON field names are listed in each command's --help and in cli/README-fields.md.`,
    );
  for (const cmd of [
    submitCommand(),
    runCommand(),
    workersCommand(),
    quotaCommand(),
    tasksCommand(),
    taskCommand(),
    watchCommand(),
    logsCommand(),
    topCommand(),
    tmuxSessionCommand(),
    cancelCommand(),
    fetchCommand(),
    diffCommand(),
    retryCommand(),
    planCommand(),
    upCommand(),
    hubCommand(),
    inviteCommand(),
    joinCommand(),
    doctorCommand(),
    completionCommand(),
  ]) {
    program.addCommand(cmd);
  }
  // Usage errors become exit 2 (commander would exit 1, which means "a task failed" here). Under
  // --json commander prints nothing: main() reports its error as the documented JSON object.
  const configure = (c: Command) => {
    c.exitOverride();
    c.configureOutput({
      outputError: (str, write) => {
        failedIn = commandPath(c);
        if (!json) write(`${str.trimEnd()} (see mesh ${failedIn}--help)\n`);
      },
      ...(json ? { writeErr: () => {} } : {}),
    });
    c.showSuggestionAfterError(true);
    for (const sub of c.commands) configure(sub);
  };
  configure(program);
  return program;
}

function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (isMeshError(err)) {
    const exit =
      err.code === "INVALID_ARGUMENT" ? EXIT.USAGE : err.code === "NOT_FOUND" ? EXIT.NOT_FOUND : EXIT.OTHER;
    return new CliError(exit, err.message, err.code, {
      cause: err,
      ...(err.field ? { field: err.field } : {}),
    });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new CliError(
    EXIT.OTHER,
    `unexpected error: ${msg} (run with --debug for the stack trace)`,
    "INTERNAL",
    {
      cause: err,
    },
  );
}

/** The arguments before a `--` (after it everything is an operand). */
function flagArgs(argv: string[]): string[] {
  const end = argv.indexOf("--");
  return end === -1 ? argv : argv.slice(0, end);
}

/**
 * Whether --json was given, before or after the command (but not after a `--`). `--json=<v>` asks
 * for JSON too: its usage error (the flag takes no value) is reported as the JSON object.
 */
function jsonRequested(argv: string[]): boolean {
  return flagArgs(argv).some((a) => a === "--json" || a.startsWith("--json="));
}

/** `--json` is a switch: `--json=true` (or any value) is a usage error that says so. */
function refuseJsonValue(argv: string[]): void {
  if (flagArgs(argv).some((a) => a.startsWith("--json="))) {
    throw new CliError(
      EXIT.USAGE,
      "--json takes no value; write --json alone (see `mesh --help`)",
      "INVALID_ARGUMENT",
      {
        field: "--json",
      },
    );
  }
}

/** A commander parse failure (unknown command or option, missing or invalid argument) as a usage error. */
function usageError(err: CommanderError): CliError {
  const text = err.message.replace(/^error:\s*/, "").trim();
  const message =
    err.code === "commander.help"
      ? "no command to run; `mesh --help` lists the commands"
      : `${text.replace(/\.$/, "")} (see \`mesh ${failedIn}--help\`)`;
  return new CliError(EXIT.USAGE, message, "INVALID_ARGUMENT", { cause: err });
}

function report(err: unknown, argv: string[]): number {
  const e = toCliError(err);
  if (jsonRequested(argv)) {
    const error = { code: e.code, message: e.message, field: e.field ?? null, exitCode: e.exitCode };
    process.stderr.write(`${JSON.stringify({ error })}\n`);
  } else {
    process.stderr.write(`error: ${e.message}\n`);
  }
  if (argv.includes("--debug")) {
    let cause: unknown = err instanceof CliError && err.cause !== undefined ? err.cause : err;
    while (cause) {
      process.stderr.write(`${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}\n`);
      cause = cause instanceof Error ? cause.cause : undefined;
      if (cause) process.stderr.write("caused by: ");
    }
  }
  return e.exitCode;
}

/**
 * Secrets are never taken from the command line (every local user sees it in `ps`): a `--token`
 * is refused before anything runs, without repeating its value.
 */
function refuseArgvSecrets(argv: string[]): void {
  const end = argv.indexOf("--");
  for (const a of end < 0 ? argv : argv.slice(0, end)) {
    if (a === "--token" || a.startsWith("--token=")) {
      throw new CliError(
        EXIT.USAGE,
        "--token is not accepted: a secret on the command line is visible to every user of this machine; put the token in a file (--token-file <file>, mode 0600) or in MESH_TOKEN",
        "INVALID_ARGUMENT",
        { field: "--token" },
      );
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const json = jsonRequested(argv);
  const program = buildProgram(json);
  try {
    refuseArgvSecrets(argv);
    refuseJsonValue(argv);
    await program.parseAsync(argv, { from: "user" });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and --version exit 0; without --json commander already printed its one-line error
      if (err.exitCode === 0) return EXIT.OK;
      return json ? report(usageError(err), argv) : EXIT.USAGE;
    }
    return report(err, argv);
  }
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    // Let stdout drain (a piped `--json` consumer must get everything) and open handles close.
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = report(err, argv);
  },
);
