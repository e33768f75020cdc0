// Writes schema/*.json from the zod schemas (run `npm run schema`; it builds first).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { jsonSchemaFiles } from "../dist/cli/json-schema.js";

const dir = fileURLToPath(new URL("../schema/", import.meta.url));
mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(jsonSchemaFiles())) {
  writeFileSync(join(dir, name), text);
  console.log(`wrote schema/${name}`);
}
