"""Runs every deployment check; exit 1 if any failed. See docs/deployment.md."""

import sys
import time

import compose_check
import config_check
import dockerfile_check
import k8s_check
import runbook_check
import security_check
import terraform_check
import tools_check
from common import Report


def main():
    t0 = time.time()
    results = {}
    results["compose"] = compose_check.main([])
    results["compose configs"] = tools_check.main([])
    results["dockerfile"] = dockerfile_check.main([])
    k8s_ok, rendered = k8s_check.main([])
    results["kubernetes"] = k8s_ok
    report = Report("security: posture of rendered Deployments, RBAC, PSA, NetworkPolicy flows")
    if rendered:
        security_check.check(rendered, report)
    else:
        report.fail("no overlay rendered")
    results["security"] = report.finish()
    results["configuration"] = config_check.main([], rendered)
    results["terraform"] = terraform_check.main([])
    results["runbook"] = runbook_check.main([])
    print(f"\n==> deployment validation summary ({time.time() - t0:.0f} s)")
    for name, ok in results.items():
        print(f"    {'PASS' if ok else 'FAIL'}  {name}")
    passed = sum(results.values())
    print(f"deploy: {passed} passed, {len(results) - passed} failed")
    return all(results.values())


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
