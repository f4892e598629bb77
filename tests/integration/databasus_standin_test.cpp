// Pins each behaviour of the Databasus API stand-in to what Databasus' backend
// does (the citations are in databasus_standin.h).
#include <gtest/gtest.h>

#include <cpprest/http_client.h>

#include "databasus_standin.h"

using nlohmann::json;
using testing_support::DatabasusStandin;

namespace {

struct Answer {
  int status;
  json body;
};

Answer call(const DatabasusStandin& d, const std::string& method, const std::string& path, const json* body,
            const std::string& token = "") {
  web::http::client::http_client client(d.api());
  web::http::http_request req(method);
  req.set_request_uri(path);
  if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
  if (body) req.set_body(body->dump(), "application/json");
  auto resp = client.request(req).get();
  return {resp.status_code(), json::parse(resp.extract_utf8string(true).get(), nullptr, false)};
}

TEST(DatabasusStandin, SignInAnswersAsUserControllerSignIn) {
  DatabasusStandin d;
  struct Row {
    const char* what;
    json body;
    int status;
    const char* key;  // a key the answer has
  } rows[] = {
      {"right credentials: SignInResponseDTO", {{"email", DatabasusStandin::kEmail}, {"password", DatabasusStandin::kPassword}}, 200, "token"},
      {"wrong password: 400, not 401", {{"email", DatabasusStandin::kEmail}, {"password", "nope"}}, 400, "error"},
      {"no password: binding required", {{"email", DatabasusStandin::kEmail}}, 400, "error"},
      {"no email: binding required", {{"password", DatabasusStandin::kPassword}}, 400, "error"},
  };
  for (const auto& r : rows) {
    const auto a = call(d, "POST", "/users/signin", &r.body);
    EXPECT_EQ(a.status, r.status) << r.what;
    EXPECT_TRUE(a.body.contains(r.key)) << r.what << ": " << a.body;
  }
  const json ok = {{"email", DatabasusStandin::kEmail}, {"password", DatabasusStandin::kPassword}};
  const auto a = call(d, "POST", "/users/signin", &ok);
  EXPECT_EQ(a.body["email"], DatabasusStandin::kEmail);
  EXPECT_TRUE(a.body.contains("userId"));
  // With an emailed second factor: a pending sign-in and no token.
  d.require_second_factor(true);
  const auto pending = call(d, "POST", "/users/signin", &ok);
  EXPECT_EQ(pending.status, 200);
  EXPECT_TRUE(pending.body.contains("pendingSignInId"));
  EXPECT_FALSE(pending.body.contains("token"));
}

TEST(DatabasusStandin, SignInIsLimitedToTenAMinutePerEmail) {
  DatabasusStandin d;
  const json wrong = {{"email", "someone@example.org"}, {"password", "nope"}};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(call(d, "POST", "/users/signin", &wrong).status, 400) << i;
  EXPECT_EQ(call(d, "POST", "/users/signin", &wrong).status, 429);
  // Another email has its own count.
  const json ok = {{"email", DatabasusStandin::kEmail}, {"password", DatabasusStandin::kPassword}};
  EXPECT_EQ(call(d, "POST", "/users/signin", &ok).status, 200);
}

TEST(DatabasusStandin, DatabasesAnswerAsTheDatabaseController) {
  DatabasusStandin d;
  EXPECT_EQ(call(d, "GET", "/workspaces", nullptr).status, 401) << "protected routes need the bearer token";
  const json ws_body = {{"name", "backup-operator"}};
  const auto ws = call(d, "POST", "/workspaces", &ws_body, "tok-1");
  ASSERT_EQ(ws.status, 200);
  json db = {{"name", "supabase/db"}, {"type", "POSTGRES"}, {"workspaceId", ws.body["id"]}};
  const auto created = call(d, "POST", "/databases/create", &db, "tok-1");
  EXPECT_EQ(created.status, 201) << "Test_CreateDatabase_PermissionsEnforced: http.StatusCreated";
  const std::string id = created.body.value("id", "");
  EXPECT_EQ(call(d, "GET", "/databases/" + id, nullptr, "tok-1").status, 200);
  db["id"] = id;
  EXPECT_EQ(call(d, "POST", "/databases/update", &db, "tok-1").status, 200);
  json elsewhere = db;
  elsewhere["workspaceId"] = "not-mine";
  const auto refused = call(d, "POST", "/databases/update", &elsewhere, "tok-1");
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.value("error", "").find("insufficient permissions"), std::string::npos);
  elsewhere.erase("id");
  EXPECT_EQ(call(d, "POST", "/databases/create", &elsewhere, "tok-1").status, 400);
}

}  // namespace
