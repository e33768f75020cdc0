/**
 * MeshError codes -> gRPC status at the edge. The code also travels in trailing metadata
 * (`mesh-error-code`, `mesh-error-field`) so clients map on the code, never on text.
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { isMeshError, type MeshErrorCode } from "../../errors.js";

export const ERROR_CODE_KEY = "mesh-error-code";
export const ERROR_FIELD_KEY = "mesh-error-field";

const STATUS_OF: Record<MeshErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  CONFLICT: status.ABORTED,
  FENCED: status.ABORTED,
  UNAVAILABLE: status.UNAVAILABLE,
  TIMEOUT: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
  MISSING_DEPENDENCY: status.FAILED_PRECONDITION,
  DATA_LOSS: status.DATA_LOSS,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  INTERNAL: status.INTERNAL,
};

export function grpcStatusOf(code: MeshErrorCode): status {
  return STATUS_OF[code];
}

export function serviceError(
  code: status,
  details: string,
  meshCode?: MeshErrorCode,
  field?: string,
): ServiceError {
  const metadata = new Metadata();
  if (meshCode) metadata.set(ERROR_CODE_KEY, meshCode);
  if (field) metadata.set(ERROR_FIELD_KEY, field);
  return Object.assign(new Error(details), { code, details, metadata });
}

/** Any thrown value -> a ServiceError; `internal` is true when it was not a MeshError (a bug: log it). */
export function toServiceError(err: unknown): { error: ServiceError; internal: boolean } {
  if (isMeshError(err)) {
    return {
      error: serviceError(grpcStatusOf(err.code), err.message, err.code, err.field),
      internal: err.code === "INTERNAL",
    };
  }
  const msg = err instanceof Error ? err.message : String(err);
  return {
    error: serviceError(status.INTERNAL, `internal error in meshd: ${msg}; see the daemon's log`, "INTERNAL"),
    internal: true,
  };
}
