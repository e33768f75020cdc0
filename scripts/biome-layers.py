#!/usr/bin/env python3
"""Rewrites the per-folder import rules in biome.json from one ordered list of daemon/ folders.

A folder may import the folders before it (through their index.ts) and never those after it.
Adding a folder: put its name in LAYERS at its place and run `python3 scripts/biome-layers.py`.
"""
import json
import pathlib

LAYERS = ["util", "nats", "tasks", "plans", "registry", "queue", "quota", "workspace", "claim",
          "runner", "api", "transfer", "notify", "metrics", "servers"]

path = pathlib.Path(__file__).resolve().parent.parent / "biome.json"
b = json.loads(path.read_text())
overs = b["overrides"]


def pats(o):
    return o["linter"]["rules"]["style"]["noRestrictedImports"]["options"]["patterns"]


def index_rule(f):
    return {"group": [f"**/{f}/**", f"!**/{f}/index.js"],
            "message": f"Import daemon/{f}/ through its index.ts; its other files are private."}


by_inc = {tuple(o["includes"]): o for o in overs}
template = by_inc[("daemon/tasks/**",)]
common = [p for p in pats(template)[:4]]  # cli/bench/test, agent-shim, proto, lib
composing_default = pats(template)[-1]

new_folder_overrides = []
for i, f in enumerate(LAYERS):
    key = (f"daemon/{f}/**",)
    old = by_inc.get(key)
    composing = pats(old)[-1] if old else {
        "group": composing_default["group"],
        "message": composing_default["message"].replace("daemon/tasks/", f"daemon/{f}/"),
    }
    rules = list(common) + [index_rule(g) for g in LAYERS[:i]]
    above = LAYERS[i + 1:]
    if above:
        names = ", ".join(f"{g}/" for g in above)
        rules.append({"group": [f"**/{g}/**" for g in above],
                      "message": f"daemon/{f}/ is below {names}: it never imports them (see README \"Architecture\" and docs/architecture.md)."})
    rules.append(composing)
    new_folder_overrides.append({"includes": list(key), "linter": {"rules": {"style": {
        "noRestrictedImports": {"level": "error", "options": {"patterns": rules}}}}}})

out = []
inserted = False
for o in overs:
    inc = o["includes"]
    if len(inc) == 1 and inc[0].startswith("daemon/") and inc[0].endswith("/**") and inc[0][7:-3] in LAYERS + ["util"]:
        if not inserted:
            out.extend(new_folder_overrides)
            inserted = True
        continue
    if inc == ["daemon/*.ts"]:
        p = pats(o)
        pats(o)[:] = p[:4] + [index_rule(g) for g in LAYERS]
    if inc == ["daemon/{errors,log,limits,version,state-dir,exit-codes}.ts"]:
        last = pats(o)[-1]
        last["group"] = [f"./{g}/**" for g in LAYERS] + [g for g in last["group"] if not g.endswith("/**")]
    out.append(o)
if not inserted:
    out.extend(new_folder_overrides)
b["overrides"] = out
text = json.dumps(b, indent=2)
path.write_text(text + "\n")
