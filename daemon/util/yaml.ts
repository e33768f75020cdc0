/**
 * The yaml package, loaded at its first use: an idle daemon reads no YAML (a config file, a
 * submitted spec or plan is parsed once, when given), so it does without the parser's code.
 * Synchronous like the parsers that call it (yaml is a CommonJS package under Node).
 */
import { createRequire } from "node:module";

type Yaml = typeof import("yaml");
let loaded: Yaml | undefined;

export function yaml(): Yaml {
  loaded ??= createRequire(import.meta.url)("yaml") as Yaml;
  return loaded;
}
