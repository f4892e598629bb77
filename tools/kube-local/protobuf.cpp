#include "kube-local/protobuf.h"

#include <cstdint>
#include <map>

#include "common/encoding.h"

namespace kl {
namespace {

using json = nlohmann::json;

struct Schema;
struct Field {
  enum class Kind { kString, kBytes, kInt, kBool, kMessage, kMapString, kMapBytes, kRepeatedString };
  std::string name;
  Kind kind;
  const Schema* message = nullptr;
};
struct Schema {
  std::map<uint32_t, Field> fields;
};

using K = Field::Kind;
const Schema kObjectMeta{{{1, {"name", K::kString}}, {2, {"generateName", K::kString}}, {3, {"namespace", K::kString}},
                          {5, {"uid", K::kString}}, {6, {"resourceVersion", K::kString}}, {7, {"generation", K::kInt}},
                          {11, {"labels", K::kMapString}}, {12, {"annotations", K::kMapString}},
                          {14, {"finalizers", K::kRepeatedString}}}};
const Schema kResourceAttributes{{{1, {"namespace", K::kString}}, {2, {"verb", K::kString}}, {3, {"group", K::kString}},
                                  {4, {"version", K::kString}}, {5, {"resource", K::kString}},
                                  {6, {"subresource", K::kString}}, {7, {"name", K::kString}}}};
const Schema kNonResourceAttributes{{{1, {"path", K::kString}}, {2, {"verb", K::kString}}}};
const Schema kSsarSpec{{{1, {"resourceAttributes", K::kMessage, &kResourceAttributes}},
                        {2, {"nonResourceAttributes", K::kMessage, &kNonResourceAttributes}}}};
const Schema kSelfSubjectAccessReview{{{1, {"metadata", K::kMessage, &kObjectMeta}}, {2, {"spec", K::kMessage, &kSsarSpec}}}};
const Schema kConfigMap{{{1, {"metadata", K::kMessage, &kObjectMeta}}, {2, {"data", K::kMapString}},
                         {3, {"binaryData", K::kMapBytes}}, {4, {"immutable", K::kBool}}}};
const Schema kSecret{{{1, {"metadata", K::kMessage, &kObjectMeta}}, {2, {"data", K::kMapBytes}}, {3, {"type", K::kString}},
                      {4, {"stringData", K::kMapString}}, {5, {"immutable", K::kBool}}}};
const Schema kNamespace{{{1, {"metadata", K::kMessage, &kObjectMeta}}}};
// k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto: what client-go sends with a delete (Helm's uninstall).
const Schema kPreconditions{{{1, {"uid", K::kString}}, {2, {"resourceVersion", K::kString}}}};
const Schema kDeleteOptions{{{1, {"gracePeriodSeconds", K::kInt}}, {2, {"preconditions", K::kMessage, &kPreconditions}},
                             {3, {"orphanDependents", K::kBool}}, {4, {"propagationPolicy", K::kString}},
                             {5, {"dryRun", K::kRepeatedString}}}};
const Schema kTypeMeta{{{1, {"apiVersion", K::kString}}, {2, {"kind", K::kString}}}};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}
  bool done() const { return p_ >= end_; }
  bool varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return false;
      const auto b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return true;
      }
    }
    return false;
  }
  bool bytes(std::string* out) {
    uint64_t n;
    if (!varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    out->assign(p_, n);
    p_ += n;
    return true;
  }
  bool skip(uint32_t wire) {
    uint64_t v;
    std::string s;
    switch (wire) {
      case 0: return varint(&v);
      case 1: return advance(8);
      case 2: return bytes(&s);
      case 5: return advance(4);
      default: return false;
    }
  }

 private:
  bool advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  const char* p_;
  const char* end_;
};

bool decode(const std::string& data, const Schema& schema, json* out, int depth = 0) {
  if (depth > 16) return false;
  *out = json::object();
  Reader r(data.data(), data.size());
  while (!r.done()) {
    uint64_t key;
    if (!r.varint(&key)) return false;
    const auto field = static_cast<uint32_t>(key >> 3);
    const auto wire = static_cast<uint32_t>(key & 7);
    auto it = schema.fields.find(field);
    if (it == schema.fields.end()) {
      if (!r.skip(wire)) return false;
      continue;
    }
    const Field& f = it->second;
    if (f.kind == K::kInt || f.kind == K::kBool) {
      uint64_t v;
      if (wire != 0 || !r.varint(&v)) return false;
      (*out)[f.name] = f.kind == K::kBool ? json(v != 0) : json(static_cast<int64_t>(v));
      continue;
    }
    std::string payload;
    if (wire != 2 || !r.bytes(&payload)) return false;
    switch (f.kind) {
      case K::kString: (*out)[f.name] = payload; break;
      case K::kBytes: (*out)[f.name] = bo::base64_encode(payload); break;
      case K::kRepeatedString: (*out)[f.name].push_back(payload); break;
      case K::kMessage: {
        json sub;
        if (!decode(payload, *f.message, &sub, depth + 1)) return false;
        (*out)[f.name] = sub;
        break;
      }
      case K::kMapString:
      case K::kMapBytes: {
        Reader e(payload.data(), payload.size());
        std::string k, v;
        while (!e.done()) {
          uint64_t ek;
          if (!e.varint(&ek)) return false;
          std::string* target = (ek >> 3) == 1 ? &k : (ek >> 3) == 2 ? &v : nullptr;
          if (!target) {
            if (!e.skip(ek & 7)) return false;
          } else if ((ek & 7) != 2 || !e.bytes(target)) {
            return false;
          }
        }
        (*out)[f.name][k] = f.kind == K::kMapBytes ? bo::base64_encode(v) : v;
        break;
      }
      default: break;
    }
  }
  return true;
}

}  // namespace

std::optional<nlohmann::json> decode_k8s_protobuf(const std::string& body) {
  static const std::string kMagic("k8s\0", 4);
  if (body.size() < 4 || body.compare(0, 4, kMagic) != 0) return std::nullopt;
  // runtime.Unknown: typeMeta = 1, raw = 2.
  Reader r(body.data() + 4, body.size() - 4);
  json type_meta;
  std::string raw;
  while (!r.done()) {
    uint64_t key;
    if (!r.varint(&key)) return std::nullopt;
    std::string payload;
    if ((key & 7) != 2) {
      if (!r.skip(key & 7)) return std::nullopt;
      continue;
    }
    if (!r.bytes(&payload)) return std::nullopt;
    if ((key >> 3) == 1 && !decode(payload, kTypeMeta, &type_meta)) return std::nullopt;
    if ((key >> 3) == 2) raw = std::move(payload);
  }
  const std::string kind = type_meta.value("kind", "");
  static const std::map<std::string, const Schema*> kKinds = {{"SelfSubjectAccessReview", &kSelfSubjectAccessReview},
                                                              {"ConfigMap", &kConfigMap},
                                                              {"Secret", &kSecret},
                                                              {"Namespace", &kNamespace},
                                                              {"DeleteOptions", &kDeleteOptions}};
  auto it = kKinds.find(kind);
  if (it == kKinds.end()) return std::nullopt;
  json obj;
  if (!decode(raw, *it->second, &obj)) return std::nullopt;
  obj["apiVersion"] = type_meta.value("apiVersion", "");
  obj["kind"] = kind;
  return obj;
}

}  // namespace kl
