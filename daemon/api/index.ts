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
