/** The text of a plan document: YAML or JSON, one document; see plan-doc.ts for what it holds. */
import { MeshError } from "../errors.js";
import { describePosition } from "../tasks/index.js";
import { yaml } from "../util/index.js";

const invalid = (field: string, message: string): MeshError =>
  new MeshError("INVALID_ARGUMENT", `${field}: ${message}`, { field });

/**
 * Parses a plan document (YAML or JSON: one document, a mapping). Validate it with validatePlan.
 * JSON takes a fast path (a 5,000-task plan is most of a megabyte, which YAML reads slowly);
 * duplicate keys are refused in both.
 */
export function parsePlanDocument(text: string, source = "input"): unknown {
  if (text.trimStart().startsWith("{")) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined; // not JSON after all: YAML reads it and says where it is wrong
    }
    if (value !== undefined) {
      const dup = duplicateJsonKey(text);
      if (dup) {
        throw invalid(
          source,
          `not valid YAML/JSON ${describePosition(text, dup.at)}: duplicate key "${dup.key}"`,
        );
      }
      return value;
    }
  }
  const docs = yaml().parseAllDocuments(text, { prettyErrors: false, uniqueKeys: true });
  const list = (Array.isArray(docs) ? docs : [docs]).filter(
    (d) => d.contents !== null || d.errors.length > 0,
  );
  for (const doc of list) {
    const e = doc.errors[0];
    if (e) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `${source}: not valid YAML/JSON ${describePosition(text, e.pos[0])}: ${e.message.split("\n")[0]}`,
        { field: source, cause: e },
      );
    }
  }
  if (list.length === 0) throw invalid(source, "holds no plan; write tasks: [...]");
  if (list.length > 1) throw invalid(source, "holds more than one document (---); a plan is one document");
  try {
    // An alias to nothing, or more aliases than yaml's limit (an "alias bomb"), throws here.
    return list[0]!.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split("\n")[0];
    throw new MeshError("INVALID_ARGUMENT", `${source}: not valid YAML/JSON: ${why}`, {
      field: source,
      cause: err,
    });
  }
}

/** The first key that appears twice in one object of a valid JSON text, and where. */
function duplicateJsonKey(text: string): { key: string; at: number } | undefined {
  const frames: Array<{ keys: Set<string>; expectKey: boolean } | undefined> = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "{") frames.push({ keys: new Set(), expectKey: true });
    else if (ch === "[") frames.push(undefined);
    else if (ch === "}" || ch === "]") frames.pop();
    else if (ch === ",") {
      const top = frames[frames.length - 1];
      if (top) top.expectKey = true;
    } else if (ch === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const top = frames[frames.length - 1];
      if (top?.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) return { key, at: i };
        top.keys.add(key);
        top.expectKey = false;
      }
      i = end;
    }
  }
  return undefined;
}
