#include "kube-local/cel.h"

#include <cctype>
#include <memory>
#include <regex>
#include <vector>

namespace kl::cel {
namespace {

struct Token {
  enum class Kind { kIdent, kInt, kString, kOp, kEnd } kind;
  std::string text;
  long long number = 0;
};

std::expected<std::vector<Token>, std::string> lex(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::Kind::kIdent, s.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      Token t{Token::Kind::kInt, s.substr(i, j - i)};
      t.number = std::stoll(t.text);
      out.push_back(t);
      i = j;
    } else if (c == '"' || c == '\'') {
      std::string v;
      size_t j = i + 1;
      while (j < s.size() && s[j] != c) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          ++j;
          v += s[j] == 'n' ? '\n' : s[j];
        } else {
          v += s[j];
        }
        ++j;
      }
      if (j >= s.size()) return std::unexpected("unterminated string");
      out.push_back({Token::Kind::kString, v});
      i = j + 1;
    } else {
      static const char* kOps[] = {"&&", "||", "==", "!=", "<=", ">=", "(", ")", "[", "]", ".", ",", "!", "<",
                                   ">",  "+",  "-",  "*",  "/",  "%",  "?", ":"};
      bool found = false;
      for (const char* op : kOps) {
        const size_t n = std::char_traits<char>::length(op);
        if (s.compare(i, n, op) == 0) {
          out.push_back({Token::Kind::kOp, op});
          i += n;
          found = true;
          break;
        }
      }
      if (!found) return std::unexpected(std::string("unexpected character '") + c + "'");
    }
  }
  out.push_back({Token::Kind::kEnd, ""});
  return out;
}

// AST
struct Node;
using NodePtr = std::shared_ptr<Node>;
struct Node {
  enum class Kind { kLiteral, kIdent, kSelect, kIndex, kCall, kUnary, kBinary, kTernary, kList, kHas } kind;
  json value;               // literal
  std::string name;         // ident, select field, call/function name, operator
  std::vector<NodePtr> kids;  // operands / receiver+args
  bool method = false;      // call on a receiver (kids[0])
};

class Parser {
 public:
  explicit Parser(std::vector<Token> t) : t_(std::move(t)) {}
  std::expected<NodePtr, std::string> parse() {
    auto e = ternary();
    if (!error_.empty()) return std::unexpected(error_);
    if (peek().kind != Token::Kind::kEnd) return std::unexpected("unexpected '" + peek().text + "'");
    return e;
  }

 private:
  const Token& peek() const { return t_[pos_]; }
  bool accept(const char* op) {
    if (peek().kind == Token::Kind::kOp && peek().text == op) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(const char* op) {
    if (!accept(op) && error_.empty()) error_ = std::string("expected '") + op + "'";
  }
  NodePtr make(Node::Kind k, std::string name, std::vector<NodePtr> kids) {
    auto n = std::make_shared<Node>();
    n->kind = k;
    n->name = std::move(name);
    n->kids = std::move(kids);
    return n;
  }
  NodePtr ternary() {
    auto c = binary(0);
    if (accept("?")) {
      auto a = ternary();
      expect(":");
      auto b = ternary();
      return make(Node::Kind::kTernary, "", {c, a, b});
    }
    return c;
  }
  static int prec(const Token& t) {
    if (t.kind == Token::Kind::kIdent && t.text == "in") return 3;
    if (t.kind != Token::Kind::kOp) return -1;
    const std::string& o = t.text;
    if (o == "||") return 0;
    if (o == "&&") return 1;
    if (o == "==" || o == "!=" || o == "<" || o == "<=" || o == ">" || o == ">=") return 3;
    if (o == "+" || o == "-") return 4;
    if (o == "*" || o == "/" || o == "%") return 5;
    return -1;
  }
  NodePtr binary(int min) {
    auto lhs = unary();
    while (error_.empty()) {
      const int p = prec(peek());
      if (p < min || p < 0) break;
      const std::string op = peek().text;
      ++pos_;
      auto rhs = binary(p + 1);
      lhs = make(Node::Kind::kBinary, op, {lhs, rhs});
    }
    return lhs;
  }
  NodePtr unary() {
    if (accept("!")) return make(Node::Kind::kUnary, "!", {unary()});
    if (accept("-")) return make(Node::Kind::kUnary, "-", {unary()});
    return postfix(primary());
  }
  std::vector<NodePtr> args(const char* close) {
    std::vector<NodePtr> out;
    if (accept(close)) return out;
    do out.push_back(ternary());
    while (error_.empty() && accept(","));
    expect(close);
    return out;
  }
  NodePtr postfix(NodePtr n) {
    while (error_.empty()) {
      if (accept(".")) {
        if (peek().kind != Token::Kind::kIdent) {
          error_ = "expected a field name after '.'";
          break;
        }
        const std::string name = peek().text;
        ++pos_;
        if (accept("(")) {
          auto a = args(")");
          a.insert(a.begin(), n);
          n = make(Node::Kind::kCall, name, a);
          n->method = true;
        } else {
          n = make(Node::Kind::kSelect, name, {n});
        }
      } else if (accept("[")) {
        auto idx = ternary();
        expect("]");
        n = make(Node::Kind::kIndex, "", {n, idx});
      } else {
        break;
      }
    }
    return n;
  }
  NodePtr primary() {
    const Token t = peek();
    if (t.kind == Token::Kind::kInt) {
      ++pos_;
      auto n = make(Node::Kind::kLiteral, "", {});
      n->value = t.number;
      return n;
    }
    if (t.kind == Token::Kind::kString) {
      ++pos_;
      auto n = make(Node::Kind::kLiteral, "", {});
      n->value = t.text;
      return n;
    }
    if (t.kind == Token::Kind::kIdent) {
      ++pos_;
      if (t.text == "true" || t.text == "false" || t.text == "null") {
        auto n = make(Node::Kind::kLiteral, "", {});
        n->value = t.text == "null" ? json() : json(t.text == "true");
        return n;
      }
      if (accept("(")) {
        auto a = args(")");
        if (t.text == "has") {
          if (a.size() != 1 || a[0]->kind != Node::Kind::kSelect) {
            error_ = "has() takes a field selection such as has(self.spec)";
            return make(Node::Kind::kLiteral, "", {});
          }
          return make(Node::Kind::kHas, a[0]->name, {a[0]->kids[0]});
        }
        return make(Node::Kind::kCall, t.text, a);
      }
      return make(Node::Kind::kIdent, t.text, {});
    }
    if (accept("(")) {
      auto e = ternary();
      expect(")");
      return e;
    }
    if (accept("[")) return make(Node::Kind::kList, "", args("]"));
    error_ = t.kind == Token::Kind::kEnd ? "unexpected end of expression" : "unexpected '" + t.text + "'";
    return make(Node::Kind::kLiteral, "", {});
  }
  std::vector<Token> t_;
  size_t pos_ = 0;
  std::string error_;
};

using Result = std::expected<json, std::string>;
using Vars = std::map<std::string, json>;

std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "int";
  if (v.is_number()) return "double";
  if (v.is_string()) return "string";
  if (v.is_array()) return "list";
  return "map";
}

Result eval(const NodePtr& n, const Vars& vars);

Result truthy(const NodePtr& n, const Vars& vars) {
  auto v = eval(n, vars);
  if (!v) return v;
  if (!v->is_boolean()) return std::unexpected("expected bool, got " + type_name(*v));
  return v;
}

Result macro(const std::string& fn, const json& list, const std::vector<NodePtr>& k, const Vars& vars) {
  if (k.size() != 3 || k[1]->kind != Node::Kind::kIdent) return std::unexpected(fn + "() takes a variable and an expression");
  const std::string var = k[1]->name;
  json items = json::array();
  if (list.is_array()) items = list;
  else if (list.is_object())
    for (const auto& [key, v] : list.items()) items.push_back(key);
  else return std::unexpected(fn + "() needs a list or map");
  Vars local = vars;
  int count = 0;
  json out = json::array();
  for (const auto& item : items) {
    local[var] = item;
    auto r = eval(k[2], local);
    if (!r) return r;
    if (fn == "map") {
      out.push_back(*r);
      continue;
    }
    if (!r->is_boolean()) return std::unexpected(fn + "() predicate must be bool");
    const bool b = r->get<bool>();
    if (fn == "all" && !b) return json(false);
    if (fn == "exists" && b) return json(true);
    if (fn == "filter" && b) out.push_back(item);
    count += b ? 1 : 0;
  }
  if (fn == "all") return json(true);
  if (fn == "exists") return json(false);
  if (fn == "exists_one") return json(count == 1);
  return out;
}

Result call(const NodePtr& n, const Vars& vars) {
  const std::string& fn = n->name;
  if (n->method && (fn == "all" || fn == "exists" || fn == "exists_one" || fn == "map" || fn == "filter")) {
    auto recv = eval(n->kids[0], vars);
    if (!recv) return recv;
    return macro(fn, *recv, n->kids, vars);
  }
  std::vector<json> a;
  for (const auto& k : n->kids) {
    auto v = eval(k, vars);
    if (!v) return v;
    a.push_back(*v);
  }
  if (fn == "size" && a.size() == 1) {
    if (a[0].is_string() || a[0].is_array() || a[0].is_object()) return json(static_cast<long long>(a[0].size()));
    return std::unexpected("size() of " + type_name(a[0]));
  }
  if (a.size() == 2 && a[0].is_string() && a[1].is_string()) {
    const std::string& s = a[0].get_ref<const std::string&>();
    const std::string& x = a[1].get_ref<const std::string&>();
    if (fn == "startsWith") return json(s.starts_with(x));
    if (fn == "endsWith") return json(s.ends_with(x));
    if (fn == "contains") return json(s.find(x) != std::string::npos);
    if (fn == "matches") {
      try {
        return json(std::regex_search(s, std::regex(x)));
      } catch (const std::regex_error&) {
        return std::unexpected("invalid regular expression");
      }
    }
  }
  if (fn == "string" && a.size() == 1) return a[0].is_string() ? a[0] : json(a[0].dump());
  if (fn == "int" && a.size() == 1 && a[0].is_number()) return json(a[0].get<long long>());
  return std::unexpected("unsupported function " + fn + "() with these arguments");
}

Result eval(const NodePtr& n, const Vars& vars) {
  switch (n->kind) {
    case Node::Kind::kLiteral: return n->value;
    case Node::Kind::kIdent: {
      auto it = vars.find(n->name);
      if (it == vars.end()) return std::unexpected("undeclared reference to '" + n->name + "'");
      return it->second;
    }
    case Node::Kind::kList: {
      json out = json::array();
      for (const auto& k : n->kids) {
        auto v = eval(k, vars);
        if (!v) return v;
        out.push_back(*v);
      }
      return out;
    }
    case Node::Kind::kSelect: {
      auto obj = eval(n->kids[0], vars);
      if (!obj) return obj;
      if (!obj->is_object()) return std::unexpected("no such key: " + n->name);
      auto it = obj->find(n->name);
      if (it == obj->end()) return std::unexpected("no such key: " + n->name);
      return *it;
    }
    case Node::Kind::kHas: {
      auto obj = eval(n->kids[0], vars);
      if (!obj) return obj;
      return json(obj->is_object() && obj->contains(n->name));
    }
    case Node::Kind::kIndex: {
      auto obj = eval(n->kids[0], vars);
      if (!obj) return obj;
      auto idx = eval(n->kids[1], vars);
      if (!idx) return idx;
      if (obj->is_array() && idx->is_number_integer()) {
        const long long i = idx->get<long long>();
        if (i < 0 || i >= static_cast<long long>(obj->size())) return std::unexpected("index out of range");
        return (*obj)[static_cast<size_t>(i)];
      }
      if (obj->is_object() && idx->is_string()) {
        auto it = obj->find(idx->get<std::string>());
        if (it == obj->end()) return std::unexpected("no such key: " + idx->get<std::string>());
        return *it;
      }
      return std::unexpected("cannot index " + type_name(*obj) + " with " + type_name(*idx));
    }
    case Node::Kind::kCall: return call(n, vars);
    case Node::Kind::kUnary: {
      auto v = eval(n->kids[0], vars);
      if (!v) return v;
      if (n->name == "!") {
        if (!v->is_boolean()) return std::unexpected("! needs bool");
        return json(!v->get<bool>());
      }
      if (!v->is_number()) return std::unexpected("- needs a number");
      return v->is_number_integer() ? json(-v->get<long long>()) : json(-v->get<double>());
    }
    case Node::Kind::kTernary: {
      auto c = truthy(n->kids[0], vars);
      if (!c) return c;
      return eval(c->get<bool>() ? n->kids[1] : n->kids[2], vars);
    }
    case Node::Kind::kBinary: {
      const std::string& op = n->name;
      if (op == "&&" || op == "||") {
        // CEL: false && error == false, true || error == true, in either order.
        auto a = truthy(n->kids[0], vars);
        auto b = truthy(n->kids[1], vars);
        const bool decisive = op == "||";
        if (a && a->get<bool>() == decisive) return *a;
        if (b && b->get<bool>() == decisive) return *b;
        if (!a) return a;
        if (!b) return b;
        return json(!decisive);
      }
      auto a = eval(n->kids[0], vars);
      if (!a) return a;
      auto b = eval(n->kids[1], vars);
      if (!b) return b;
      if (op == "==") return json(*a == *b);
      if (op == "!=") return json(*a != *b);
      if (op == "in") {
        if (b->is_array()) return json(std::find(b->begin(), b->end(), *a) != b->end());
        if (b->is_object() && a->is_string()) return json(b->contains(a->get<std::string>()));
        return std::unexpected("'in' needs a list or map");
      }
      if (op == "<" || op == "<=" || op == ">" || op == ">=") {
        if (!((a->is_number() && b->is_number()) || (a->is_string() && b->is_string())))
          return std::unexpected("cannot compare " + type_name(*a) + " and " + type_name(*b));
        const bool lt = *a < *b, eq = *a == *b;
        if (op == "<") return json(lt);
        if (op == "<=") return json(lt || eq);
        if (op == ">") return json(!lt && !eq);
        return json(!lt);
      }
      if (op == "+" && a->is_string() && b->is_string()) return json(a->get<std::string>() + b->get<std::string>());
      if (op == "+" && a->is_array() && b->is_array()) {
        json out = *a;
        for (const auto& x : *b) out.push_back(x);
        return out;
      }
      if (a->is_number_integer() && b->is_number_integer()) {
        const long long x = a->get<long long>(), y = b->get<long long>();
        if (op == "+") return json(x + y);
        if (op == "-") return json(x - y);
        if (op == "*") return json(x * y);
        if ((op == "/" || op == "%") && y == 0) return std::unexpected("division by zero");
        if (op == "/") return json(x / y);
        if (op == "%") return json(x % y);
      }
      return std::unexpected("no such overload: " + type_name(*a) + " " + op + " " + type_name(*b));
    }
  }
  return std::unexpected("unreachable");
}

}  // namespace

std::expected<json, std::string> evaluate(const std::string& expr, const std::map<std::string, json>& vars) {
  auto tokens = lex(expr);
  if (!tokens) return std::unexpected("compile error: " + tokens.error());
  Parser p(std::move(*tokens));
  auto ast = p.parse();
  if (!ast) return std::unexpected("compile error: " + ast.error());
  return eval(*ast, vars);
}

}  // namespace kl::cel
