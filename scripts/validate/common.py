"""Shared helpers for the deployment validators: reporting and YAML loading."""

import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = Path(os.environ.get("TODO_SCHEMAS_DIR", REPO.parent / "shared" / "schemas"))


class Report:
    """Collects the findings of one check and prints a PASS/FAIL verdict."""

    def __init__(self, name):
        self.name = name
        self.errors = []
        self.warnings = []
        self.checked = []
        print(f"==> {name}", flush=True)

    def ok(self, what):
        self.checked.append(what)
        print(f"    ok   {what}", flush=True)

    def fail(self, what):
        self.errors.append(what)
        print(f"    FAIL {what}", flush=True)

    def warn(self, what):
        self.warnings.append(what)
        print(f"    WARNING {what}", flush=True)

    def finish(self):
        verdict = "PASS" if not self.errors else "FAIL"
        extra = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        print(f"--- {self.name}: {verdict} ({len(self.checked)} checked, {len(self.errors)} failed{extra})", flush=True)
        return not self.errors


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that accepts Compose's !reset / !override tags as their plain value."""


def _plain(loader, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ComposeLoader.add_constructor("!reset", _plain)
_ComposeLoader.add_constructor("!override", _plain)


def load_compose_yaml(path):
    with open(path) as f:
        return yaml.load(f, Loader=_ComposeLoader)


def load_yaml_docs(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def selector_matches(selector, labels):
    """A Kubernetes label selector (matchLabels; matchExpressions In, NotIn,
    Exists, DoesNotExist) against a label map. {} matches everything, a
    missing (None) selector nothing."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
