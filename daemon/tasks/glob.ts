/**
 * `owns` globs as the task spec validates them: the language is lib/glob.ts (one implementation
 * for the daemon and the agent's hook); here a refused glob becomes MeshError INVALID_ARGUMENT
 * naming the field.
 */
import { normaliseOwnsGlob, OwnsGlobError } from "../../lib/index.js";
import { MeshError } from "../errors.js";

export {
  ANY_CHAR,
  type CharSet,
  charSetHas,
  type GlobAlternative,
  type GlobSegment,
  type GlobToken,
  MAX_GLOB_EXPANSION,
  MAX_GLOB_LENGTH,
  MAX_OWNS,
  parseGlob,
} from "../../lib/index.js";

/**
 * The glob in its one written form (`./a//b/` -> `a/b/**`: a trailing `/` means the whole
 * folder). Throws INVALID_ARGUMENT with `field` for a glob that escapes the repository (`..`
 * segments, absolute paths, `~`) or is malformed, saying why.
 */
export function normaliseGlob(glob: string, field = "owns"): string {
  try {
    return normaliseOwnsGlob(glob);
  } catch (err) {
    if (err instanceof OwnsGlobError) {
      throw new MeshError("INVALID_ARGUMENT", `${field}: ${err.message}`, { field, cause: err });
    }
    throw err;
  }
}
