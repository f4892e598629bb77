// A stand-in for the part of Databasus' REST API the metadata sidecar calls
// (src/jobs/databasus_client.h). Databasus' image cannot be pulled here, so its
// HTTP API is one of the three allowed stand-ins. Each behaviour below is taken
// from Databasus' own backend (github.com/databasus/databasus, backend/) and is
// pinned by DatabasusStandin.* in databasus_standin_test.cpp:
//
// - Routes sit under /api/v1 (controller_test.go calls "/api/v1/databases/create").
// - POST /users/signin (users/controllers/user_controller.go, RegisterRoutes and
//   SignIn): the body is SignInRequestDTO {email, password}, both `binding:
//   "required"` (users/dto/dto.go), so a body without either is 400 {"error":
//   "Invalid request format"}; a refused sign-in is 400 {"error": err} (the
//   default branch of respondToSignInError), never 401; at most 10 attempts a
//   minute per email (checkRateLimitOrRespond, Limit 10, Window time.Minute),
//   then 429; success is 200 SignInResponseDTO {userId, email, token}; when the
//   instance asks for an emailed second factor, 200 PendingSignInResponseDTO
//   {pendingSignInId, email} and no token.
// - POST /databases/create answers 201 with the Database, POST /databases/update
//   200, GET /databases/{id} 200 (databases/controller_test.go:
//   Test_CreateDatabase_PermissionsEnforced expects http.StatusCreated,
//   Test_UpdateDatabase_* and Test_GetDatabase_* http.StatusOK); a caller without
//   rights gets 400 with "insufficient permissions" in its error.
//
// Not taken from upstream's source, because its workspace controller and the
// answer to a GET of an unknown database id were not available to read here:
// GET /workspaces answering {"workspaces": [...]}, POST /workspaces answering
// the workspace, and 404 {"error": "record not found"} for an unknown id. The
// client treats only 404 as "gone", so a different answer there fails loudly
// ("read database ...: Databasus answered HTTP ...") rather than duplicating.
#pragma once
#include <cpprest/http_listener.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/listener_port.h"
#include "harness.h"

namespace testing_support {

class DatabasusStandin {
 public:
  using json = nlohmann::json;
  static constexpr const char* kEmail = "admin@example.org";
  static constexpr const char* kPassword = "CANARY-admin-pw-5";

  DatabasusStandin() {
    auto bound = bo::open_listener("127.0.0.1:0", [this](const std::string& host_port) {
      auto l = std::make_unique<web::http::experimental::listener::http_listener>("http://" + host_port + "/api/v1");
      l->support([this](web::http::http_request req) { handle(req); });
      return l;
    });
    if (!bound) throw std::runtime_error("DatabasusStandin: " + bound.error());
    listener_ = std::move(bound->listener);
    port_ = bound->port;
  }
  ~DatabasusStandin() { listener_->close().wait(); }
  [[nodiscard]] std::string api() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v1"; }
  std::vector<std::pair<std::string, json>> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void forget_database() {
    std::lock_guard lock(mu_);
    databases_.clear();
  }
  // The instance setting IsTwoFactorAuthRequired (users/dto/dto.go SettingsResponseDTO).
  void require_second_factor(bool on) {
    std::lock_guard lock(mu_);
    second_factor_ = on;
  }

 private:
  void handle(web::http::http_request req) {
    const std::string path = req.relative_uri().path();
    const std::string method = req.method();
    const json body = json::parse(req.extract_utf8string(true).get(), nullptr, false);
    std::lock_guard lock(mu_);
    calls_.emplace_back(method + " " + path, body);
    auto reply = [&](int code, const json& j) { req.reply(code, j.dump(), "application/json").wait(); };
    if (method == "POST" && path == "/users/signin") {
      if (!body.is_object() || !body.contains("email") || !body.contains("password") || !body["email"].is_string() ||
          !body["password"].is_string() || body["email"].get<std::string>().empty() ||
          body["password"].get<std::string>().empty())
        return reply(400, {{"error", "Invalid request format"}});
      auto& attempts = signins_[body["email"].get<std::string>()];
      const auto now = std::chrono::steady_clock::now();
      std::erase_if(attempts, [&](auto t) { return now - t >= std::chrono::minutes(1); });
      if (attempts.size() >= 10) return reply(429, {{"error", "Rate limit exceeded. Please try again later."}});
      attempts.push_back(now);
      if (body["email"] != kEmail || body["password"] != kPassword)
        return reply(400, {{"error", "user with this email and password not found"}});
      if (second_factor_) return reply(200, {{"pendingSignInId", "5b0c1f3e-0000-4000-8000-000000000001"}, {"email", kEmail}});
      return reply(200, {{"userId", "5b0c1f3e-0000-4000-8000-0000000000a1"}, {"email", kEmail}, {"token", "tok-1"}});
    }
    if (req.headers().find("Authorization") == req.headers().end() || req.headers()["Authorization"] != "Bearer tok-1")
      return reply(401, {{"error", "User not authenticated"}});
    if (method == "GET" && path == "/workspaces") return reply(200, {{"workspaces", workspaces_}});
    if (method == "POST" && path == "/workspaces") {
      json w = {{"id", "ws-" + std::to_string(workspaces_.size() + 1)}, {"name", body.value("name", "")}};
      workspaces_.push_back(w);
      return reply(200, w);
    }
    const bool in_workspace = body.is_object() && [&] {
      for (const auto& w : workspaces_)
        if (w["id"] == body.value("workspaceId", "")) return true;
      return false;
    }();
    if (method == "POST" && path == "/databases/create") {
      if (!in_workspace) return reply(400, {{"error", "insufficient permissions to create database in this workspace"}});
      json d = body;
      d["id"] = "db-" + std::to_string(++made_);
      databases_[d["id"]] = d;
      return reply(201, d);
    }
    if (method == "POST" && path == "/databases/update") {
      if (!databases_.count(body.value("id", ""))) return reply(404, {{"error", "record not found"}});
      if (!in_workspace) return reply(400, {{"error", "insufficient permissions to update database"}});
      databases_[body["id"]] = body;
      return reply(200, body);
    }
    if (method == "GET" && path.starts_with("/databases/")) {
      const std::string id = path.substr(11);
      if (!databases_.count(id)) return reply(404, {{"error", "record not found"}});
      return reply(200, databases_[id]);
    }
    reply(404, {{"error", "no route"}});
  }

  int port_ = 0;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener_;
  std::mutex mu_;
  std::vector<std::pair<std::string, json>> calls_;
  json workspaces_ = json::array();
  std::map<std::string, json> databases_;
  std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> signins_;
  bool second_factor_ = false;
  int made_ = 0;
};

}  // namespace testing_support
