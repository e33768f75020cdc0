export * from "./child/index.js";
export {
  type LifecycleHooks,
  Lifecycle,
  LifecycleError,
  type LifeState,
  type LongRunning,
  Part,
  PartGroup,
} from "./lifecycle.js";
export { SignalPolicy, type SignalPolicyOptions, type StopActions } from "./signals.js";
export {
  compileOwnsGlobs,
  MAX_GLOB_LENGTH,
  MAX_OWNS,
  normaliseOwnsGlob,
  OwnsGlobError,
  type OwnsMatcher,
} from "./owns.js";
