/** Public surface of the api folder: the MeshApi contract the service implements and the servers call. */
export type {
  MeshApi,
  MeshEvent,
  PlanSubmitResult,
  PlanSummary,
  PlanView,
  SubmitResult,
  TaskFilter,
  TaskList,
  TaskView,
} from "./mesh-api.js";
export {
  type ActivityEvent,
  type AgentActivity,
  foldActivity,
  STATUS_KINDS,
  type StatusInput,
  type StatusKind,
  type StatusRecord,
  statusRank,
  type TaskStatus,
  taskStatus,
} from "./status.js";
export {
  type Overview,
  type OverviewPlan,
  type OverviewTask,
  type OverviewTaskInput,
  type OverviewWorkerInput,
  overview,
} from "./overview.js";
