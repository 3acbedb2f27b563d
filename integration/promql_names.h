// The metric names a PromQL expression reads, for checking a dashboard's queries against a live /metrics
// scrape. A tokenizer, not a full parser: it skips strings, numbers and durations, range and subquery brackets,
// label matchers, the label lists of by/without/on/ignoring/group_left/group_right, operators and keywords, and
// the names of functions and aggregations (an identifier followed by "(", or an aggregation followed by
// by/without); every other identifier is a metric name. A {__name__="x"} matcher names x. Grafana's template
// variables ($x, ${x}, [[x]]) are skipped wherever they stand.
#ifndef ABODE_INTEGRATION_PROMQL_NAMES_H_
#define ABODE_INTEGRATION_PROMQL_NAMES_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace abode::integration {

// INVALID_ARGUMENT for an unterminated string, bracket or brace, or unbalanced parentheses.
absl::StatusOr<std::set<std::string>> PromqlMetricNames(const std::string& expression);

// The metric names of a Grafana query variable's query: label_values(EXPR, label), label_values(label),
// metrics(regex) and query_result(EXPR) name what their EXPR names; anything else is PromQL.
absl::StatusOr<std::set<std::string>> GrafanaVariableMetricNames(const std::string& query);

}  // namespace abode::integration

#endif  // ABODE_INTEGRATION_PROMQL_NAMES_H_
