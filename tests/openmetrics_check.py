# SPDX-License-Identifier: MIT
"""Reads an OpenMetrics exposition on standard input with prometheus_client's
parser (Debian python3-prometheus-client), which follows the OpenMetrics
specification: UNIT lines and the names they require, "# EOF", escaping.
promtool (make metricscheck runs it too) reads the Prometheus text format,
where UNIT and EOF are mere comments.  Exits 1 naming the first error."""
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

try:
    families = list(text_string_to_metric_families(sys.stdin.read()))
except ValueError as e:
    sys.exit("openmetrics_check: %s" % e)
for f in families:
    if f.type != "gauge" or not f.documentation:
        sys.exit("openmetrics_check: %s: a gauge with a HELP expected" % f.name)
print("openmetrics_check: %d families, %d samples"
      % (len(families), sum(len(f.samples) for f in families)))
