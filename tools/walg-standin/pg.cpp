#include "pg.h"

#include <libpq-fe.h>

#include "common.h"

namespace walg {

PgConnection::PgConnection() {
  conn_ = PQconnectdb("");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn_);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    PQfinish(conn_);
    conn_ = nullptr;
    throw Failure{"failed to connect to PostgreSQL: " + msg};
  }
}

PgConnection::~PgConnection() {
  if (conn_) PQfinish(conn_);
}

std::vector<Row> PgConnection::query(const std::string& sql, const std::vector<std::string>& params,
                                     const std::string& what) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  PGresult* res = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                               nullptr, 0);
  const auto status = PQresultStatus(res);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    std::string msg = PQresultErrorMessage(res);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    PQclear(res);
    throw Failure{what + ": " + msg};
  }
  std::vector<Row> rows;
  for (int r = 0; r < PQntuples(res); ++r) {
    Row row;
    for (int c = 0; c < PQnfields(res); ++c)
      row.push_back(PQgetisnull(res, r, c) ? std::nullopt : std::optional<std::string>(PQgetvalue(res, r, c)));
    rows.push_back(std::move(row));
  }
  PQclear(res);
  return rows;
}

std::string PgConnection::value(const std::string& sql, const std::vector<std::string>& params, const std::string& what) {
  auto rows = query(sql, params, what);
  if (rows.size() != 1 || rows[0].empty() || !rows[0][0]) throw Failure{what + ": expected one value"};
  return *rows[0][0];
}

}  // namespace walg
