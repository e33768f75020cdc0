/** Public surface of the plans folder: plan documents, their checks, and `owns` globs. */
export { compileOwns, MAX_GLOB_LENGTH, MAX_OWNS, normaliseGlob, type OwnsMatcher } from "./owns.js";
export { globWithin, ownsOutside } from "./within.js";
