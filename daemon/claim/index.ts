/** Public surface of the claim folder: the claim loop, claims and leases, one attempt's execution, and the ports they call (runner, observer). */
export type { AccountLimits } from "./account-limits.js";
export { NatsLeaseBeacon } from "./beacon.js";
export { Claimer } from "./claim.js";
export { ClaimLoop } from "./claim-loop.js";
export { Execution } from "./execution.js";
export { type MeshObserver, noopObserver } from "./observer.js";
export { PlanCheck, type PlanCheckDeps, type PlanEvent } from "./plan-check.js";
export type { RunContext, Runner, RunOutcome } from "./runner.js";
export {
  type FileLeaseAnswer,
  type FileLeaseHolder,
  FileLeases,
  type FileLeasesOptions,
  type FileLeaseValue,
  fileLeaseKey,
} from "./file-leases.js";
