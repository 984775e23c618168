#pragma once
// The labels of a task and their ids: sorted by name, so that the same label set always gets
// the same ids. Stored with prepared data and with a fine-tuned model as labels.json:
//   {"task": "classify", "labels": ["ham", "spam"]}
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace meshlm {

class LabelMap {
 public:
  // The distinct names of `names`, sorted. Empty: a UserError.
  static LabelMap from_names(std::vector<std::string> names);
  // Reads labels.json; a missing or malformed file is a UserError naming it.
  static LabelMap load(const std::filesystem::path& file, std::string* task = nullptr);
  // Writes labels.json atomically.
  void save(const std::filesystem::path& file, const std::string& task) const;

  // The id of `name`; an unknown one is a UserError naming it and `where` (a file, a split).
  int32_t id(const std::string& name, const std::string& where) const;
  const std::string& name(int32_t id) const { return names_[size_t(id)]; }
  const std::vector<std::string>& names() const { return names_; }
  int64_t size() const { return int64_t(names_.size()); }

 private:
  std::vector<std::string> names_;  // sorted, distinct
};

}  // namespace meshlm
