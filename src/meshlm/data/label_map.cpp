#include "meshlm/data/label_map.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

LabelMap LabelMap::from_names(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.empty()) throw UserError("the data has no labels");
  LabelMap m;
  m.names_ = std::move(names);
  return m;
}

LabelMap LabelMap::load(const std::filesystem::path& file, std::string* task) {
  const std::string text = read_file(file, "label file");
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    std::vector<std::string> names = j.at("labels").get<std::vector<std::string>>();
    if (task) *task = j.at("task").get<std::string>();
    const size_t given = names.size();
    LabelMap m = from_names(std::move(names));
    if (size_t(m.size()) != given) throw UserError(cat(file.string(), " lists a label twice"));
    return m;
  } catch (const nlohmann::json::exception&) {
    throw UserError(cat(file.string(), " is not a label file ({\"task\": ..., \"labels\": [...]})"));
  }
}

void LabelMap::save(const std::filesystem::path& file, const std::string& task) const {
  nlohmann::ordered_json j;
  j["task"] = task;
  j["labels"] = names_;
  write_text_atomic(file, j.dump(1) + "\n");
}

int32_t LabelMap::id(const std::string& name, const std::string& where) const {
  const auto it = std::lower_bound(names_.begin(), names_.end(), name);
  if (it == names_.end() || *it != name)
    throw UserError(cat("unknown label \"", name, "\" in ", where, " (the labels are those of the training data: ",
                        names_.size(), " of them)"));
  return int32_t(it - names_.begin());
}

}  // namespace meshlm
