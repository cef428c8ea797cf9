"""Invalid ReleasePolicies, one change each to the shipped example
(deployments/kubernetes/examples/releasepolicy.yaml): every refusal the YAML tests check
(tests/config/, tests/platforms/kubernetes/test_options.py, tests/flows/test_release_spec.py
and the release spec's own rules), as (id, change, words of the strict loader's message)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Change = Callable[[dict[str, Any]], object]
Case = tuple[str, Change, str]


def release(p: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = p["spec"]["release"]
    return section


def analysis(p: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = p["spec"]["release"]["analysis"]
    return section


def router(p: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = p["spec"]["release"]["kubernetes"]["router"]
    return section


def config(p: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = p["spec"]["canaryConfig"]
    return section


def metric(p: dict[str, Any], index: int) -> dict[str, Any]:
    section: dict[str, Any] = p["spec"]["canaryConfig"]["metrics"][index]
    return section


def settings(p: dict[str, Any], index: int) -> dict[str, Any]:
    section: dict[str, Any] = metric(p, index)["analysisConfigurations"]["canary"]
    return section


def k8s(p: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = p["spec"]["release"]["kubernetes"]
    return section


SERIES = {"name": "p99", "query": {"type": "prometheus", "metricName": "p99"}}

REFUSED: list[Case] = [
    # -- the release spec (tests/config/test_plan.py, test_options.py, ReleaseSpec's rules) --------
    ("app-name", lambda p: release(p).update(app="My_App"), "is not a valid name"),
    ("no-lifetime", lambda p: analysis(p).pop("lifetime"), "give either lifetime or end_time"),
    ("lifetime-0", lambda p: analysis(p).update(lifetime=0), "lifetime must be longer than 0"),
    ("end-time", lambda p: analysis(p).update(end_time="2024-01-31T13:00:00Z"), "give either lifetime or end_time"),
    ("step-0", lambda p: analysis(p).update(step=0), "step must be a whole number"),
    ("step-1.5", lambda p: analysis(p).update(step=1.5), "step must be a whole number"),
    ("lookback-negative", lambda p: analysis(p).update(lookback="-1m"), "is not a duration"),
    ("duration-PT", lambda p: analysis(p).update(interval="PT"), "is not a duration"),
    ("duration-words", lambda p: analysis(p).update(interval="5 minutes"), "is not a duration"),
    ("unknown-plan-key", lambda p: analysis(p).update(intervall="1m"), "unknown key 'intervall'"),
    ("whole-minutes-text", lambda p: analysis(p).update(whole_minutes="yes"), "'yes' is not a boolean"),
    ("no-thresholds", lambda p: analysis(p).pop("thresholds"), "thresholds: required key is missing"),
    ("marginal-above-pass", lambda p: analysis(p).update(thresholds={"pass": 70, "marginal": 80}),
     "marginal 80.0 is above pass 70.0"),
    ("pass-101", lambda p: analysis(p).update(thresholds={"pass": 101}), "it must be <= 100"),
    ("no-steps", lambda p: release(p).update(traffic={"steps": []}), "at least one share"),
    ("step-60", lambda p: release(p).update(traffic={"steps": [60]}), "out of range"),
    ("step-share-0", lambda p: release(p).update(traffic={"steps": [0]}), "out of range"),
    ("gate-0", lambda p: release(p).update(manual_gates=[0]), "manual_gates are look numbers"),
    ("ready-timeout-0", lambda p: release(p).update(ready_timeout_seconds=0), "out of range"),
    ("unknown-release-key", lambda p: release(p).update(canary_confg="x"), "unknown key 'canary_confg'"),
    ("virtual-service", lambda p: router(p).update(virtual_service="Store_Front"), "not a Kubernetes object name"),
    ("destination-rule", lambda p: router(p).update(destination_rule="a..b"), "not a Kubernetes object name"),
    ("routes-twice", lambda p: router(p).update(routes=["beta", "beta"]), "must be distinct"),
    ("router-kind", lambda p: router(p).update(kind="linkerd"), "must name a known router"),
    ("gateway-rule-index", lambda p: k8s(p).update(router={"kind": "gateway-api", "rule": 16}), "is not a rule index"),
    ("gateway-rule-name", lambda p: k8s(p).update(router={"kind": "gateway-api", "rule": "Main_Rule"}),
     "is not an HTTPRoute rule name"),
    ("gateway-route-name", lambda p: k8s(p).update(router={"kind": "gateway-api", "http_route": "Store_Front"}),
     "not a Kubernetes object name"),
    ("gateway-istio-key", lambda p: k8s(p).update(router={"kind": "gateway-api", "virtual_service": "shop"}),
     "virtual_service"),
    ("traffic-shadow", lambda p: k8s(p).update(traffic="shadow"), "kubernetes.traffic"),
    ("replicas-0", lambda p: k8s(p).update(replicas=0), "kubernetes.replicas"),
    ("dockerfile-absolute", lambda p: k8s(p).update(dockerfile="/etc/Dockerfile"), "must be a relative path"),
    ("context-up", lambda p: k8s(p).update(context="../other"), "must be a relative path"),
    ("container", lambda p: k8s(p).update(container="App"), "is not a container name"),
    ("mirror-percent", lambda p: k8s(p).update(mirror_percent=10), "unknown key 'mirror_percent'"),
    # -- the canary config (tests/config/test_strict_yaml.py, test_models.py, test_count_settings.py)
    ("direction", lambda p: settings(p, 0).update(direction="up"), "'up' is not one of increase"),
    ("nan-strategy", lambda p: settings(p, 0).update(nanStrategy="drop"), "'drop' is not one of remove"),
    ("quoted-boolean", lambda p: settings(p, 0).update(critical="true"), "'true' is not a boolean"),
    ("unknown-setting", lambda p: settings(p, 0).update(criticl=True), "unknown key 'criticl'"),
    ("store-typo", lambda p: metric(p, 1)["query"].update(type="promethus"), "'promethus' is not one of"),
    ("number-as-text", lambda p: settings(p, 0).update(effectSize={"allowedIncrease": "2"}), "'2' is not a number"),
    ("duplicated-metric", lambda p: metric(p, 1).update(name="error-rate"), "is duplicated"),
    ("no-config-name", lambda p: config(p).pop("name"), "name: required key is missing"),
    ("unknown-top-key", lambda p: config(p).update(clasifier={}), "unknown key 'clasifier'"),
    ("other-analysis", lambda p: metric(p, 0)["analysisConfigurations"].update(other={}),
     "only 'canary' is allowed"),
    ("tolerance-on-ratio", lambda p: settings(p, 0).update(toleranceOn="share"),
     "toleranceOn applies to histogram metrics only"),
    ("safe-rate-histogram", lambda p: settings(p, 1).update(safeRate=0.01), "safeRate applies to ratio metrics only"),
    ("safe-rate-either", lambda p: settings(p, 0).update(direction="either"), "needs direction: increase"),
    ("tolerance-on-p99", lambda p: settings(p, 1).update(toleranceOn="p99"), "'p99' is not one of quantile"),
    ("safe-rate-1", lambda p: settings(p, 0).update(safeRate=1), "it must be < 1"),
    ("safe-rate-0", lambda p: settings(p, 0).update(safeRate=0), "it must be > 0"),
    ("safe-rate-text", lambda p: settings(p, 0).update(safeRate="1%"), "'1%' is not a number"),
    ("empty-range", lambda p: settings(p, 0).update(thresholdRange={}), "needs min, max or both"),
    ("range-order", lambda p: settings(p, 0).update(thresholdRange={"min": 5, "max": 1}), "is above max"),
    ("outlier-factor-0", lambda p: settings(p, 0).update(outliers={"outlierFactor": 0}), "it must be > 0"),
    ("series-in-sequential", lambda p: config(p)["metrics"].append(SERIES), "judged from range-query points"),
    ("counts-in-kayenta", lambda p: config(p).update(judge={"name": "NetflixACAJudge-v1.0"}),
     "set judge.name to sequential-v1"),
    ("ratio-and-histogram", lambda p: metric(p, 0)["query"].update(histogram={"buckets": "b"}),
     "give ratio or histogram, not both"),
    ("ratio-and-query", lambda p: metric(p, 0)["query"].update(metricName="errors"), "remove metricName"),
    ("metrics-not-a-list", lambda p: config(p).update(metrics="cpu"), "'cpu' is not a list"),
    ("metric-without-name", lambda p: metric(p, 1).pop("name"), "name: required key is missing"),
    ("split-alpha-1", lambda p: config(p).update(guards={"splitAlpha": 1}), "it must be < 1"),
    ("group-weight-text", lambda p: config(p).update(classifier={"groupWeights": {"g": "lots"}}),
     "'lots' is not a number"),
    ("empty-counter", lambda p: metric(p, 0)["query"]["ratio"].update(events=""), "must not be empty"),
    # -- the policy itself ---------------------------------------------------------------------------
    ("inline-and-ref", lambda p: p["spec"].update(canaryConfigRef={"name": "c"}), "exactly one of canaryConfig"),
    ("no-canary-config", lambda p: p["spec"].pop("canaryConfig"), "exactly one of canaryConfig"),
    ("canary-config-path", lambda p: release(p).update(canary_config="c.yaml"), "spec.release.canary_config"),
    ("no-release", lambda p: p["spec"].pop("release"), "spec.release: required"),
]

#: canary.config.policy.NOT_IN_SCHEMA, case by case: the API server accepts these, the strict
#: loader refuses them when a release reads the policy.
#: Valid changes: the API server and the loader accept both.
VALID: list[tuple[str, Change]] = [
    ("gateway-api", lambda p: k8s(p).update(router={"kind": "gateway-api", "http_route": "shop", "rule": "main",
                                                    "service": "shop-web"})),
    ("gateway-api-rule-index", lambda p: k8s(p).update(router={"kind": "gateway-api", "rule": 1})),
]

ACCEPTED_BY_THE_API: list[Case] = [
    ("prometheus-query-typo", lambda p: metric(p, 0)["query"].update(metricname="x"), "unknown key 'metricname'"),
    ("lifetime-0s", lambda p: analysis(p).update(lifetime="0s"), "lifetime must be longer than 0"),
    ("step-1.5s", lambda p: analysis(p).update(step="1.5s"), "step must be a whole number"),
    ("sequential-lookback", lambda p: analysis(p).update(lookback="5m"), "sequential judge"),
]
