// Hugging Face's tokenizer.json, for GPT-2 style byte-level BPE: its model.vocab and
// model.merges are GPT-2's vocab.json and merges.txt in another wrapping, so they are
// rewritten into those two formats and read by the gpt2 tokenizer. Everything that would
// make the ids differ from that tokenizer's (another model type, a non-byte-level
// pre-tokenizer, subword prefixes, added tokens outside the vocabulary) is refused.
#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"

namespace meshlm {

namespace fs = std::filesystem;
using nlohmann::json;

// Defined in gpt2_tokenizer.cpp: the gpt2 tokenizer from the texts of vocab.json and merges.txt.
std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& vocab_json, const std::string& merges,
                                               const std::string& vocab_source, const std::string& merges_source);

namespace {

// Whether a pre-tokenizer (or a Sequence of them) contains the ByteLevel one.
bool is_byte_level(const json& pre) {
  if (!pre.is_object() || !pre.contains("type") || !pre["type"].is_string()) return false;
  const std::string type = pre["type"].get<std::string>();
  if (type == "ByteLevel") return true;
  if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
    for (const json& p : pre["pretokenizers"])
      if (is_byte_level(p)) return true;
  return false;
}

bool empty_or_null(const json& model, const char* key) {
  auto it = model.find(key);
  return it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const fs::path& path) {
  const std::string where = path.string();
  const json j = json::parse(read_file(path, "Hugging Face tokenizer.json"), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw UserError(cat(where, " is not a valid JSON object"));
  auto unsupported = [&](const std::string& why) {
    return UserError(cat(where, " is not a GPT-2 style byte-level BPE tokenizer (", why,
                         "); meshlm's gpt2 tokenizer reads only those"));
  };
  const auto model_it = j.find("model");
  if (model_it == j.end() || !model_it->is_object()) throw unsupported("it has no \"model\" object");
  const json& model = *model_it;
  if (auto type = model.find("type"); type != model.end() && *type != "BPE")
    throw unsupported(cat("model.type is ", type->dump()));
  if (!model.contains("vocab") || !model["vocab"].is_object() || !model.contains("merges") ||
      !model["merges"].is_array())
    throw unsupported("model.vocab must be an object and model.merges an array");
  if (!is_byte_level(j.value("pre_tokenizer", json())))
    throw unsupported("its pre_tokenizer is not ByteLevel");
  if (!empty_or_null(model, "continuing_subword_prefix") || !empty_or_null(model, "end_of_word_suffix"))
    throw unsupported("it uses a subword prefix or suffix");
  if (auto bf = model.find("byte_fallback"); bf != model.end() && *bf != false && !bf->is_null())
    throw unsupported("it uses byte fallback");

  // Added tokens must already be tokens of the vocabulary, under the same id: meshlm does not
  // match special tokens in text (neither does GPT-2's reference encoder).
  const json& vocab = model["vocab"];
  if (auto added = j.find("added_tokens"); added != j.end() && added->is_array()) {
    for (const json& t : *added) {
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id"))
        throw UserError(cat(where, ": each entry of \"added_tokens\" needs a string \"content\" and an \"id\""));
      const std::string content = t["content"].get<std::string>();
      auto v = vocab.find(content);
      if (v == vocab.end() || *v != t["id"])
        throw unsupported(cat("added token ", json(content).dump(), " with id ", t["id"].dump(),
                              " is not in model.vocab under that id"));
    }
  }

  // merges.txt's format: a version line, then "a b" per line. Token texts over the byte
  // alphabet hold no space or newline, so a merge that does cannot be written (nor is GPT-2's).
  std::string merges = "#version: 0.2\n";
  for (const json& m : model["merges"]) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) throw unsupported(cat("merge ", m.dump(), " is not \"a b\""));
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw unsupported(cat("merge ", m.dump(), " is neither \"a b\" nor [a, b]"));
    }
    if (a.empty() || b.empty() || a.find_first_of(" \n\r") != std::string::npos ||
        b.find_first_of(" \n\r") != std::string::npos)
      throw unsupported(cat("merge ", m.dump(), " is not a pair of byte-level tokens"));
    merges += cat(a, " ", b, "\n");
  }
  return make_gpt2_tokenizer(vocab.dump(), merges, where + " (model.vocab)", where + " (model.merges)");
}

}  // namespace meshlm
