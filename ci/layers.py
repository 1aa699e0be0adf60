#!/usr/bin/env python3
"""Checks that every `crate::` import points down the layer order stated in the README.

Each crate's top-level modules are listed from the top layer to the bottom; a module may
import only modules on a strictly lower line (modules on one line are independent of each
other). Comments and inline `#[cfg(test)] mod` blocks are ignored; a test module in a file
of its own (`tests.rs`) is held to its module's layer, as `../shared/tools/layers.py` holds
it. Exit 1 and one line per offending import otherwise. Run from the repository root: `ci/layers.py`.
"""
import os
import re
import sys

LAYERS = {
    "crates/mpmt/src": [
        ["pool"],
        ["worker"],
        ["protocol"],
        ["task"],
        ["supervise", "transport"],
        ["sync"],
    ],
    "crates/mpmt-lab/src": [
        ["child"],
        ["report"],
        ["lab"],
        ["advise"],
        ["bench"],
        ["measure"],
    ],
}


def uses(path):
    src = open(path, errors="ignore").read()
    src = re.sub(r"(?s)#\[cfg\(test\)\]\s*mod\s+\w+\s*\{.*", "", src)
    src = re.sub(r"//[^\n]*", "", src)
    found = set(re.findall(r"crate::(\w+)", src))
    for group in re.findall(r"use\s+crate::\{([^}]*)\}", src):
        found |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
    return found


def main():
    bad = []
    for root, layers in LAYERS.items():
        level = {m: i for i, line in enumerate(layers) for m in line}
        for dirpath, _, files in os.walk(root):
            for name in sorted(files):
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, name)
                top = os.path.relpath(path, root).split(os.sep)[0].removesuffix(".rs")
                if top in ("lib", "main"):
                    continue
                if top not in level:
                    bad.append(f"{path}: module '{top}' is not in the layer table of ci/layers.py")
                    continue
                for dep in sorted(uses(path)):
                    if dep == top or dep not in level:
                        continue
                    if level[dep] <= level[top]:
                        bad.append(f"{path}: '{top}' imports '{dep}', which is not below it")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
