/**
 * `owns` for the daemon: matching lives in lib/owns.ts (the agent's PreToolUse hook in
 * agent-shim/ uses it too, and may not import daemon/), the language in lib/glob.ts; here a
 * refused glob becomes MeshError INVALID_ARGUMENT naming the field (tasks/glob.ts).
 */
import { compileOwnsGlobs, type OwnsMatcher, OwnsGlobError } from "../../lib/index.js";
import { MeshError } from "../errors.js";

export {
  alternativeMatches,
  type OwnsMatcher,
  pathNames,
  segmentMatches,
} from "../../lib/index.js";
export { MAX_GLOB_LENGTH, MAX_OWNS, normaliseGlob } from "../tasks/index.js";

/** A predicate over repository-relative paths (`a/b.ts`, no leading `./`); unclean paths never match. */
export function compileOwns(globs: readonly string[]): OwnsMatcher {
  try {
    return compileOwnsGlobs(globs);
  } catch (err) {
    if (err instanceof OwnsGlobError) {
      throw new MeshError("INVALID_ARGUMENT", `owns: ${err.message}`, { field: "owns", cause: err });
    }
    throw err;
  }
}
