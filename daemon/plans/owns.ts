/**
 * `owns` globs for the daemon: the one implementation lives in lib/owns.ts (the agent's
 * PreToolUse hook in agent-shim/ uses it too, and may not import daemon/); here its errors
 * become MeshError INVALID_ARGUMENT naming the field.
 */
import { compileOwnsGlobs, normaliseOwnsGlob, type OwnsMatcher, OwnsGlobError } from "../../lib/index.js";
import { MeshError } from "../errors.js";

export { MAX_GLOB_LENGTH, MAX_OWNS, type OwnsMatcher } from "../../lib/index.js";

function asMeshError(err: unknown, field: string): unknown {
  if (err instanceof OwnsGlobError)
    return new MeshError("INVALID_ARGUMENT", `${field}: ${err.message}`, { field, cause: err });
  return err;
}

/**
 * The glob in its one written form (`./a//b/` -> `a/b`, a trailing `/` means the whole
 * directory: `a/b/**`). Throws INVALID_ARGUMENT with `field` for a glob that escapes the
 * repository (`..` segments, absolute paths, `~`) or is malformed.
 */
export function normaliseGlob(glob: string, field = "owns"): string {
  try {
    return normaliseOwnsGlob(glob);
  } catch (err) {
    throw asMeshError(err, field);
  }
}

export function compileOwns(globs: readonly string[]): OwnsMatcher {
  try {
    return compileOwnsGlobs(globs);
  } catch (err) {
    throw asMeshError(err, "owns");
  }
}
