"""The env keys each service accepts, read from its config.rs.

Config is layered and unknown keys are errors (README "Configuration"), so a
misspelt COMMAND_* variable in a manifest stops the service at start-up. We
read the `pub field:` names of `struct Config` in crates/<svc>/src/config.rs.
Nested tables are separated by `__` (COMMAND_AUTH_OIDC__ISSUER): the part
after it must be a field of the struct the outer field's type names
(`Option<OidcConfig>` -> `pub struct OidcConfig` somewhere under crates/).
A `#[serde(flatten)]` field contributes the fields of its struct at the top
level (`service_kit::common::ListenConfig<Defaults>` -> LISTEN_ADDR, …).
"""

import re

from common import REPO

PREFIXES = {"COMMAND_": "command-service", "QUERY_": "query-service",
            "PROCESSOR_": "event-processor", "OBSERVER_": "observer"}

FIELD = re.compile(r"^\s*pub (\w+)\s*:\s*([^\n]+?),?\s*(?://.*)?$", re.M)


def _fields(body):
    """{FIELD_NAME: rust type} of a struct body; flattened fields are
    replaced by the fields of their struct."""
    out = {}
    flatten = False
    for line in body.splitlines():
        if re.match(r"\s*#\[serde\(.*\bflatten\b", line):
            flatten = True
            continue
        m = FIELD.match(line)
        if not m:
            continue
        name, rust_type = m.group(1), m.group(2).strip().rstrip(",")
        if flatten:
            out.update(_type_fields(rust_type) or {})
        else:
            out[name.upper()] = rust_type
        flatten = False
    return out


def _struct_body(text, name):
    m = re.search(rf"pub struct {name}(?:<[^>{{]*>)?\s*\{{(.*?)\n\}}", text, re.S)
    return m.group(1) if m else None


def accepted_keys(crate):
    """{KEY: rust type} of the crate's `struct Config`, None if it does not exist."""
    path = REPO / "crates" / crate / "src" / "config.rs"
    if not path.exists():
        return None
    text = path.read_text()
    body = _struct_body(text, "Config")
    return _fields(body if body is not None else text)


_NESTED = {}


def nested_keys(rust_type):
    """{KEY: type} of the struct a field type names (through Option<…> and a
    path), or None if it is not a struct defined in the workspace (an enum, a
    number, a string: no nested keys)."""
    return _type_fields(rust_type)


def _type_fields(rust_type):
    """{KEY: type} of the workspace struct `rust_type` names, generics and
    a path stripped, None if there is none."""
    m = re.fullmatch(r"(?:Option<)?\s*(?:[\w:]+::)?(\w+)\s*(?:<[\w:, ]*>)?\s*>?", rust_type)
    if not m:
        return None
    name = m.group(1)
    if name not in _NESTED:
        _NESTED[name] = None
        for path in sorted((REPO / "crates").glob("*/src/**/*.rs")):
            body = _struct_body(path.read_text(), name)
            if body is not None:
                _NESTED[name] = _fields(body)
                break
    return _NESTED[name]


def check_env(report, where, env):
    """env: mapping name -> value. Reports unknown prefixed keys."""
    cache = {}
    for name in env:
        for prefix, crate in PREFIXES.items():
            if not name.startswith(prefix):
                continue
            if crate not in cache:
                cache[crate] = accepted_keys(crate)
            keys = cache[crate]
            path = name[len(prefix):].split("__")
            if keys is None:
                if (crate, "warned") in cache:
                    continue
                cache[(crate, "warned")] = True
                report.warn(f"{where}: crates/{crate}/src/config.rs does not exist yet, its keys are not checked")
                continue
            if path[0] not in keys:
                report.fail(f"{where}: {name}: not a field of crates/{crate}/src/config.rs (known: {', '.join(sorted(keys))})")
                continue
            field, rust_type = path[0], keys[path[0]]
            for seg in path[1:]:
                inner = nested_keys(rust_type)
                if inner is None:
                    report.fail(f"{where}: {name}: '{field.lower()}' ({rust_type}) is not a table, '__{seg}' cannot be set")
                    break
                if seg not in inner:
                    report.fail(f"{where}: {name}: '{seg.lower()}' is not a field of {rust_type} (known: {', '.join(sorted(inner))})")
                    break
                field, rust_type = seg, inner[seg]
