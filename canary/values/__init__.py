"""Value types every layer shares: tracks, traffic weights, metric scopes, series and counts.

Immutable, validated on construction, and below everything else in `canary`: this package
imports nothing of the project but `canary.errors`, so the ports (`canary.ports`), the
metric adapters (`canary.metrics`), the judge and the platforms all depend on it and never
on each other for a value (an import-linter contract keeps it so).
"""
