/**
 * Errors with stable codes. Edges (gRPC status, CLI exit codes) map on `code`, never on text.
 */
export type MeshErrorCode =
  | "INVALID_ARGUMENT" // bad input: a spec, a flag, a config field
  | "NOT_FOUND" // no such task / worker
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION" // e.g. illegal state transition
  | "CONFLICT" // a compare-and-set lost against a concurrent writer
  | "FENCED" // this worker no longer owns the task it is running
  | "UNAVAILABLE" // NATS (or the daemon) cannot be reached
  | "TIMEOUT"
  | "CANCELLED"
  | "MISSING_DEPENDENCY" // e.g. no nats-server binary
  | "DATA_LOSS" // a stored record or message that cannot be read (garbage, wrong shape, newer version)
  | "RESOURCE_EXHAUSTED" // a limit was reached: a submit too large or too slow to parse, a full bucket
  | "INTERNAL";

export class MeshError extends Error {
  override name = "MeshError";
  readonly code: MeshErrorCode;
  /** Optional field path the error is about (e.g. `tasks[2].timeout`). */
  readonly field?: string;

  constructor(code: MeshErrorCode, message: string, opts: { cause?: unknown; field?: string } = {}) {
    super(message, { cause: opts.cause });
    this.code = code;
    if (opts.field !== undefined) this.field = opts.field;
  }
}

export function isMeshError(err: unknown, code?: MeshErrorCode): err is MeshError {
  return err instanceof MeshError && (code === undefined || err.code === code);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
