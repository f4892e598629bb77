#include "jobs/databasus_client.h"

#include <cpprest/http_client.h>

#include <nlohmann/json.hpp>

namespace bo::jobs {
namespace {

using json = nlohmann::json;

struct Response {
  int status = 0;
  json body;
};

class Api {
 public:
  explicit Api(const std::string& base) : client_(utility::conversions::to_string_t(base), config()) {}

  std::expected<Response, std::string> call(const std::string& method, const std::string& path, const json* body,
                                            const std::string& what) {
    try {
      web::http::http_request req(utility::conversions::to_string_t(method));
      req.set_request_uri(utility::conversions::to_string_t(path));
      if (!token_.empty()) req.headers().add("Authorization", "Bearer " + token_);
      if (body) req.set_body(body->dump(), "application/json");
      auto resp = client_.request(req).get();
      Response r;
      r.status = resp.status_code();
      const std::string text = resp.extract_utf8string(true).get();
      r.body = json::parse(text, nullptr, false);
      return r;
    } catch (const std::exception& e) {
      return std::unexpected(what + ": " + e.what());
    }
  }
  void set_token(std::string t) { token_ = std::move(t); }

 private:
  static web::http::client::http_client_config config() {
    web::http::client::http_client_config c;
    c.set_timeout(std::chrono::seconds(15));
    return c;
  }
  web::http::client::http_client client_;
  std::string token_;
};

std::string failure(const std::string& what, const Response& r) {
  std::string msg = what + ": Databasus answered HTTP " + std::to_string(r.status);
  if (r.body.is_object())
    for (const char* k : {"error", "message"})
      if (r.body.contains(k) && r.body[k].is_string()) msg += " (" + r.body[k].get<std::string>().substr(0, 200) + ")";
  return msg;
}

}  // namespace

std::expected<DatabasusRegistration, std::string> register_database(const std::string& api_base,
                                                                    const std::string& admin_email,
                                                                    const std::string& admin_password,
                                                                    const DatabaseDescription& db,
                                                                    const DatabasusRegistration& previous) {
  Api api(api_base);
  const json signin = {{"email", admin_email}, {"password", admin_password}};
  auto r = api.call("POST", "/users/signin", &signin, "sign in");
  if (!r) return std::unexpected(r.error());
  // users_controller.go SignIn: 200 with a token, or 200 with a pending sign-in
  // when the instance asks for an emailed second factor; a refusal is 400.
  if (r->status == 200 && r->body.is_object() && r->body.contains("pendingSignInId") && !r->body.contains("token"))
    return std::unexpected("sign in as " + admin_email +
                           ": Databasus asks for an emailed sign-in code (two-factor sign-in is required on this "
                           "instance), which the sidecar cannot answer; register the database by hand or turn it off");
  if (r->status != 200 || !r->body.is_object() || !r->body.value("token", json()).is_string())
    return std::unexpected(failure("sign in as " + admin_email, *r));
  api.set_token(r->body["token"]);

  DatabasusRegistration out = previous;
  // The workspace: the one recorded, else the one named backup-operator, else a new one.
  r = api.call("GET", "/workspaces", nullptr, "list workspaces");
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) return std::unexpected(failure("list workspaces", *r));
  bool have_workspace = false;
  const json list = r->body.is_object() ? r->body.value("workspaces", json::array()) : json::array();
  for (const auto& w : list)
    if (w.is_object() && ((!out.workspace_id.empty() && w.value("id", "") == out.workspace_id) ||
                          (out.workspace_id.empty() && w.value("name", "") == kDatabasusWorkspace))) {
      out.workspace_id = w.value("id", "");
      have_workspace = true;
      break;
    }
  if (!have_workspace) {
    const json body = {{"name", kDatabasusWorkspace}};
    r = api.call("POST", "/workspaces", &body, "create workspace");
    if (!r) return std::unexpected(r.error());
    if (r->status < 200 || r->status >= 300 || !r->body.is_object()) return std::unexpected(failure("create workspace", *r));
    out.workspace_id = r->body.value("id", "");
    out.database_id.clear();  // a database recorded in a vanished workspace is gone with it
  }

  json database = {{"name", db.name},
                   {"type", "POSTGRES"},
                   {"workspaceId", out.workspace_id},
                   {"postgresql", {{"host", db.host},
                                   {"port", db.port},
                                   {"database", db.database},
                                   {"username", db.user},
                                   {"password", db.password},
                                   {"isHttps", false},
                                   {"includeSchemas", json::array()}}}};
  bool exists = false;
  if (!out.database_id.empty()) {
    r = api.call("GET", "/databases/" + out.database_id, nullptr, "read database");
    if (!r) return std::unexpected(r.error());
    exists = r->status == 200;
    if (!exists && r->status != 404) return std::unexpected(failure("read database " + out.database_id, *r));
  }
  if (exists) {
    database["id"] = out.database_id;
    r = api.call("POST", "/databases/update", &database, "update database");
    if (!r) return std::unexpected(r.error());
    if (r->status < 200 || r->status >= 300) return std::unexpected(failure("update database " + out.database_id, *r));
  } else {
    r = api.call("POST", "/databases/create", &database, "create database");
    if (!r) return std::unexpected(r.error());
    if (r->status < 200 || r->status >= 300 || !r->body.is_object()) return std::unexpected(failure("create database", *r));
    out.database_id = r->body.value("id", "");
  }
  if (out.workspace_id.empty() || out.database_id.empty())
    return std::unexpected("Databasus did not return the ids it assigned");
  return out;
}

}  // namespace bo::jobs
