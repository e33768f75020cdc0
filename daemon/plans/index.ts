/** Public surface of the plans folder: plan documents, their checks, and `owns` globs. */

export { globsOverlap, type OwnsOverlap, ownsOverlap } from "./overlap.js";
export { compileOwns, MAX_GLOB_LENGTH, MAX_OWNS, normaliseGlob, type OwnsMatcher } from "./owns.js";
