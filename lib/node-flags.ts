/**
 * Node flags every long-lived agent-mesh process runs with. `--max-semi-space-size=1` caps V8's
 * young generation at 1 MB per semi-space (the default grows to 16 MB): an idle daemon holds
 * about 14 MB less RSS, at a few more (cheap) scavenges under load. It must be a node flag
 * (v8.setFlagsFromString at run time does not shrink a heap already set up), so the bins'
 * shebangs (`#!/usr/bin/env -S node --max-semi-space-size=1`), the npm scripts that run them and
 * every place that spawns one with process.execPath give it; test/node-flags.test.ts keeps them
 * in step.
 */
export const LEAN_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1"];
