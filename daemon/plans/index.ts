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
export { compileOwns, MAX_GLOB_LENGTH, MAX_OWNS, normaliseGlob, type OwnsMatcher } from "./owns.js";
