#include "meshlm/train/classification_metrics.hpp"

#include <nlohmann/json.hpp>

#include "meshlm/core/error.hpp"

namespace meshlm {

ConfusionMatrix::ConfusionMatrix(int64_t classes) : classes_(classes), counts_(size_t(classes * classes), 0) {
  MESHLM_ASSERT(classes > 0, "a confusion matrix of ", classes, " classes");
}

void ConfusionMatrix::add(int64_t truth, int64_t predicted, int64_t count) {
  MESHLM_ASSERT(truth >= 0 && truth < classes_ && predicted >= 0 && predicted < classes_, "class ", truth, " or ",
                predicted, " outside [0, ", classes_, ")");
  counts_[size_t(truth * classes_ + predicted)] += count;
  total_ += count;
}

int64_t ConfusionMatrix::true_count(int64_t c) const {
  int64_t n = 0;
  for (int64_t p = 0; p < classes_; ++p) n += at(c, p);
  return n;
}

int64_t ConfusionMatrix::predicted_count(int64_t c) const {
  int64_t n = 0;
  for (int64_t t = 0; t < classes_; ++t) n += at(t, c);
  return n;
}

double f1_score(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

ClassificationReport classification_report(const ConfusionMatrix& m) {
  ClassificationReport r;
  r.total = m.total();
  int64_t correct = 0;
  for (int64_t c = 0; c < m.classes(); ++c) {
    ClassScores s;
    const int64_t hit = m.at(c, c);
    correct += hit;
    s.support = m.true_count(c);
    s.predicted = m.predicted_count(c);
    s.precision = s.predicted > 0 ? double(hit) / double(s.predicted) : 0.0;
    s.recall = s.support > 0 ? double(hit) / double(s.support) : 0.0;
    s.f1 = f1_score(s.precision, s.recall);
    if (s.support > 0 || s.predicted > 0) {
      r.macro_precision += s.precision;
      r.macro_recall += s.recall;
      r.macro_f1 += s.f1;
      ++r.averaged_classes;
    }
    r.per_class.push_back(s);
  }
  if (r.averaged_classes > 0) {
    r.macro_precision /= double(r.averaged_classes);
    r.macro_recall /= double(r.averaged_classes);
    r.macro_f1 /= double(r.averaged_classes);
  }
  r.accuracy = r.total > 0 ? double(correct) / double(r.total) : 0.0;
  // Pooled: every wrong decision is one false positive and one false negative, so micro
  // precision = micro recall = accuracy.
  r.micro_f1 = r.accuracy;
  return r;
}

nlohmann::ordered_json report_json(const ClassificationReport& r, const ConfusionMatrix& m,
                                   const std::vector<std::string>& labels) {
  MESHLM_ASSERT(int64_t(labels.size()) == m.classes(), labels.size(), " labels for ", m.classes(), " classes");
  nlohmann::ordered_json j;
  j["total"] = r.total;
  j["accuracy"] = r.accuracy;
  j["macro_precision"] = r.macro_precision;
  j["macro_recall"] = r.macro_recall;
  j["macro_f1"] = r.macro_f1;
  j["micro_f1"] = r.micro_f1;
  nlohmann::ordered_json per = nlohmann::ordered_json::object();
  for (size_t c = 0; c < labels.size(); ++c) {
    const ClassScores& s = r.per_class[c];
    per[labels[c]] = {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}, {"support", s.support},
                      {"predicted", s.predicted}};
  }
  j["per_class"] = per;
  j["labels"] = labels;
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (int64_t t = 0; t < m.classes(); ++t) {
    nlohmann::ordered_json row = nlohmann::ordered_json::array();
    for (int64_t p = 0; p < m.classes(); ++p) row.push_back(m.at(t, p));
    rows.push_back(row);
  }
  j["confusion_matrix"] = rows;  // rows: true class, columns: predicted, in `labels` order
  return j;
}

}  // namespace meshlm
