// Built-in defaulting, as kube-apiserver's scheme applies it on every decode
// (create, update, patch): pkg/apis/core/v1/defaults.go (Pod, PodSpec,
// Container, Service), pkg/apis/batch/v1/defaults.go (Job),
// pkg/apis/apps/v1/defaults.go (Deployment). Idempotent, so an unchanged
// object re-sent compares equal to the stored one.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

// `gr` is "group/resource" ("" group for core). Unknown kinds are left alone.
void apply_builtin_defaults(const std::string& gr, json& obj);

// SetDefaults_PodSpec and SetDefaults_Container on one pod spec; `pod` true
// for a Pod (SetDefaults_Pod adds enableServiceLinks), false for a template.
void default_pod_spec(json& spec, bool pod);

// SetDefaults_Container: imagePullPolicy from the image reference.
[[nodiscard]] std::string default_image_pull_policy(const std::string& image);

}  // namespace kl
