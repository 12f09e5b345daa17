"""Write kubeconform's standalone strict JSON schemas for the kinds the chart renders.

    python3 packaging/helm/schemas/generate.py SWAGGER_JSON OUT_DIR

SWAGGER_JSON is Kubernetes' OpenAPI v2 spec, `api/openapi-spec/swagger.json` in the source of
module k8s.io/kubernetes at the release wanted (README.md beside this file says how to get it).
What it writes is what openapi2jsonschema's `--kubernetes --expanded --stand-alone --strict` makes,
the layout kubeconform reads: every `$ref` inlined, `additionalProperties: false` on every object
with named properties (a misspelt key fails), null allowed below the top level (Helm renders an
empty value as null), int-or-string and quantities as the API takes them, and `apiVersion` and
`kind` fixed. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# (apiVersion, kind) of every object the chart can render; add one when a template adds a kind.
KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def file_name(api_version: str, kind: str) -> str:
    """kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`: kind-group-version, lower case."""
    group, _, version = api_version.rpartition("/")
    parts = [kind.lower(), *([group.split(".")[0]] if group else []), version]
    return "-".join(parts) + ".json"


def _special(name: str) -> dict[str, Any] | None:
    if name == INT_OR_STRING:
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    if name == QUANTITY:
        return {"oneOf": [{"type": "string"}, {"type": "number"}]}
    return None


def expand(node: Any, defs: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """`node` with every `#/definitions/…` reference inlined, made strict and null-tolerant."""
    if isinstance(node, list):
        return [expand(item, defs, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix("#/definitions/")
        if name in stack:
            raise ValueError(f"recursive definition {name}: not expected in these kinds")
        special = _special(name)
        inlined = special if special is not None else expand(defs[name], defs, (*stack, name))
        extra = {k: expand(v, defs, stack) for k, v in node.items() if k != "$ref"}
        return {**inlined, **extra}
    out = {
        k: expand(v, defs, stack) for k, v in node.items() if k != "x-kubernetes-group-version-kind"
    }
    if out.get("format") == "int-or-string":
        out.pop("type", None)
        out.update(_special(INT_OR_STRING) or {})
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def schema_for(api_version: str, kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    """The standalone strict schema of one kind."""
    group, _, version = api_version.rpartition("/")
    for name, definition in defs.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                schema = expand(definition, defs, (name,))
                schema["type"] = "object"
                schema["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
                schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
                schema["$schema"] = "http://json-schema.org/schema#"
                return dict(schema)
    raise KeyError(f"{api_version} {kind} is not in this spec")


def main(argv: list[str]) -> int:
    """Read the spec, write one schema file per kind."""
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    out = Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for api_version, kind in KINDS:
        schema = schema_for(api_version, kind, spec["definitions"])
        path = out / file_name(api_version, kind)
        path.write_text(
            json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8"
        )
        print(f"{path}: {api_version} {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
