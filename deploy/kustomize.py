"""A small kustomize, enough for deploy/k8s (the kustomize binary is not available on our machines):
``resources`` (files and directories), ``namespace``, ``labels`` (pairs, without selectors), ``images``
(newName/newTag) and ``patches`` given by ``path`` as strategic-merge patches (maps merge, lists of maps
with a ``name`` merge by name, other lists are replaced). Anything else in a kustomization is an error,
so a feature our renderer does not know cannot be silently ignored.

``python deploy/kustomize.py deploy/k8s/overlays/production`` prints the rendered YAML.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x
                                                                  for x in [*base, *patch]):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            found = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if found is None:
                out.append(copy.deepcopy(item))
            else:
                out[found] = merge(out[found], item)
        return out
    return copy.deepcopy(patch)


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", spec.get("template", {})).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def render(directory: Path | str) -> list[dict[str, Any]]:
    directory = Path(directory)
    [kustomization] = _load(directory / "kustomization.yaml")
    unknown = set(kustomization) - KNOWN
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml uses {sorted(unknown)}, which deploy/kustomize.py does not do")
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        docs.extend(render(path) if path.is_dir() else _load(path))
    for entry in kustomization.get("patches", []):
        for patch in _load(directory / entry["path"]):
            targets = [i for i, d in enumerate(docs) if d["kind"] == patch["kind"]
                       and d["metadata"]["name"] == patch["metadata"]["name"]]
            if len(targets) != 1:
                raise ValueError(f"patch {entry['path']}: {patch['kind']}/{patch['metadata']['name']} matches "
                                 f"{len(targets)} resources")
            docs[targets[0]] = merge(docs[targets[0]], patch)
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    for label in kustomization.get("labels", []):
        if label.get("includeSelectors"):
            raise ValueError("labels with includeSelectors are not supported")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


if __name__ == "__main__":
    print(yaml.safe_dump_all(render(sys.argv[1]), sort_keys=False), end="")
