export { buildClaudeArgs, buildClaudeEnv, type SessionChoice } from "./claude-args.js";
export type { AgentEvent, AgentEventKind, ResultEvent, TokenCounts } from "./events.js";
export { StreamParser } from "./events.js";
export {
  PERMISSION_MODES,
  type PermissionMode,
  parseShimJob,
  type ShimJob,
  type ShimJobInput,
  shimJobSchema,
} from "./job.js";
export { epochMs, type LimitReport, type LimitSource, usageLimitText } from "./limits.js";
export { classifyEnd } from "./outcome.js";
export {
  CANCEL_LINE,
  parseShimLine,
  SHIM_EXIT,
  SHIM_PROTOCOL_VERSION,
  type ShimLine,
  type ShimOutcome,
  type ShimResult,
  type ShimStatus,
} from "./protocol.js";
export {
  CREDENTIAL_ENV,
  credentialValues,
  makeRedactor,
  REDACTED,
  type Redactor,
  SECRET_NAME_RE,
  secretEnvValues,
} from "./redact.js";
export {
  type AddTaskRequest,
  addTaskRequestSchema,
  firstIssue,
  type LeaseHolder,
  type LeaseRequest,
  leaseRequestSchema,
  MAX_PORT_LINE,
  type PortRequest,
  type PortResponse,
  portRequestSchema,
  portResponseSchema,
  TASK_PORT_ENV,
  TASK_PORT_PROTOCOL_VERSION,
  TASK_PORT_TOKEN_ENV,
} from "./task-port-protocol.js";
export { projectSlug } from "./transcript.js";
