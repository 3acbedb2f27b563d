// CNI error values: the codes of the CNI specification (1.1) and abode's own (100 and above), and the error
// JSON a plugin prints. The plugin binary links no gRPC and no abseil (every library it loads costs exec
// time on each pod ADD), so this small value type is the error of the plugin side.
#ifndef ABODE_CNI_CNI_ERROR_H_
#define ABODE_CNI_CNI_ERROR_H_

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace abode::cni {

// Codes from the CNI specification.
inline constexpr int kIncompatibleVersion = 1;
inline constexpr int kUnsupportedField = 2;
inline constexpr int kUnknownContainer = 3;
inline constexpr int kInvalidEnvironment = 4;
inline constexpr int kIoFailure = 5;
inline constexpr int kDecodeFailure = 6;
inline constexpr int kInvalidConfig = 7;
inline constexpr int kTryAgainLater = 11;
inline constexpr int kNotAvailable = 50;  // STATUS: the plugin cannot serve ADD now
// abode's own.
inline constexpr int kPoolExhausted = 100;
inline constexpr int kAddressTaken = 101;
inline constexpr int kCheckFailed = 102;
inline constexpr int kAllocatorRefused = 103;
inline constexpr int kNodeInternal = 104;

struct CniError {
  int code = 0;
  std::string msg;
  std::string details;
};

// The error JSON of the specification: {"cniVersion", "code", "msg", "details"}.
std::string ErrorJson(const CniError& error, const std::string& cni_version);

// A value or a CniError.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit, like absl::StatusOr
  Result(CniError error) : v_(std::move(error)) {}     // NOLINT
  bool ok() const { return v_.index() == 0; }
  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  const CniError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, CniError> v_;
};

// Success or a CniError.
using Outcome = std::optional<CniError>;

}  // namespace abode::cni

#endif  // ABODE_CNI_CNI_ERROR_H_
