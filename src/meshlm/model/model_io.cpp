#include "meshlm/model/model_io.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_set>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/model/memory_estimate.hpp"
#include "meshlm/model/safetensors.hpp"

namespace meshlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The float's shortest decimal form as a double, so that config.json says 1e-05, not
// 9.999999747378752e-06, and reading it back gives the same float.
double shortest_double(float f) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, f);
  MESHLM_ASSERT(ec == std::errc());
  return std::stod(std::string(buf, end));
}

// A layout that does not belong to `cfg` is a bug: saving it would produce a model
// directory that cannot be loaded back.
void check_layout_matches(const GPTConfig& cfg, const ParamLayout& layout) {
  const auto specs = gpt_param_specs(cfg);
  const auto& views = layout.views();
  MESHLM_ASSERT(views.size() == specs.size(), "layout has ", views.size(), " parameters, config needs ", specs.size());
  for (size_t i = 0; i < specs.size(); ++i)
    MESHLM_ASSERT(views[i].spec.name == specs[i].name && views[i].spec.shape == specs[i].shape,
                  "layout parameter ", views[i].spec.name, " does not match the config's ", specs[i].name);
}

class ConfigReader {
 public:
  ConfigReader(const json& j, const fs::path& path) : j_(j), where_(path.string()) {}

  [[noreturn]] void fail(const std::string& problem) const {
    throw UserError(cat("model config ", where_, " is invalid: ", problem));
  }
  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  int64_t integer(const char* key, const json& v) const {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) fail(cat("\"", key, "\" is too large"));
    if (!v.is_number_integer()) fail(cat("\"", key, "\" must be an integer, got ", v.dump()));
    return v.get<int64_t>();
  }
  int64_t required_integer(const char* key) const {
    const json* v = find(key);
    if (!v) fail(cat("the key \"", key, "\" is missing"));
    return integer(key, *v);
  }
  // A key that, when present, must hold `expected`: GPT-2 variants meshlm does not compute.
  void require_if_present(const char* key, const json& expected, const char* why) const {
    const json* v = find(key);
    if (v && *v != expected) fail(cat("\"", key, "\" is ", v->dump(), " but meshlm only supports ", expected.dump(), " (", why, ")"));
  }

 private:
  const json& j_;
  std::string where_;
};

}  // namespace

std::string model_config_json(const GPTConfig& cfg, const SpecialTokenIds& special) {
  // The GPT2Config fields Hugging Face writes, in its order. The three dropout probabilities
  // record model.dropout, the one meshlm trained with; reading a config ignores them (a run's
  // dropout comes from its own config, and evaluation and generation never drop).
  auto id = [&](const std::optional<int64_t>& v) {
    MESHLM_ASSERT(!v || (*v >= 0 && *v < cfg.vocab_size), "special token id ", *v, " outside the vocabulary ",
                  cfg.vocab_size);
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json();
  };
  nlohmann::ordered_json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = cfg.vocab_size;
  j["n_positions"] = cfg.n_positions;
  j["n_ctx"] = cfg.n_positions;
  j["n_embd"] = cfg.n_embd;
  j["n_layer"] = cfg.n_layer;
  j["n_head"] = cfg.n_head;
  j["n_inner"] = nullptr;
  j["activation_function"] = "gelu_new";
  j["layer_norm_epsilon"] = shortest_double(cfg.layer_norm_epsilon);
  j["resid_pdrop"] = shortest_double(cfg.dropout);
  j["embd_pdrop"] = shortest_double(cfg.dropout);
  j["attn_pdrop"] = shortest_double(cfg.dropout);
  j["initializer_range"] = 0.02;
  j["scale_attn_weights"] = true;
  j["tie_word_embeddings"] = true;
  j["bos_token_id"] = id(special.bos);
  j["eos_token_id"] = id(special.eos);
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

void save_model(const fs::path& dir, const GPTConfig& cfg, const ParamLayout& layout, std::span<const float> params,
                const SpecialTokenIds& special) {
  cfg.validate();
  check_layout_matches(cfg, layout);
  MESHLM_ASSERT(params.size() >= layout.total(), "params has ", params.size(), " floats, layout needs ", layout.total());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw UserError(cat("cannot create model directory ", dir.string(), ": ", ec ? ec.message() : "a file is in the way"));

  std::vector<TensorRef> tensors;
  tensors.reserve(layout.views().size());
  for (const auto& v : layout.views()) tensors.emplace_back(v.spec.name, DType::f32, v.spec.shape, params.data() + v.offset);
  write_safetensors(dir / kModelWeightsFile, tensors, {{"format", "pt"}});
  write_text_atomic(dir / kModelConfigFile, model_config_json(cfg, special));
}

GPTConfig load_model_config(const fs::path& dir) {
  const fs::path path = dir / kModelConfigFile;
  const std::string text = read_file(path, "model config");
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw UserError(cat("model config ", path.string(), " is not valid JSON"));
  if (!j.is_object()) throw UserError(cat("model config ", path.string(), " is not a JSON object"));
  const ConfigReader r(j, path);

  r.require_if_present("model_type", "gpt2", "the architecture is GPT-2");
  GPTConfig cfg;
  cfg.vocab_size = r.required_integer("vocab_size");
  // Old GPT-2 configs named the context length n_ctx.
  cfg.n_positions = r.required_integer(r.find("n_positions") || !r.find("n_ctx") ? "n_positions" : "n_ctx");
  cfg.n_embd = r.required_integer("n_embd");
  cfg.n_layer = r.required_integer("n_layer");
  cfg.n_head = r.required_integer("n_head");
  if (const json* eps = r.find("layer_norm_epsilon")) {
    if (!eps->is_number()) r.fail(cat("\"layer_norm_epsilon\" must be a number, got ", eps->dump()));
    const double value = eps->get<double>();
    // Checked before the cast: a double beyond float's range has no float value.
    if (!(std::fabs(value) <= double(std::numeric_limits<float>::max())))
      r.fail(cat("\"layer_norm_epsilon\" is out of range, got ", eps->dump()));
    cfg.layer_norm_epsilon = float(value);
  }

  // Variants that change the computation would otherwise load silently and run wrongly.
  if (const json* act = r.find("activation_function");
      act && *act != "gelu_new" && *act != "gelu_pytorch_tanh")
    r.fail(cat("\"activation_function\" is ", act->dump(), " but meshlm only computes GPT-2's tanh GELU (\"gelu_new\")"));
  if (const json* inner = r.find("n_inner"); inner && !inner->is_null() && r.integer("n_inner", *inner) != 4 * cfg.n_embd)
    r.fail(cat("\"n_inner\" is ", inner->dump(), " but meshlm's MLP width is 4 * n_embd = ", 4 * cfg.n_embd));
  r.require_if_present("tie_word_embeddings", true, "the output layer reuses wte.weight");
  r.require_if_present("scale_attn_weights", true, "attention scores are scaled by 1/sqrt(head_size)");
  r.require_if_present("scale_attn_by_inverse_layer_idx", false, "attention scores are not scaled per layer");
  r.require_if_present("add_cross_attention", false, "GPT-2 is decoder-only");

  try {
    cfg.validate();
  } catch (const UserError& e) {
    throw UserError(cat("model config ", path.string(), " is invalid: ", e.what()));
  }
  return cfg;
}

void load_model_params(const fs::path& safetensors_file, const GPTConfig& cfg, const ParamLayout& layout,
                       std::span<float> params) {
  MESHLM_ASSERT(params.size() >= layout.total(), "params has ", params.size(), " floats, layout needs ", layout.total());
  const std::string where = safetensors_file.string();

  // Hugging Face files may also hold GPT-2's causal-mask buffers and the output layer, which
  // is tied to wte.weight; none of them is a parameter.
  std::unordered_set<std::string> skipped{"lm_head.weight"};
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    skipped.insert(cat("h.", l, ".attn.bias"));
    skipped.insert(cat("h.", l, ".attn.masked_bias"));
  }
  // A file of this model holds at most its parameters and the skipped tensors.
  const SafetensorsFile file(safetensors_file, layout.views().size() + skipped.size());

  // Check everything before touching `params`, so that a bad file leaves them as they were.
  const auto& views = layout.views();
  std::vector<const SafetensorsEntry*> source(views.size(), nullptr);
  for (const auto& e : file.entries()) {
    std::string name = e.name;
    // GPT2LMHeadModel saves its GPT2Model under "transformer.".
    if (name.starts_with("transformer.")) name.erase(0, std::string_view("transformer.").size());
    if (skipped.count(name)) continue;
    const ParamView* v = layout.find(name);
    if (!v) throw UserError(cat("model file ", where, " holds tensor \"", e.name, "\", which is not a parameter of this GPT-2 configuration"));
    const size_t i = size_t(v - views.data());
    if (source[i])
      throw UserError(cat("model file ", where, " holds parameter ", name, " twice (as \"", source[i]->name, "\" and \"", e.name, "\")"));
    if (e.shape != v->spec.shape)
      throw UserError(cat("tensor \"", e.name, "\" in ", where, " has shape ", format_shape(e.shape), " but the model expects ", format_shape(v->spec.shape)));
    if (e.dtype != SafetensorsDType::F32 && e.dtype != SafetensorsDType::F16 && e.dtype != SafetensorsDType::BF16)
      throw UserError(cat("tensor \"", e.name, "\" in ", where, " has dtype ", safetensors_dtype_name(e.dtype), " but parameters must be F32, F16 or BF16"));
    source[i] = &e;
  }
  for (size_t i = 0; i < views.size(); ++i)
    if (!source[i])
      throw UserError(cat("model file ", where, " lacks parameter ", views[i].spec.name, " (shape ", format_shape(views[i].spec.shape), ")"));

  for (size_t i = 0; i < views.size(); ++i) file.read_as_f32(source[i]->name, params.subspan(views[i].offset, views[i].numel));
}

LoadedModel load_model(const fs::path& dir) {
  const GPTConfig cfg = load_model_config(dir);
  check_model_fits_memory(cfg, ModelWorkload{}, Device::cpu, cat("the model in ", dir.string()));
  // Every parameter takes at least 2 bytes (F16 or BF16): a file too small for the config is
  // refused before its parameters are allocated, not after.
  const fs::path weights = dir / kModelWeightsFile;
  std::error_code ec;
  const uint64_t file_bytes = fs::file_size(weights, ec), params = gpt_parameter_count(cfg);
  if (!ec && file_bytes / 2 < params)
    throw UserError(cat("model file ", weights.string(), " holds ", file_bytes, " bytes, too few for the ", params,
                        " parameters its config.json describes (at least 2 bytes each)"));
  LoadedModel m{cfg, ParamLayout(gpt_param_specs(cfg)), {}};
  m.params.assign(m.layout.total(), 0.0f);
  load_model_params(weights, cfg, m.layout, m.params);
  return m;
}

}  // namespace meshlm
