// Building blocks for collectables that read their figures at scrape time (prometheus::Collectable::Collect).
#ifndef ABODE_METRICS_FAMILY_H_
#define ABODE_METRICS_FAMILY_H_

#include <string>
#include <utility>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

namespace abode::metrics {

// One sample; the family's type decides whether the gauge or the counter value is read.
inline prometheus::ClientMetric Sample(double value, std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  m.counter.value = value;
  return m;
}

inline prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type,
                                       std::vector<prometheus::ClientMetric> samples) {
  return prometheus::MetricFamily{std::move(name), std::move(help), type, std::move(samples)};
}

}  // namespace abode::metrics

#endif  // ABODE_METRICS_FAMILY_H_
