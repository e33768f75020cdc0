// tsc does not keep the executable bit: restore it on every bin entry after a build.
import { chmodSync, existsSync, readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
for (const rel of Object.values(pkg.bin ?? {})) {
  const file = new URL(`../${rel}`, import.meta.url);
  if (existsSync(file)) chmodSync(file, 0o755);
}
