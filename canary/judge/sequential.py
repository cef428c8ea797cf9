"""Request-level, anytime-valid comparisons of canary and baseline: the default judge.

Both functions take the counts Prometheus holds, cumulative since the analysis began, and
may be called after every window with the counts so far: the chance that a canary that is
no worse than the baseline (within `tolerance`) is *ever* classified High stays at most
`alpha` over the whole release, however many looks there are. Stateless and pure; the
derivation and the assumptions are in docs/judge.md.

The idea (Lindon & Malek's counting-process test, used by Netflix for canaries): baseline
and canary receive equal traffic weights, so each request of the pair goes to the canary
with probability `split` = 1/2. Given that an *event* happened (an error; a request slower
than a bucket bound), the chance that it was the canary's is split * r / (split * r + 1 -
split), where r is the ratio of the canary's event rate to the baseline's. The labels of
events are independent coin flips with that chance, whatever the traffic does over time,
so one e-process per question (canary-labelled events vs all events) answers it without
any assumption on the latency distribution or the error rate (canary.judge.evalues).

* `compare_counts`: is the canary's event rate more than (1 + tolerance) times the
  baseline's? (or less than (1 - tolerance) times, for `direction="decrease"`)
* `compare_histograms`: is the canary slower than (1 + tolerance) times the baseline
  anywhere in the distribution? At every bucket bound b, "slower" means that a larger share
  of canary requests exceeds b than of baseline requests exceeds b / (1 + tolerance); the
  baseline's bound is rounded *down* to a bucket bound, which only makes the comparison
  stricter for the baseline, so bucket resolution costs power, never validity. The
  e-processes of all bounds (each in an "exceedances" and a "fast requests" form) are
  averaged, an average of e-processes being one.

Each result says whether the question is *decided*: a regression proven (High/Low), or the
effect proven to lie inside the tolerance (Pass, decided), or neither yet (Pass). The
second claim is an intersection of one-sided claims, each at level alpha, so it needs no
correction for multiplicity either.

The tests live in canary.judge.ratio and canary.judge.histogram (its e-processes in
canary.judge.histogram_evidence); this module gathers their public names.
"""

from canary.judge.common import format_value
from canary.judge.histogram import TOLERANCE_ON, HistogramResult, compare_histograms
from canary.judge.histogram_evidence import SAFE_RANGE, histogram_log_evidence
from canary.judge.quantiles import QUANTILES, QuantileBand
from canary.judge.ratio import CountsResult, compare_counts, ratio_log_evidence

__all__ = [
    "QUANTILES",
    "SAFE_RANGE",
    "TOLERANCE_ON",
    "CountsResult",
    "HistogramResult",
    "QuantileBand",
    "compare_counts",
    "compare_histograms",
    "format_value",
    "histogram_log_evidence",
    "ratio_log_evidence",
]
