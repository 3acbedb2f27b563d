#include "storage/rows.h"

#include "domain/address.h"
#include "domain/validation.h"

namespace abode::storage {

using domain::DecodeLabels;
using domain::IpAddress;
namespace {

std::string AddressText(absl::string_view bytes) {
  auto a = IpAddress::FromBytes(bytes);
  return a.ok() ? a->ToString() : std::string();
}

}  // namespace

void AllocationFromRow(const Statement& row, int c, const PoolFacts& pool, v1::Allocation* out) {
  out->set_pool(pool.name);
  out->set_prefix_length(pool.prefix_length);
  out->set_gateway(pool.gateway);
  out->set_network(std::string(row.Text(c + 2)));
  out->set_address(AddressText(row.Blob(c + 3)));
  out->set_owner(std::string(row.Text(c + 4)));
  out->set_node(std::string(row.Text(c + 5)));
  for (auto& [k, v] : DecodeLabels(row.Text(c + 6))) (*out->mutable_labels())[k] = v;
  out->set_ttl_seconds(row.Int(c + 7));
  out->set_expire_time_unix_ms(row.Int(c + 8));
  out->set_create_time_unix_ms(row.Int(c + 9));
  out->set_create_revision(static_cast<uint64_t>(row.Int(c + 10)));
  out->set_revision(static_cast<uint64_t>(row.Int(c + 11)));
}

void HistoryFromRow(const Statement& row, int c, v1::HistoryEntry* out) {
  out->set_network(std::string(row.Text(c + 1)));
  out->set_address(AddressText(row.Blob(c + 2)));
  out->set_pool(std::string(row.Text(c + 3)));
  out->set_owner(std::string(row.Text(c + 4)));
  out->set_node(std::string(row.Text(c + 5)));
  out->set_from_time_unix_ms(row.Int(c + 6));
  out->set_to_time_unix_ms(row.Int(c + 7));
  out->set_from_revision(static_cast<uint64_t>(row.Int(c + 8)));
  out->set_to_revision(static_cast<uint64_t>(row.Int(c + 9)));
  out->set_end_reason(std::string(row.Text(c + 10)));
}

}  // namespace abode::storage
