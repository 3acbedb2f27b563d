#include "cli/json_text.h"

#include <gtest/gtest.h>

namespace abode::cli {
namespace {

TEST(JsonTextTest, SmallDecimalsAreOrdinaryNumbers) {
  EXPECT_EQ(DecimalNumber("0"), nlohmann::json(0));
  EXPECT_EQ(DecimalNumber("18446744073709551615"), nlohmann::json(18446744073709551615ull));
  EXPECT_EQ(DumpJson(DecimalNumber("254")), "254");
}

TEST(JsonTextTest, LargeDecimalsAreWrittenDigitForDigit) {
  // 2^80, the size of an IPv6 /48, and 2^128.
  EXPECT_EQ(DumpJson(DecimalNumber("1208925819614629174706176")), "1208925819614629174706176");
  EXPECT_EQ(DumpJson(DecimalNumber("340282366920938463463374607431768211456")),
            "340282366920938463463374607431768211456");
  const std::string text = DumpJson({{"size", DecimalNumber("18446744073709551616")}});
  EXPECT_EQ(text, "{\n  \"size\": 18446744073709551616\n}");
  EXPECT_TRUE(nlohmann::json::parse(text)["size"].is_number());
}

TEST(JsonTextTest, NonDecimalTextStaysAString) {
  EXPECT_EQ(DumpJson(DecimalNumber("")), "\"\"");
  EXPECT_EQ(DumpJson(DecimalNumber("12a")), "\"12a\"");
  EXPECT_EQ(DumpJson(DecimalNumber("-1")), "\"-1\"");
  EXPECT_EQ(DumpJson(DecimalNumber("0012")), "\"0012\"");
}

TEST(JsonTextTest, PrettyPrintsLikeNlohmann) {
  const nlohmann::json value = {
      {"b", nlohmann::json::array({1, "x", nullptr})},
      {"a", {{"k", true}}},
      {"e", nlohmann::json::object()},
      {"f", nlohmann::json::array()},
      {"s", "quote\" and \x01"},
  };
  EXPECT_EQ(DumpJson(value), value.dump(2));
}

TEST(JsonTextTest, OneLineLikeNlohmannCompact) {
  const nlohmann::json value = {
      {"b", nlohmann::json::array({1, "x", nullptr})},
      {"a", {{"k", true}}},
      {"e", nlohmann::json::object()},
      {"big", DecimalNumber("1208925819614629174706176")},
  };
  EXPECT_EQ(DumpJsonLine(value), R"({"a":{"k":true},"b":[1,"x",null],"big":1208925819614629174706176,"e":{}})");
}

TEST(JsonTextTest, InvalidUtf8IsReplacedNotThrown) {
  const std::string text = DumpJson(nlohmann::json("bad \xff byte"));
  EXPECT_EQ(text, "\"bad \xEF\xBF\xBD byte\"");
}

}  // namespace
}  // namespace abode::cli
