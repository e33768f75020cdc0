/** Public surface of the plans folder: plan documents, their checks, and `owns` globs. */
export { compileOwns, MAX_GLOB_LENGTH, MAX_OWNS, normaliseGlob, type OwnsMatcher } from "./owns.js";
export {
  buildPlanRecord,
  MAX_PLAN_RECORD_BYTES,
  type PlanRecord,
  parsePlanRecord,
  planDependents,
  planNeeds,
  planTask,
  planTaskIds,
} from "./plan-record.js";
export { PlanStore } from "./plan-store.js";
export {
  newPlanId,
  type PlanSpec,
  parsePlanSubmitDocument,
  planTaskId,
  validatePlanSubmit,
} from "./plan-submit-doc.js";
export { type Lookup, PlanScheduler, type PlanSchedulerDeps, type ReconcileResult } from "./scheduler.js";
