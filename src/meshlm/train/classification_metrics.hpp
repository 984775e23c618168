#pragma once
// Metrics of a labelled task (sequence or token classification): a confusion matrix and what
// is read from it — accuracy, per-class precision, recall and F1, their macro averages, and
// micro-F1. Conventions (those of the usual reporting tools):
//   - precision of a class never predicted, and recall of a class never true, are 0;
//   - F1 = 2PR / (P + R), 0 when P + R = 0;
//   - macro averages run over the classes that occur in the truth or in the predictions (a
//     class absent from both has no defined scores and is left out; the report lists it with
//     zero support);
//   - micro-F1 pools every decision: for single-label classification it equals accuracy.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace meshlm {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t classes);
  // One decision: the true class and the predicted one (each in [0, classes)).
  void add(int64_t truth, int64_t predicted, int64_t count = 1);
  int64_t at(int64_t truth, int64_t predicted) const { return counts_[size_t(truth * classes_ + predicted)]; }
  int64_t classes() const { return classes_; }
  int64_t total() const { return total_; }
  int64_t true_count(int64_t c) const;       // row sum: the class's support
  int64_t predicted_count(int64_t c) const;  // column sum

 private:
  int64_t classes_;
  std::vector<int64_t> counts_;  // [truth][predicted]
  int64_t total_ = 0;
};

struct ClassScores {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;     // decisions whose true class this is
  int64_t predicted = 0;   // decisions predicting it
};

struct ClassificationReport {
  int64_t total = 0;
  double accuracy = 0;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double micro_f1 = 0;
  int64_t averaged_classes = 0;  // the classes the macro averages ran over
  std::vector<ClassScores> per_class;
};

ClassificationReport classification_report(const ConfusionMatrix& m);

// F1 from precision and recall (0 when both are 0).
double f1_score(double precision, double recall);

// The report and the confusion matrix as JSON, classes named by `labels` (one per class).
nlohmann::ordered_json report_json(const ClassificationReport& r, const ConfusionMatrix& m,
                                   const std::vector<std::string>& labels);

}  // namespace meshlm
