// Runs the shipped Argo CD health checks (docs/argocd/<group>/<kind>/health.lua)
// with Debian's Lua interpreter on an object: the JSON is written as a Lua
// table literal (no JSON decoder in Lua, nothing fetched), and
// tests/argocd/driver.lua sets it as `obj` and runs the script as Argo CD does.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace testing_support {

// A Lua literal of `v`: objects as {["key"] = ...}, arrays as {...}, null as
// nil (Argo CD's JSON-to-Lua conversion leaves out nulls too).
inline std::string to_lua(const nlohmann::json& v) {
  auto quote = [](const std::string& s) {
    std::string out = "\"";
    for (unsigned char ch : s) {
      if (ch == '"' || ch == '\\') {
        out += '\\';
        out += static_cast<char>(ch);
      } else if (ch < 0x20 || ch == 0x7f) {
        // \ddd with three digits, so a digit after it is never read into it.
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\%03u", static_cast<unsigned>(ch));
        out += esc;
      } else {
        out += static_cast<char>(ch);
      }
    }
    return out + "\"";
  };
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "nil";
    case nlohmann::json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer: return std::to_string(v.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
    case nlohmann::json::value_t::number_float: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
      return buf;
    }
    case nlohmann::json::value_t::string: return quote(v.get<std::string>());
    case nlohmann::json::value_t::array: {
      std::string out = "{";
      for (const auto& e : v) out += to_lua(e) + ",";
      return out + "}";
    }
    case nlohmann::json::value_t::object: {
      std::string out = "{";
      for (const auto& [k, e] : v.items())
        if (!e.is_null()) out += "[" + quote(k) + "]=" + to_lua(e) + ",";
      return out + "}";
    }
    default: return "nil";
  }
}

struct ArgoHealth {
  std::string status, message;
  int exit_code = 0;
  std::string output;  // everything the interpreter printed (for failures)
};

// Writes `obj` to dir/<stem>.json (as served) and dir/<stem>.lua, runs the
// kind's health check on it and reads back status and message.
inline ArgoHealth argocd_health(const std::string& lua_bin, const std::string& source_dir, const nlohmann::json& obj,
                                const std::filesystem::path& dir, const std::string& stem) {
  namespace fs = std::filesystem;
  const std::string kind = obj.value("kind", "");
  const fs::path script = fs::path(source_dir) / "docs/argocd/backup.si.dev" / kind / "health.lua";
  const fs::path driver = fs::path(source_dir) / "tests/argocd/driver.lua";
  std::ofstream(dir / (stem + ".json")) << obj.dump(2) << "\n";
  std::ofstream(dir / (stem + ".lua")) << "return " << to_lua(obj) << "\n";
  ArgoHealth h;
  const std::string cmd = lua_bin + " " + driver.string() + " " + script.string() + " " + (dir / (stem + ".lua")).string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return h;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) h.output.append(buf, n);
  const int st = pclose(p);
  h.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  const auto nl = h.output.find('\n');
  if (h.exit_code == 0 && nl != std::string::npos) {
    h.status = h.output.substr(0, nl);
    h.message = h.output.substr(nl + 1);
    if (!h.message.empty() && h.message.back() == '\n') h.message.pop_back();
  }
  return h;
}

}  // namespace testing_support
