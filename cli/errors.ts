/**
 * Exit codes and the one-line error every failure becomes. Codes map from the MeshError code
 * the daemon puts in trailing metadata (`mesh-error-code`), never from message text.
 */
import { type ServiceError, status } from "@grpc/grpc-js";

export const EXIT = {
  OK: 0,
  /** A task the command waited on ended failed, dead or cancelled. */
  TASK_FAILED: 1,
  /** Bad flags or arguments, or an invalid task spec (nothing was submitted). */
  USAGE: 2,
  /** The daemon could not be reached, refused the credentials, or could not reach NATS. */
  UNREACHABLE: 3,
  NOT_FOUND: 4,
  OTHER: 5,
  /** A task waited on stayed unschedulable (no live worker serves it) for --unschedulable-timeout. */
  UNSCHEDULABLE: 6,
  /** Ctrl-C (128 + SIGINT). */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  a task that was waited on (submit --wait/--follow, watch <id>) failed, died or was cancelled
  2  usage error, invalid task spec, or a different spec under an id already submitted (nothing was submitted)
  3  daemon unreachable (no socket, TLS or token refused, no answer in time) or the daemon cannot reach NATS
  4  not found (no task with that id)
  5  any other error (e.g. cancelling a task that already finished, --wait-timeout reached)
  6  a task that was waited on could not run: no live worker served it for --unschedulable-timeout (it stays queued)
  130  interrupted (Ctrl-C) while waiting; the tasks keep running`;

export class CliError extends Error {
  override name = "CliError";
  readonly field?: string;
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** Stable code for --json errors (the daemon's MeshError code when it sent one). */
    readonly code: string,
    opts: { cause?: unknown; field?: string } = {},
  ) {
    super(message, { cause: opts.cause });
    if (opts.field !== undefined) this.field = opts.field;
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && "metadata" in err;
}

const EXIT_OF_MESH_CODE: Record<string, ExitCode> = {
  INVALID_ARGUMENT: EXIT.USAGE,
  // A different spec under an id already submitted: the input is wrong, and nothing was submitted.
  ALREADY_EXISTS: EXIT.USAGE,
  NOT_FOUND: EXIT.NOT_FOUND,
  UNAVAILABLE: EXIT.UNREACHABLE,
};

/** Turns a gRPC failure into a CliError; `target` names the daemon address for transport errors. */
export function fromServiceError(err: ServiceError, target: string): CliError {
  const meshCode = err.metadata?.get("mesh-error-code")[0];
  const field = err.metadata?.get("mesh-error-field")[0];
  const details = err.details || err.message;
  if (typeof meshCode === "string") {
    // The daemon's messages already name the problem and the fix.
    return new CliError(EXIT_OF_MESH_CODE[meshCode] ?? EXIT.OTHER, details, meshCode, {
      cause: err,
      ...(typeof field === "string" ? { field } : {}),
    });
  }
  switch (err.code) {
    case status.UNAVAILABLE:
      return new CliError(
        EXIT.UNREACHABLE,
        `cannot reach meshd at ${target}: ${details}; start it (\`mesh up\`, or \`meshd --nats <url>\`) or point --daemon / MESH_DAEMON at a running one`,
        "UNAVAILABLE",
        { cause: err },
      );
    case status.UNAUTHENTICATED:
      return new CliError(
        EXIT.UNREACHABLE,
        `meshd at ${target} refused the call: ${details}`,
        "UNAUTHENTICATED",
        {
          cause: err,
        },
      );
    case status.DEADLINE_EXCEEDED:
      return new CliError(
        EXIT.UNREACHABLE,
        `meshd at ${target} did not answer in time (${details}); it may be overloaded: check its log, or raise --timeout`,
        "TIMEOUT",
        { cause: err },
      );
    case status.INVALID_ARGUMENT:
      return new CliError(EXIT.USAGE, details, "INVALID_ARGUMENT", { cause: err });
    case status.NOT_FOUND:
      return new CliError(EXIT.NOT_FOUND, details, "NOT_FOUND", { cause: err });
    case status.UNIMPLEMENTED:
      return new CliError(
        EXIT.OTHER,
        `meshd at ${target} does not support this call (${details}); upgrade the daemon to match this mesh CLI`,
        "UNIMPLEMENTED",
        { cause: err },
      );
    default:
      return new CliError(EXIT.OTHER, `meshd at ${target}: ${details}`, status[err.code] ?? "UNKNOWN", {
        cause: err,
      });
  }
}
