#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/dtype.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/model/safetensors.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;
using nlohmann::json;

// Small but with every dimension distinct, so a transposed or swapped shape shows.
GPTConfig tiny_config() {
  GPTConfig c;
  c.vocab_size = 11;
  c.n_positions = 6;
  c.n_embd = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.layer_norm_epsilon = 1e-5f;
  return c;
}

struct Model {
  GPTConfig cfg;
  ParamLayout layout;
  std::vector<float> params;
};
Model random_model(uint64_t seed = 7) {
  const GPTConfig cfg = tiny_config();
  Model m{cfg, ParamLayout(gpt_param_specs(cfg)), {}};
  m.params.assign(m.layout.total(), 0.0f);
  init_params(m.layout, cfg, seed, m.params);
  // The init leaves biases at zero and LayerNorm at one; make every value distinct.
  for (size_t i = 0; i < m.params.size(); ++i) m.params[i] += 1e-3f * float(i % 97);
  return m;
}

void expect_params_equal(const ParamLayout& layout, std::span<const float> got, std::span<const float> want) {
  for (const auto& v : layout.views())
    EXPECT_EQ(std::memcmp(got.data() + v.offset, want.data() + v.offset, v.numel * 4), 0) << v.spec.name;
}

void expect_user_error(const std::function<void()>& fn, const std::vector<std::string>& needles, const std::string& label) {
  try {
    fn();
    ADD_FAILURE() << label << ": no exception";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << label << ": message lacks '" << n << "': " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": wrong exception type: " << e.what();
  }
}

std::vector<std::string> dir_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ModelIo, TensorNamesAndShapesAreHuggingFaceGpt2s) {
  // transformers' GPT2Model(GPT2Config(vocab_size=11, n_positions=6, n_embd=8, n_layer=2,
  // n_head=2)).state_dict() without its attn.bias / attn.masked_bias buffers, in its order.
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"wte.weight", {11, 8}},
      {"wpe.weight", {6, 8}},
      {"h.0.ln_1.weight", {8}},
      {"h.0.ln_1.bias", {8}},
      {"h.0.attn.c_attn.weight", {8, 24}},
      {"h.0.attn.c_attn.bias", {24}},
      {"h.0.attn.c_proj.weight", {8, 8}},
      {"h.0.attn.c_proj.bias", {8}},
      {"h.0.ln_2.weight", {8}},
      {"h.0.ln_2.bias", {8}},
      {"h.0.mlp.c_fc.weight", {8, 32}},
      {"h.0.mlp.c_fc.bias", {32}},
      {"h.0.mlp.c_proj.weight", {32, 8}},
      {"h.0.mlp.c_proj.bias", {8}},
      {"h.1.ln_1.weight", {8}},
      {"h.1.ln_1.bias", {8}},
      {"h.1.attn.c_attn.weight", {8, 24}},
      {"h.1.attn.c_attn.bias", {24}},
      {"h.1.attn.c_proj.weight", {8, 8}},
      {"h.1.attn.c_proj.bias", {8}},
      {"h.1.ln_2.weight", {8}},
      {"h.1.ln_2.bias", {8}},
      {"h.1.mlp.c_fc.weight", {8, 32}},
      {"h.1.mlp.c_fc.bias", {32}},
      {"h.1.mlp.c_proj.weight", {32, 8}},
      {"h.1.mlp.c_proj.bias", {8}},
      {"ln_f.weight", {8}},
      {"ln_f.bias", {8}},
  };
  ScratchDir dir;
  const Model m = random_model();
  save_model(dir.path(), m.cfg, m.layout, m.params);
  const SafetensorsFile file(dir / kModelWeightsFile);
  std::vector<std::pair<std::string, std::vector<int64_t>>> found;
  for (const auto& e : file.entries()) {
    found.emplace_back(e.name, e.shape);
    EXPECT_EQ(e.dtype, SafetensorsDType::F32) << e.name;
  }
  EXPECT_EQ(found, expected);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST(ModelIo, SaveThenLoadIsBitExact) {
  ScratchDir dir;
  const Model m = random_model();
  const fs::path model_dir = dir / "run" / "final";  // created on save, parents included
  save_model(model_dir, m.cfg, m.layout, m.params);
  EXPECT_EQ(dir_listing(model_dir), (std::vector<std::string>{"config.json", "model.safetensors"}));

  const LoadedModel loaded = load_model(model_dir);
  EXPECT_EQ(loaded.config, m.cfg);
  ASSERT_EQ(loaded.params.size(), m.layout.total());
  expect_params_equal(m.layout, loaded.params, m.params);

  // Into an existing buffer, via the lower-level calls.
  std::vector<float> params(m.layout.total(), -1.0f);
  load_model_params(model_dir / kModelWeightsFile, load_model_config(model_dir), m.layout, params);
  expect_params_equal(m.layout, params, m.params);

  // Saving again replaces the model whole.
  const Model other = random_model(99);
  save_model(model_dir, other.cfg, other.layout, other.params);
  expect_params_equal(m.layout, load_model(model_dir).params, other.params);
  EXPECT_EQ(dir_listing(model_dir), (std::vector<std::string>{"config.json", "model.safetensors"}));
}

TEST(ModelIo, ConfigJsonIsAHuggingFaceGpt2Config) {
  ScratchDir dir;
  const Model m = random_model();
  save_model(dir.path(), m.cfg, m.layout, m.params);
  const json j = json::parse(read_file(dir / kModelConfigFile, "config"));
  EXPECT_EQ(j["model_type"], "gpt2");
  EXPECT_EQ(j["architectures"], json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(j["vocab_size"], 11);
  EXPECT_EQ(j["n_positions"], 6);
  EXPECT_EQ(j["n_ctx"], 6);
  EXPECT_EQ(j["n_embd"], 8);
  EXPECT_EQ(j["n_layer"], 2);
  EXPECT_EQ(j["n_head"], 2);
  EXPECT_TRUE(j["n_inner"].is_null());
  EXPECT_EQ(j["activation_function"], "gelu_new");
  EXPECT_EQ(j["layer_norm_epsilon"].get<double>(), 1e-5);  // the decimal, not the float's widening
  for (const char* p : {"resid_pdrop", "embd_pdrop", "attn_pdrop"}) EXPECT_EQ(j[p].get<double>(), 0.0) << p;
  EXPECT_EQ(j["initializer_range"].get<double>(), 0.02);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  // No tokenizer given: no special tokens, written as null (not the last id, a plain token).
  EXPECT_TRUE(j["bos_token_id"].is_null());
  EXPECT_TRUE(j["eos_token_id"].is_null());
  EXPECT_EQ(j["torch_dtype"], "float32");

  GPTConfig gpt2;
  gpt2.vocab_size = 50257;
  gpt2.n_positions = 1024;
  gpt2.n_embd = 768;
  gpt2.n_layer = 12;
  gpt2.n_head = 12;
  // The tokenizer's own ids (gpt2's <|endoftext|>; a bpe model's </s> without a bos).
  const json g = json::parse(model_config_json(gpt2, {50256, 50256}));
  EXPECT_EQ(g["bos_token_id"], 50256);
  EXPECT_EQ(g["eos_token_id"], 50256);
  const json bpe = json::parse(model_config_json(tiny_config(), {std::nullopt, 1}));
  EXPECT_TRUE(bpe["bos_token_id"].is_null());
  EXPECT_EQ(bpe["eos_token_id"], 1);

  // An odd epsilon survives the decimal round trip exactly.
  GPTConfig odd = tiny_config();
  odd.layer_norm_epsilon = 3.3333333e-7f;
  ScratchDir dir2;
  const ParamLayout layout(gpt_param_specs(odd));
  std::vector<float> zeros(layout.total());
  save_model(dir2.path(), odd, layout, zeros);
  EXPECT_EQ(load_model_config(dir2.path()), odd);
}

TEST(ModelIo, LoadsHuggingFaceConfigs) {
  ScratchDir dir;
  // The real gpt2 config.json (abridged to the fields that matter plus a few it ignores).
  write_text_atomic(dir / kModelConfigFile, R"({
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
    "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
    "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
    "vocab_size": 50257})");
  const GPTConfig c = load_model_config(dir.path());
  EXPECT_EQ(c.vocab_size, 50257);
  EXPECT_EQ(c.n_positions, 1024);
  EXPECT_EQ(c.n_embd, 768);
  EXPECT_EQ(c.n_layer, 12);
  EXPECT_EQ(c.n_head, 12);
  EXPECT_EQ(c.layer_norm_epsilon, 1e-5f);

  // Old configs name the context n_ctx only; epsilon defaults to GPT-2's.
  write_text_atomic(dir / kModelConfigFile,
                    R"({"vocab_size": 11, "n_ctx": 6, "n_embd": 8, "n_layer": 2, "n_head": 2, "n_inner": 32})");
  EXPECT_EQ(load_model_config(dir.path()), tiny_config());
}

TEST(ModelIo, RejectsBadConfigsNamingTheFile) {
  ScratchDir dir;
  const std::string where = (dir / kModelConfigFile).string();
  expect_user_error([&] { load_model_config(dir.path()); }, {where, "not found"}, "missing config.json");

  const json good = json::parse(R"({"vocab_size": 11, "n_positions": 6, "n_embd": 8, "n_layer": 2, "n_head": 2})");
  auto with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    return j.dump();
  };
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"not JSON", "{\"vocab_size\": 11,", "not valid JSON"},
      {"not an object", "[11, 6]", "not a JSON object"},
      {"missing vocab_size", with([](json& j) { j.erase("vocab_size"); }), "\"vocab_size\" is missing"},
      {"missing n_embd", with([](json& j) { j.erase("n_embd"); }), "\"n_embd\" is missing"},
      {"missing n_layer", with([](json& j) { j.erase("n_layer"); }), "\"n_layer\" is missing"},
      {"missing n_head", with([](json& j) { j.erase("n_head"); }), "\"n_head\" is missing"},
      {"missing context", with([](json& j) { j.erase("n_positions"); }), "\"n_positions\" is missing"},
      {"string integer", with([](json& j) { j["n_embd"] = "8"; }), "\"n_embd\" must be an integer"},
      {"fractional integer", with([](json& j) { j["n_layer"] = 2.5; }), "\"n_layer\" must be an integer"},
      {"boolean integer", with([](json& j) { j["n_head"] = true; }), "\"n_head\" must be an integer"},
      {"huge integer", with([](json& j) { j["vocab_size"] = UINT64_MAX; }), "\"vocab_size\" is too large"},
      {"n_ctx mistyped", with([](json& j) { j.erase("n_positions"); j["n_ctx"] = "6"; }), "\"n_ctx\" must be an integer"},
      {"epsilon beyond float", with([](json& j) { j["layer_norm_epsilon"] = 1e300; }), "out of range"},
      {"epsilon negative", with([](json& j) { j["layer_norm_epsilon"] = -1e-5; }), "layer_norm_epsilon must be a positive number"},
      {"epsilon mistyped", with([](json& j) { j["layer_norm_epsilon"] = "1e-5"; }), "\"layer_norm_epsilon\" must be a number"},
      {"zero heads", with([](json& j) { j["n_head"] = 0; }), "n_head must be positive"},
      {"heads do not divide", with([](json& j) { j["n_head"] = 3; }), "divisible"},
      {"negative vocab", with([](json& j) { j["vocab_size"] = -1; }), "vocab_size must be positive"},
      {"other model", with([](json& j) { j["model_type"] = "llama"; }), "\"model_type\""},
      {"other activation", with([](json& j) { j["activation_function"] = "relu"; }), "\"activation_function\""},
      {"other MLP width", with([](json& j) { j["n_inner"] = 24; }), "\"n_inner\""},
      {"untied embeddings", with([](json& j) { j["tie_word_embeddings"] = false; }), "\"tie_word_embeddings\""},
      {"per-layer attention scale", with([](json& j) { j["scale_attn_by_inverse_layer_idx"] = true; }), "\"scale_attn_by_inverse_layer_idx\""},
  };
  for (const auto& [label, text, needle] : cases) {
    write_text_atomic(dir / kModelConfigFile, text);
    expect_user_error([&] { load_model_config(dir.path()); }, {where, needle}, label);
  }
  // n_inner = 4 * n_embd and the pytorch-tanh GELU name are the same model.
  write_text_atomic(dir / kModelConfigFile, with([](json& j) {
                      j["n_inner"] = 32;
                      j["activation_function"] = "gelu_pytorch_tanh";
                    }));
  EXPECT_EQ(load_model_config(dir.path()), tiny_config());
}

// Writes `m` the way Hugging Face's GPT2LMHeadModel.save_pretrained does: a "transformer."
// prefix, the causal-mask buffers, the tied lm_head.weight, and its own tensor order.
void write_hf_style(const fs::path& path, const Model& m, SafetensorsDType dtype, std::vector<std::vector<uint16_t>>& half_store) {
  const int64_t T = m.cfg.n_positions;
  static const std::vector<float> mask = [] {
    std::vector<float> v(6 * 6);
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j <= i; ++j) v[size_t(i * 6 + j)] = 1.0f;
    return v;
  }();
  static const float masked_bias = -1e4f;
  std::vector<TensorRef> tensors;
  for (auto it = m.layout.views().rbegin(); it != m.layout.views().rend(); ++it) {
    const auto& v = *it;
    const float* src = m.params.data() + v.offset;
    if (dtype == SafetensorsDType::F32) {
      tensors.emplace_back("transformer." + v.spec.name, dtype, v.spec.shape, src);
      continue;
    }
    auto& half = half_store.emplace_back(v.numel);
    for (size_t i = 0; i < v.numel; ++i)
      half[i] = dtype == SafetensorsDType::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
    tensors.emplace_back("transformer." + v.spec.name, dtype, v.spec.shape, half.data());
  }
  for (int64_t l = 0; l < m.cfg.n_layer; ++l) {
    tensors.emplace_back(cat("transformer.h.", l, ".attn.bias"), DType::f32, std::vector<int64_t>{1, 1, T, T}, mask.data());
    tensors.emplace_back(cat("transformer.h.", l, ".attn.masked_bias"), DType::f32, std::vector<int64_t>{}, &masked_bias);
  }
  const ParamView& wte = m.layout.at("wte.weight");
  tensors.emplace_back("lm_head.weight", DType::f32, wte.spec.shape, m.params.data() + wte.offset);
  write_safetensors(path, tensors, {{"format", "pt"}});
}

TEST(ModelIo, LoadsHuggingFaceStyleFiles) {
  ScratchDir dir;
  const Model m = random_model();
  std::vector<std::vector<uint16_t>> store;
  write_hf_style(dir / "hf.safetensors", m, SafetensorsDType::F32, store);
  std::vector<float> params(m.layout.total(), 0.0f);
  load_model_params(dir / "hf.safetensors", m.cfg, m.layout, params);
  expect_params_equal(m.layout, params, m.params);

  // Newer GPT2Model saves: no prefix, no buffers (they are non-persistent).
  for (auto dtype : {SafetensorsDType::F16, SafetensorsDType::BF16}) {
    SCOPED_TRACE(std::string(safetensors_dtype_name(dtype)));
    write_hf_style(dir / "half.safetensors", m, dtype, store);
    std::vector<float> loaded(m.layout.total(), 0.0f);
    load_model_params(dir / "half.safetensors", m.cfg, m.layout, loaded);
    for (const auto& v : m.layout.views())
      for (size_t i = 0; i < v.numel; ++i) {
        const float x = m.params[v.offset + i];
        const float want = dtype == SafetensorsDType::F16 ? f16_to_f32(f32_to_f16(x)) : bf16_to_f32(f32_to_bf16(x));
        ASSERT_EQ(loaded[v.offset + i], want) << v.spec.name << "[" << i << "]";
      }
  }
}

TEST(ModelIo, RejectsFilesThatDoNotMatchTheModel) {
  ScratchDir dir;
  const Model m = random_model();
  const fs::path path = dir / "m.safetensors";
  const std::string where = path.string();

  // Builds a file from the model's tensors after `edit` has changed the list.
  auto write_edited = [&](const std::function<void(std::vector<TensorRef>&)>& edit) {
    std::vector<TensorRef> tensors;
    for (const auto& v : m.layout.views()) tensors.emplace_back(v.spec.name, DType::f32, v.spec.shape, m.params.data() + v.offset);
    edit(tensors);
    write_safetensors(path, tensors);
  };
  auto find = [](std::vector<TensorRef>& ts, const std::string& name) -> TensorRef& {
    for (auto& t : ts)
      if (t.name == name) return t;
    throw std::logic_error("no tensor " + name);
  };
  static const std::vector<float> big(1000, 0.5f);
  static const std::vector<int64_t> ints(1000, 3);

  std::vector<float> params(m.layout.total(), -7.0f);
  auto expect_rejected = [&](const std::vector<std::string>& needles, const std::string& label) {
    expect_user_error([&] { load_model_params(path, m.cfg, m.layout, params); }, needles, label);
    for (float p : params) ASSERT_EQ(p, -7.0f) << label << ": a rejected file changed the parameters";
  };

  write_edited([&](auto& ts) { find(ts, "wpe.weight").shape = {7, 8}; });
  expect_rejected({where, "\"wpe.weight\"", "[7, 8]", "[6, 8]"}, "wrong shape");

  write_edited([&](auto& ts) { find(ts, "h.1.attn.c_attn.weight").shape = {24, 8}; });
  expect_rejected({where, "h.1.attn.c_attn.weight", "[24, 8]", "[8, 24]"}, "transposed");

  write_edited([&](auto& ts) { ts.erase(ts.begin() + 5); });
  expect_rejected({where, "lacks parameter h.0.attn.c_attn.bias", "[24]"}, "missing parameter");

  write_edited([&](auto& ts) { ts.emplace_back("h.0.attn.rotary", DType::f32, std::vector<int64_t>{8}, big.data()); });
  expect_rejected({where, "\"h.0.attn.rotary\"", "not a parameter"}, "unknown tensor");

  // Buffers of a layer the config does not have mean the file is of another model.
  write_edited([&](auto& ts) { ts.emplace_back("h.2.attn.bias", DType::f32, std::vector<int64_t>{1}, big.data()); });
  expect_rejected({where, "\"h.2.attn.bias\""}, "buffer of a missing layer");

  write_edited([&](auto& ts) {
    ts.emplace_back("transformer.ln_f.bias", DType::f32, std::vector<int64_t>{8}, big.data());
  });
  expect_rejected({where, "ln_f.bias twice"}, "prefixed and unprefixed copies");

  write_edited([&](auto& ts) {
    auto& t = find(ts, "ln_f.weight");
    t.dtype = SafetensorsDType::I64;
    t.data = ints.data();
  });
  expect_rejected({where, "\"ln_f.weight\"", "I64"}, "integer parameter");

}

TEST(ModelIo, LoadModelReportsAMissingOrMismatchedWeightsFile) {
  ScratchDir dir;
  const Model m = random_model();
  save_model(dir.path(), m.cfg, m.layout, m.params);
  // A config.json that disagrees with the weights (one more layer).
  GPTConfig bigger = m.cfg;
  bigger.n_layer = 3;
  write_text_atomic(dir / kModelConfigFile, model_config_json(bigger));
  expect_user_error([&] { load_model(dir.path()); }, {(dir / kModelWeightsFile).string(), "lacks parameter h.2.ln_1.weight"},
                    "config has more layers");
  fs::remove(dir / kModelWeightsFile);
  expect_user_error([&] { load_model(dir.path()); }, {(dir / kModelWeightsFile).string(), "not found"}, "no weights");
  expect_user_error([&] { load_model(dir / "nowhere"); }, {"config.json", "not found"}, "no directory");
}

TEST(ModelIo, FailedSaveLeavesNoPartialFile) {
  ScratchDir dir;
  const Model m = random_model();
  // The weights file's name is taken by a directory: the final rename fails, and neither a
  // temporary file nor a config.json may be left behind.
  fs::create_directories(dir / kModelWeightsFile);
  EXPECT_THROW(save_model(dir.path(), m.cfg, m.layout, m.params), UserError);
  EXPECT_EQ(dir_listing(dir.path()), std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE(fs::is_empty(dir / kModelWeightsFile));

  // Failing on the second file (config.json's name is taken) leaves no temporary file either,
  // and the weights written are whole.
  ScratchDir dir2;
  fs::create_directories(dir2 / kModelConfigFile);
  EXPECT_THROW(save_model(dir2.path(), m.cfg, m.layout, m.params), UserError);
  EXPECT_EQ(dir_listing(dir2.path()), (std::vector<std::string>{"config.json", "model.safetensors"}));
  std::vector<float> params(m.layout.total());
  load_model_params(dir2 / kModelWeightsFile, m.cfg, m.layout, params);
  expect_params_equal(m.layout, params, m.params);

  // A file where the directory should be.
  write_text_atomic(dir / "plain", "x");
  expect_user_error([&] { save_model(dir / "plain", m.cfg, m.layout, m.params); }, {(dir / "plain").string()},
                    "directory is a file");
}

}  // namespace
}  // namespace meshlm
