#include "bundle/object_lock.h"

#include <cctype>
#include <string_view>

namespace bo::bundle {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The document element of `body`: its name and its content (between the
// start and the end tag); nullopt when `body` is not one XML element.
struct Element {
  std::string name;
  std::string_view content;
};
std::optional<Element> document_element(std::string_view body) {
  body = trim(body);
  if (body.starts_with("\xEF\xBB\xBF")) body = trim(body.substr(3));  // a UTF-8 byte order mark
  if (body.starts_with("<?xml")) {
    const auto end = body.find("?>");
    if (end == std::string_view::npos) return std::nullopt;
    body = trim(body.substr(end + 2));
  }
  if (!body.starts_with("<") || body.size() < 3) return std::nullopt;
  size_t i = 1;
  while (i < body.size() && (std::isalnum(static_cast<unsigned char>(body[i])) || body[i] == '_' || body[i] == ':' ||
                             body[i] == '-' || body[i] == '.'))
    ++i;
  Element e{std::string(body.substr(1, i - 1)), {}};
  if (e.name.empty()) return std::nullopt;
  const auto open_end = body.find('>', i);
  if (open_end == std::string_view::npos) return std::nullopt;
  if (body[open_end - 1] == '/') return open_end + 1 == body.size() ? std::optional(e) : std::nullopt;  // <Name/>
  const std::string close = "</" + e.name + ">";
  if (!body.ends_with(close)) return std::nullopt;
  e.content = body.substr(open_end + 1, body.size() - close.size() - open_end - 1);
  return e;
}

// The text of the child element <tag>…</tag> in `content`; nullopt when absent.
std::optional<std::string> child_text(std::string_view content, const std::string& tag) {
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  const auto a = content.find(open);
  if (a == std::string_view::npos) return std::nullopt;
  const auto b = content.find(close, a + open.size());
  if (b == std::string_view::npos) return std::nullopt;
  const std::string_view text = trim(content.substr(a + open.size(), b - a - open.size()));
  if (text.find('<') != std::string_view::npos) return std::nullopt;  // not a text element
  return std::string(text);
}

}  // namespace

std::expected<ObjectRetention, std::string> parse_object_retention(int http_status, const std::string& body) {
  const std::string http = "HTTP " + std::to_string(http_status);
  const auto root = document_element(body);
  if (http_status < 200 || http_status > 299) {
    if (root && root->name == "Error") {
      const auto code = child_text(root->content, "Code"), message = child_text(root->content, "Message");
      return std::unexpected(http + (code ? " " + *code : "") + (message ? ": " + *message : ""));
    }
    return std::unexpected(http + " without an S3 error document");
  }
  if (!root)
    return std::unexpected(http + " with a body of " + std::to_string(body.size()) +
                           " bytes that is not a <Retention> document (the store did not answer ?retention)");
  if (root->name != "Retention")
    return std::unexpected(http + " with a <" + root->name.substr(0, 64) +
                           "> document instead of <Retention> (the store did not answer ?retention)");
  const auto mode = child_text(root->content, "Mode");
  if (!mode || mode->empty()) return std::unexpected(http + ": the Retention has no Mode");
  if (*mode != "GOVERNANCE" && *mode != "COMPLIANCE")
    return std::unexpected(http + ": the Retention's Mode \"" + mode->substr(0, 32) +
                           "\" is neither GOVERNANCE nor COMPLIANCE");
  const auto until_text = child_text(root->content, "RetainUntilDate");
  if (!until_text || until_text->empty()) return std::unexpected(http + ": the Retention has no RetainUntilDate");
  const auto until = parse_rfc3339(*until_text);
  if (!until)
    return std::unexpected(http + ": the Retention's RetainUntilDate \"" + until_text->substr(0, 64) +
                           "\" is not an ISO 8601 timestamp");
  return ObjectRetention{*mode, *until};
}

}  // namespace bo::bundle
