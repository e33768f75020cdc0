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
  ANY_CHAR,
  alternativeMatches,
  type CharSet,
  charSetHas,
  compileOwnsGlobs,
  type GlobAlternative,
  type GlobSegment,
  type GlobToken,
  MAX_GLOB_EXPANSION,
  MAX_GLOB_LENGTH,
  MAX_OWNS,
  normaliseOwnsGlob,
  OwnsGlobError,
  type OwnsMatcher,
  parseGlob,
  pathNames,
  segmentMatches,
} from "./owns.js";
export { LEAN_NODE_FLAGS } from "./node-flags.js";
