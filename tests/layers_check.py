#!/usr/bin/env python3
"""Fails on any #include that reaches a layer the including file's layer does not link.

Usage: layers_check.py SOURCE_DIR build/layers.txt
layers.txt is written by CMake (gentrain_layer in CMakeLists.txt, Note [layers]): one line a
layer, "name folder,folder,... dep,dep,...". A file belongs to the layer of its folder (an
umbrella header framework/X.h to the layer of framework/X/); it may include files of its own
layer and of every layer its layer links, directly or through others.
"""
import os
import re
import sys


def read_layers(path):
    folders, deps = {}, {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            name = parts[0]
            for folder in parts[1].split(","):
                folders[folder] = name
            deps[name] = set(parts[2].split(",")) if len(parts) > 2 and parts[2] else set()
    return folders, deps


def closure(deps):
    reach = {}
    for name in deps:
        seen, todo = set(), list(deps[name])
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo.extend(deps.get(d, ()))
        reach[name] = seen | {name}
    return reach


def layer_of(path, folders):
    folder = os.path.dirname(path)
    if folder in folders:
        return folders[folder]
    umbrella = os.path.splitext(path)[0]  # framework/data.h -> framework/data
    return folders.get(umbrella)


def main():
    root, layers_file = sys.argv[1], sys.argv[2]
    folders, deps = read_layers(layers_file)
    reach = closure(deps)
    include = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
    problems, checked = [], 0
    for top in ("framework", "models", "launch"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith((".h", ".cpp")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                mine = layer_of(path, folders)
                if mine is None:
                    problems.append(f"{path}: in no layer (add its folder to a gentrain_layer)")
                    continue
                with open(os.path.join(root, path)) as f:
                    for number, line in enumerate(f, 1):
                        m = include.match(line)
                        if not m or not m.group(1).startswith(("framework/", "models/", "launch/")):
                            continue
                        checked += 1
                        theirs = layer_of(m.group(1), folders)
                        if theirs is not None and theirs not in reach[mine]:
                            problems.append(f"{path}:{number}: layer '{mine}' includes "
                                            f"{m.group(1)} of layer '{theirs}', which it does "
                                            f"not link (it links: {', '.join(sorted(reach[mine]))})")
    for p in problems:
        print(p)
    print(f"layers: {len(deps)} layers, {checked} includes checked, {len(problems)} upward or "
          f"unknown")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
