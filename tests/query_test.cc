#include <string>

#include <gtest/gtest.h>

#include "api/query.h"
#include "api/routes.h"
#include "index/paths.h"

namespace dirindex {
namespace {

using std::chrono::milliseconds;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(PercentDecode, DecodesEscapesIntoBytes) {
  EXPECT_EQ(PercentDecode("a%20b", true).value(), "a b");
  EXPECT_EQ(PercentDecode("a+b", true).value(), "a b");
  EXPECT_EQ(PercentDecode("a+b", false).value(), "a+b");
  EXPECT_EQ(PercentDecode("%2B%2b", true).value(), "++");
  EXPECT_EQ(PercentDecode("%ff%FE", true).value(), "\xff\xfe");
  EXPECT_EQ(PercentDecode("%00", true).value(), std::string(1, '\0'));
  EXPECT_EQ(PercentDecode("", true).value(), "");
}

TEST(PercentDecode, RejectsBrokenEscapes) {
  for (const char* text : {"%", "%4", "a%zz", "%g0", "abc%"}) {
    EXPECT_FALSE(PercentDecode(text, true).has_value()) << text;
  }
}

TEST(PercentEncode, RoundTripsEveryByte) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all.push_back(static_cast<char>(byte));
  std::string encoded = PercentEncode(all);
  for (char c : encoded) {
    bool safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                c == '~' || c == '%';
    EXPECT_TRUE(safe) << "unescaped byte " << static_cast<int>(c);
  }
  EXPECT_EQ(PercentDecode(encoded, true).value(), all);
}

TEST(SplitTarget, SplitsAtFirstQuestionMark) {
  RequestTarget plain = SplitTarget("/v1/roots");
  EXPECT_EQ(plain.path, "/v1/roots");
  EXPECT_EQ(plain.query, "");
  RequestTarget with_query = SplitTarget("/a?b=c?d");
  EXPECT_EQ(with_query.path, "/a");
  EXPECT_EQ(with_query.query, "b=c?d");
}

TEST(ParseQuery, RejectsUnknownAndRepeatedNames) {
  Result<QueryParams> unknown = ParseQuery("sinse=x", {"since", "limit"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(Contains(unknown.status().message(), "'sinse'"));
  EXPECT_TRUE(Contains(unknown.status().message(), "since, limit"));

  Result<QueryParams> twice = ParseQuery("limit=1&limit=2", {"limit"});
  ASSERT_FALSE(twice.ok());
  EXPECT_TRUE(Contains(twice.status().message(), "twice"));

  Result<QueryParams> broken = ParseQuery("limit=%zz", {"limit"});
  ASSERT_FALSE(broken.ok());
  EXPECT_TRUE(Contains(broken.status().message(), "%25"));
}

TEST(ParseQuery, SkipsEmptyPairsAndKeepsOrder) {
  Result<QueryParams> params = ParseQuery("&a=1&&b&c=x%3Dy&", {"a", "b", "c"});
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  ASSERT_EQ(params->size(), 3u);
  EXPECT_EQ((*params)[0], (std::pair<std::string, std::string>("a", "1")));
  EXPECT_EQ((*params)[1], (std::pair<std::string, std::string>("b", "")));
  EXPECT_EQ((*params)[2], (std::pair<std::string, std::string>("c", "x=y")));
}

TEST(ParseChangesQuery, AppliesDefaults) {
  Result<ChangesParams> params = ParseChangesQuery("");
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->since, "");
  EXPECT_EQ(params->limit, kDefaultLimit);
  EXPECT_EQ(params->wait, milliseconds(0));
  EXPECT_EQ(params->prefix, "");
}

TEST(ParseChangesQuery, ReadsEveryParameter) {
  Result<ChangesParams> params =
      ParseChangesQuery("since=abc-_%3D&limit=25&wait=2.5&prefix=in%2Fbox%2F");
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ(params->since, "abc-_=");
  EXPECT_EQ(params->limit, 25u);
  EXPECT_EQ(params->wait, milliseconds(2500));
  EXPECT_EQ(params->prefix, "in/box/");
}

TEST(ParseLimit, AcceptsBoundsOnly) {
  EXPECT_EQ(ParseLimit("1").value(), 1u);
  EXPECT_EQ(ParseLimit("10000").value(), 10'000u);
  for (const char* text : {"0", "-1", "10001", "abc", "", "1.5", " 5", "5 ",
                           "99999999999999999999999", "0x10"}) {
    Result<size_t> limit = ParseLimit(text);
    ASSERT_FALSE(limit.ok()) << "accepted '" << text << "'";
    EXPECT_TRUE(Contains(limit.status().message(), "limit"));
    EXPECT_TRUE(Contains(limit.status().message(), "1 to 10000"));
  }
}

TEST(ParseWait, AcceptsSecondsWithDecimals) {
  EXPECT_EQ(ParseWait("0").value(), milliseconds(0));
  EXPECT_EQ(ParseWait("30").value(), milliseconds(30'000));
  EXPECT_EQ(ParseWait("0.5").value(), milliseconds(500));
  EXPECT_EQ(ParseWait("1.25").value(), milliseconds(1250));
  EXPECT_EQ(ParseWait("300").value(), milliseconds(300'000));
  EXPECT_EQ(ParseWait("300.000").value(), milliseconds(300'000));
}

TEST(ParseWait, RejectsOutOfRangeAndNonNumbers) {
  for (const char* text : {"301", "300.001", "-1", "abc", "", "1.", ".5",
                           "1.2345", "1e3", "9999999999", "+5"}) {
    Result<milliseconds> wait = ParseWait(text);
    ASSERT_FALSE(wait.ok()) << "accepted '" << text << "'";
    EXPECT_TRUE(Contains(wait.status().message(), "wait"));
    EXPECT_TRUE(Contains(wait.status().message(), "0 to 300"));
  }
}

TEST(ValidatePrefix, AcceptsRelativePathsWithTrailingSlash) {
  for (const char* prefix : {"", "a", "a/", "a/b", "a/b/", "a.b", "..a"}) {
    EXPECT_TRUE(ValidatePrefix(prefix).ok()) << prefix;
  }
}

TEST(ValidatePrefix, RejectsEscapesAndAbsolutePaths) {
  for (const char* prefix :
       {"/", "/etc", "..", "../x", "a/../b", "a//b", "./a", "a//"}) {
    EXPECT_FALSE(ValidatePrefix(prefix).ok()) << prefix;
  }
  EXPECT_FALSE(ValidatePrefix(std::string("a\0b", 3)).ok());
}

TEST(ParseChangesQuery, RejectsEncodedEscapes) {
  for (const char* query : {"prefix=..", "prefix=%2e%2e", "prefix=%2E%2E%2Fx",
                            "prefix=%2Fetc", "prefix=a%00b", "prefix=a/../b"}) {
    Result<ChangesParams> params = ParseChangesQuery(query);
    ASSERT_FALSE(params.ok()) << "accepted " << query;
    EXPECT_EQ(params.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(params.status().message(), "prefix")) << query;
  }
}

TEST(ParseChangesQuery, RejectsBadLimitAndWait) {
  EXPECT_FALSE(ParseChangesQuery("limit=0").ok());
  EXPECT_FALSE(ParseChangesQuery("limit=huge").ok());
  EXPECT_FALSE(ParseChangesQuery("wait=-3").ok());
  EXPECT_FALSE(ParseChangesQuery("wait=forever").ok());
}

TEST(ParseStatQuery, DecodesPathOrBase64) {
  EXPECT_EQ(ParseStatQuery("path=dir%2Fa+b.xml").value(), "dir/a b.xml");
  EXPECT_EQ(ParseStatQuery("path=caf%C3%A9").value(), "caf\xc3\xa9");
  EXPECT_EQ(ParseStatQuery("path=bad%FFname").value(), "bad\xffname");
  std::string raw = "dir/\xff\xfe";
  EXPECT_EQ(
      ParseStatQuery("path_b64=" + PercentEncode(Base64Encode(raw))).value(),
      raw);
}

TEST(ParseStatQuery, RejectsMissingAmbiguousAndUnsafePaths) {
  for (const char* query :
       {"", "path=", "path=a&path_b64=YQ==", "path=..", "path=%2e%2e",
        "path=%2Fetc%2Fpasswd", "path=a%00b", "path=a/../../b", "path_b64=***",
        "path_b64=Li4="}) {
    Result<std::string> path = ParseStatQuery(query);
    ASSERT_FALSE(path.ok()) << "accepted " << query;
    EXPECT_EQ(path.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(ParseFilesQuery, ReadsEveryParameter) {
  Result<FilesQuery> query =
      ParseFilesQuery("prefix=in%2F&glob=*.xml&after=tok&limit=5");
  ASSERT_TRUE(query.ok()) << query.status().ToString();
  EXPECT_EQ(query->prefix, "in/");
  EXPECT_EQ(query->glob, "*.xml");
  EXPECT_EQ(query->after, "tok");
  EXPECT_EQ(query->limit, 5u);
  EXPECT_EQ(ParseFilesQuery("").value().limit, kDefaultLimit);
  EXPECT_FALSE(ParseFilesQuery("prefix=..").ok());
  EXPECT_FALSE(ParseFilesQuery("glob=a%00").ok());
  EXPECT_FALSE(ParseFilesQuery("limit=0").ok());
}

TEST(ParseRescanQuery, ReadsFull) {
  EXPECT_FALSE(ParseRescanQuery("").value());
  EXPECT_TRUE(ParseRescanQuery("full=1").value());
  EXPECT_TRUE(ParseRescanQuery("full=true").value());
  EXPECT_FALSE(ParseRescanQuery("full=0").value());
  Result<bool> bad = ParseRescanQuery("full=yes");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(bad.status().message(), "full=1"));
}

TEST(ParseEmptyQuery, RejectsAnyParameter) {
  EXPECT_TRUE(ParseEmptyQuery("").ok());
  EXPECT_FALSE(ParseEmptyQuery("x=1").ok());
}

TEST(MatchRoute, MatchesEveryRoute) {
  EXPECT_EQ(MatchRoute("/v1/roots").route, Route::kRoots);
  EXPECT_EQ(MatchRoute("/healthz").route, Route::kHealthz);
  EXPECT_EQ(MatchRoute("/metrics").route, Route::kMetrics);

  RouteMatch root = MatchRoute("/v1/roots/invoices");
  EXPECT_EQ(root.route, Route::kRoot);
  EXPECT_EQ(root.root, "invoices");
  EXPECT_EQ(MatchRoute("/v1/roots/a/changes").route, Route::kChanges);
  EXPECT_EQ(MatchRoute("/v1/roots/a/files").route, Route::kFiles);
  EXPECT_EQ(MatchRoute("/v1/roots/a/stat").route, Route::kStat);
  EXPECT_EQ(MatchRoute("/v1/roots/a/rescan").route, Route::kRescan);
  EXPECT_EQ(MatchRoute("/v1/roots/a%2Db/changes").root, "a-b");
}

TEST(MatchRoute, RejectsOtherPaths) {
  for (const char* path :
       {"/", "/v1", "/v1/roots/", "/v1/roots//changes", "/v1/roots/a/other",
        "/v1/roots/a/changes/x", "/v2/roots", "/v1/roots/a%zz", "/healthz/"}) {
    EXPECT_EQ(MatchRoute(path).route, Route::kNone) << path;
  }
}

TEST(RouteTemplate, NamesRouteAndMethod) {
  EXPECT_EQ(RouteTemplate(Route::kChanges), "/v1/roots/{root}/changes");
  EXPECT_EQ(RouteTemplate(Route::kNone), "unmatched");
  EXPECT_EQ(RouteMethod(Route::kRescan), "POST");
  EXPECT_EQ(RouteMethod(Route::kStat), "GET");
}

}  // namespace
}  // namespace dirindex
