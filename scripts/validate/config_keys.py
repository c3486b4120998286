"""The env keys each service accepts, read from its config.rs.

Config is layered and unknown keys are errors (README "Configuration"), so a
misspelt COMMAND_* variable in a manifest stops the service at start-up. We
read the `pub field:` names of `struct Config` in crates/<svc>/src/config.rs.
"""

import re

from common import REPO

PREFIXES = {"COMMAND_": "command-service", "QUERY_": "query-service",
            "PROCESSOR_": "event-processor", "OBSERVER_": "observer"}


def accepted_keys(crate):
    path = REPO / "crates" / crate / "src" / "config.rs"
    if not path.exists():
        return None
    text = path.read_text()
    m = re.search(r"pub struct Config\s*\{(.*?)\n\}", text, re.S)
    body = m.group(1) if m else text
    return {f.upper() for f in re.findall(r"^\s*pub (\w+)\s*:", body, re.M)}


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
            key = name[len(prefix):]
            if keys is None:
                if (crate, "warned") in cache:
                    continue
                cache[(crate, "warned")] = True
                report.warn(f"{where}: crates/{crate}/src/config.rs does not exist yet, its keys are not checked")
            elif key not in keys:
                report.fail(f"{where}: {name}: not a field of crates/{crate}/src/config.rs (known: {', '.join(sorted(keys))})")
