"""Does a new event catalogue break a reader of the previous one? (SPEC 10.5)

The previous contract is a published AsyncAPI document (``docs/asyncapi.json``); the new one is what the
models generate today. A reader written against the previous document must still read every new event, so
within one schema version these are breaking, each reported with its field path:

- an event type removed;
- a field removed or renamed (a rename is a removal plus an addition);
- a field's type changed so that a value the old reader did not expect can arrive (a new type, a widened
  format, a new enum value, ``null`` where there was none);
- a required field made optional (the old reader counts on it);
- a new field that is required (a reader of the old document cannot build or validate it).

Adding an optional field, or a new event type, passes; readers ignore what they do not know.
A higher ``info.version`` (the envelope's ``schema_version``) is a new contract: nothing is compared.

``python -m clinishare_shared.compat [--against docs/asyncapi.json] [--git-ref REF]`` prints the breaks
and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Schema = dict[str, Any]
_IGNORED = {"title", "description", "default", "examples"}


class _Doc:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.schemas: dict[str, Schema] = doc.get("components", {}).get("schemas", {})

    def resolve(self, node: Schema) -> Schema:
        seen = 0
        while "$ref" in node:
            node = self.schemas[node["$ref"].rsplit("/", 1)[-1]]
            seen += 1
            if seen > 50:
                raise ValueError("a $ref cycle")
        return node

    def events(self) -> dict[str, Schema]:
        """event type -> one object schema of the whole message (the envelope with its typed data)."""
        out: dict[str, Schema] = {}
        for message in self.doc.get("components", {}).get("messages", {}).values():
            out[message["name"]] = self._merge(message["payload"])
        return out

    def _merge(self, node: Schema) -> Schema:
        node = self.resolve(node)
        if "allOf" not in node:
            return node
        props: dict[str, Schema] = {}
        required: set[str] = set()
        for part in node["allOf"]:
            part = self._merge(part)
            props.update(part.get("properties", {}))
            required |= set(part.get("required", []))
        return {"type": "object", "properties": props, "required": sorted(required)}


def _atoms(doc: _Doc, node: Schema) -> set[str]:
    """The kinds of value a schema admits: ``string``, ``string:date-time``, ``enum:"a"``, ``null``..."""
    node = doc.resolve(node)
    for combinator in ("anyOf", "oneOf"):
        if combinator in node:
            return set().union(*(_atoms(doc, alt) for alt in node[combinator]))
    if "allOf" in node:
        return _atoms(doc, doc._merge(node))
    if "const" in node:
        return {f"enum:{json.dumps(node['const'])}"}
    if "enum" in node:
        return {f"enum:{json.dumps(v)}" for v in node["enum"]}
    kinds = node.get("type")
    if kinds is None:
        return {"object"} if "properties" in node else {"any"}
    kinds = kinds if isinstance(kinds, list) else [kinds]
    fmt = node.get("format")
    return {f"{k}:{fmt}" if fmt and k == "string" else k for k in kinds}


def _covered(atom: str, old: set[str]) -> bool:
    """Would a reader expecting ``old`` accept a value of kind ``atom``?"""
    if atom in old or "any" in old:
        return True
    if atom.startswith("enum:"):
        value = json.loads(atom[5:])
        kind = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}.get(type(value))
        return kind in old or (kind == "integer" and "number" in old)
    if atom == "integer":
        return "number" in old
    if atom.startswith("string:"):
        return "string" in old
    return False


def _branch(doc: _Doc, node: Schema, kind: str) -> Schema | None:
    """The alternative of ``node`` that is an array / an object, if any."""
    node = doc.resolve(node)
    for combinator in ("anyOf", "oneOf"):
        if combinator in node:
            for alt in node[combinator]:
                found = _branch(doc, alt, kind)
                if found is not None:
                    return found
            return None
    if "allOf" in node:
        node = doc._merge(node)
    is_object = node.get("type") == "object" or "properties" in node
    if kind == "array" and node.get("type") == "array":
        return node
    if kind == "object" and is_object:
        return node
    return None


def _compare(old_doc: _Doc, old: Schema, new_doc: _Doc, new: Schema, path: str) -> Iterator[str]:
    old_atoms, new_atoms = _atoms(old_doc, old), _atoms(new_doc, new)
    unexpected = sorted(a for a in new_atoms if not _covered(a, old_atoms))
    if unexpected:
        yield (f"{path}: type changed from {' | '.join(sorted(old_atoms))} to {' | '.join(sorted(new_atoms))} "
               f"(an old reader does not expect {', '.join(unexpected)})")
        return
    old_array, new_array = _branch(old_doc, old, "array"), _branch(new_doc, new, "array")
    if old_array is not None and new_array is not None:
        yield from _compare(old_doc, old_array.get("items", {}), new_doc, new_array.get("items", {}), f"{path}[]")
    old_obj, new_obj = _branch(old_doc, old, "object"), _branch(new_doc, new, "object")
    if old_obj is not None and new_obj is not None:
        yield from _compare_objects(old_doc, old_obj, new_doc, new_obj, path)


def _compare_objects(old_doc: _Doc, old: Schema, new_doc: _Doc, new: Schema, path: str) -> Iterator[str]:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", [])), set(new.get("required", []))
    added = sorted(set(new_props) - set(old_props))
    prefix = f"{path}." if path else ""
    for name in sorted(old_props):
        where = f"{prefix}{name}"
        if name not in new_props:
            hint = f" (new here: {', '.join(added)})" if added else ""
            yield f"{where}: field removed or renamed{hint}"
            continue
        if name in old_req and name not in new_req:
            yield f"{where}: was required, now optional (an old reader counts on it)"
        yield from _compare(old_doc, old_props[name], new_doc, new_props[name], where)
    for name in added:
        if name in new_req:
            yield f"{prefix}{name}: new required field (a new field must be optional)"
    if "additionalProperties" in old and isinstance(old["additionalProperties"], dict) \
            and isinstance(new.get("additionalProperties"), dict):
        yield from _compare(old_doc, old["additionalProperties"], new_doc, new["additionalProperties"], f"{prefix}*")


def breaking_changes(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Every change in ``current`` that would break a reader of ``previous``, as "event type field.path: why"."""
    try:
        if int(current["info"]["version"]) > int(previous["info"]["version"]):
            return []  # a new schema_version is a new contract
    except (KeyError, ValueError):
        pass
    old_doc, new_doc = _Doc(previous), _Doc(current)
    old_events, new_events = old_doc.events(), new_doc.events()
    problems: list[str] = []
    for event_type in sorted(old_events):
        if event_type not in new_events:
            problems.append(f"{event_type}: event type removed")
            continue
        for p in _compare(old_doc, old_events[event_type], new_doc, new_events[event_type], ""):
            problems.append(f"{event_type} {p}")
    return problems


def git_versions(path: str, *, ref: str = "HEAD", cwd: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every committed version of ``path`` reachable from ``ref``, newest first, as (commit, document)."""
    log = subprocess.run(["git", "log", "--format=%H", ref, "--", path], cwd=cwd, capture_output=True, text=True,
                         check=True).stdout.split()
    out = []
    for commit in log:
        shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=cwd, capture_output=True, text=True)
        if shown.returncode == 0:
            out.append((commit, json.loads(shown.stdout)))
    return out


def main(argv: list[str] | None = None) -> int:
    from clinishare_shared.asyncapi import asyncapi_document

    parser = argparse.ArgumentParser(prog="python -m clinishare_shared.compat", description=__doc__.split("\n")[0])
    parser.add_argument("--against", default="docs/asyncapi.json", help="the previous contract (a file)")
    parser.add_argument("--git-ref", help="instead: docs/asyncapi.json as committed at this ref")
    args = parser.parse_args(argv)
    if args.git_ref:
        text = subprocess.run(["git", "show", f"{args.git_ref}:docs/asyncapi.json"], capture_output=True,
                              text=True, check=True).stdout
        previous, label = json.loads(text), f"{args.git_ref}:docs/asyncapi.json"
    else:
        previous, label = json.loads(Path(args.against).read_text()), args.against
    problems = breaking_changes(previous, json.loads(json.dumps(asyncapi_document())))
    for p in problems:
        print(f"BREAKING {p}")
    print(f"compat: {len(problems)} breaking change(s) against {label}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
