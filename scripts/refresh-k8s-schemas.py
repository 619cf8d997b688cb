#!/usr/bin/env python3
"""Refreshes deploy/k8s/schemas/: the Kubernetes JSON schemas kubeconform checks the manifests with.

    python3 scripts/refresh-k8s-schemas.py [--version 1.37.0]

Where they come from: the PyPI package kubernetes-validate (pinned below), which ships the JSON
schemas generated from the OpenAPI document of each Kubernetes release ("-local-strict":
no properties beyond those of the API). Its schemas share one _definitions.json of 1.8 MB by
absolute $ref; kubeconform wants one self-contained file per kind, so this script copies, for
each kind the manifests use (KINDS), the kind's schema together with only the definitions it
reaches, with every $ref rewritten to point into the same file. The result is a few hundred
KB, committed, so the test command needs no network.

Run it after adding a kind to deploy/k8s/, or to move to a newer Kubernetes version (then
update K8S_VERSION in test/deploy/k8s.test.ts as well).
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "kubernetes-validate"
PACKAGE_VERSION = "1.37.0"
# kubeconform's file names: <kind>-<group>-<version>.json, lower case; the core group has none.
KINDS = [
    "configmap-v1",
    "service-v1",
    "deployment-apps-v1",
    "statefulset-apps-v1",
    "poddisruptionbudget-policy-v1",
    "horizontalpodautoscaler-autoscaling-v2",
]

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "k8s" / "schemas"
# Kind schemas point into _definitions.json by absolute path; definitions point at each other
# within that file.
DEFS_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def download(dest: pathlib.Path) -> pathlib.Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest), f"{PACKAGE}=={PACKAGE_VERSION}"],
        check=True,
    )
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one wheel of {PACKAGE}, found {wheels}")
    return wheels[0]


def standalone(schema: dict, definitions: dict) -> dict:
    """`schema` with the definitions it reaches under "$defs" and every $ref pointing there."""
    reached: dict = {}

    def rewrite(node):
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                prefix = next((p for p in DEFS_PREFIXES if isinstance(value, str) and value.startswith(p)), None) if key == "$ref" else None
                if prefix is not None:
                    name = value[len(prefix):]
                    if name not in reached:
                        reached[name] = None
                        reached[name] = rewrite(definitions[name])
                    out[key] = "#/$defs/" + name
                else:
                    out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    top = rewrite(schema)
    top["$defs"] = {name: reached[name] for name in sorted(reached)}
    return top


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default=PACKAGE_VERSION, help="Kubernetes version whose schemas to take")
    args = parser.parse_args()
    folder = f"kubernetes_validate/kubernetes-json-schema/v{args.version}-local-strict/"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = zipfile.ZipFile(download(pathlib.Path(tmp)))
        definitions = json.loads(wheel.read(folder + "_definitions.json"))["$defs"]
        OUT.mkdir(parents=True, exist_ok=True)
        for old in OUT.glob("*.json"):
            old.unlink()
        for kind in KINDS:
            schema = json.loads(wheel.read(f"{folder}{kind}.json"))
            (OUT / f"{kind}.json").write_text(json.dumps(standalone(schema, definitions), indent=1, sort_keys=True) + "\n")
    (OUT / "SOURCE.md").write_text(
        f"# Kubernetes JSON schemas (vendored)\n\n"
        f"Kubernetes v{args.version}, strict (no unknown fields), one self-contained file per kind that\n"
        f"deploy/k8s/ uses, for kubeconform. Taken from the PyPI package `{PACKAGE}` {PACKAGE_VERSION}\n"
        f"(`{folder}`), which generates them from the Kubernetes OpenAPI document;\n"
        f"made self-contained by `python3 scripts/refresh-k8s-schemas.py`. Do not edit by hand.\n\n"
        + "".join(f"- `{kind}.json`\n" for kind in KINDS)
    )
    print(f"wrote {len(KINDS)} schemas of Kubernetes v{args.version} to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
