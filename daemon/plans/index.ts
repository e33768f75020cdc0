/** Public surface of the plans folder: plan documents, their checks, and `owns` globs. */
export {
  listPlanBranches,
  listPlanConflicts,
  MAX_BRANCH_PATHS,
  type PlanBranch,
  PlanBranchStore,
  type PlanBranchStoreOptions,
  type PlanConflict,
} from "./branches.js";
export {
  type ChildDecision,
  type ChildRequest,
  DELEGATION_DEFAULTS,
  type DelegationLimits,
  decideChild,
  sameChild,
} from "./delegate.js";
export {
  describeOwnsViolations,
  MAX_LISTED_VIOLATIONS,
  MAX_RECORDED_VIOLATIONS,
  OwnsViolationError,
  ownsViolations,
  recordedViolations,
} from "./gate.js";
export { globsOverlap, type OwnsOverlap, ownsOverlap } from "./overlap.js";
export { compileOwns, MAX_GLOB_LENGTH, MAX_OWNS, normaliseGlob, type OwnsMatcher } from "./owns.js";
export {
  checkPlanDefaults,
  type DependencyFailure,
  MAX_PLAN_TASKS,
  type PlanSpec as CheckedPlan,
  type PlanTaskSpec,
  parsePlan,
  validatePlan,
} from "./plan-doc.js";
export { parsePlanDocument } from "./plan-text.js";
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
export { globWithin, ownsOutside } from "./within.js";
