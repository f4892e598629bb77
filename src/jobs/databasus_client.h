// Registers the policy's database in Databasus through Databasus' REST API
// (as of Databasus 3.x: POST /users/signin, GET|POST /workspaces,
// GET /databases/{id}, POST /databases/create|update under /api/v1), from
// the metadata sidecar in the Databasus pod: it reaches Databasus on
// 127.0.0.1, so no Service is ever needed. Idempotent: the ids it made are
// kept and reused, so a restart updates rather than duplicates.
#pragma once
#include <expected>
#include <string>

namespace bo::jobs {

struct DatabasusRegistration {
  std::string workspace_id, database_id;
};

struct DatabaseDescription {
  std::string name;  // <namespace>/<policy>
  std::string host, database, user, password;
  int port = 5432;
};

inline constexpr const char* kDatabasusWorkspace = "backup-operator";

// Errors name the step and Databasus' status, never a credential.
[[nodiscard]] std::expected<DatabasusRegistration, std::string> register_database(
    const std::string& api_base, const std::string& admin_email, const std::string& admin_password,
    const DatabaseDescription& db, const DatabasusRegistration& previous);

}  // namespace bo::jobs
