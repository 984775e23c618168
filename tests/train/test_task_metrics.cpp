// Task metrics (train/classification_metrics.hpp, train/span_metrics.hpp) against values worked
// out by hand, empty and never-true classes included.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "meshlm/train/classification_metrics.hpp"
#include "meshlm/train/span_metrics.hpp"

namespace meshlm {
namespace {

// Four classes: A and B occur, C never (neither true nor predicted), D is predicted once but
// never true.
//   truth \ predicted   A  B  C  D
//   A                   3  1  0  1
//   B                   2  2  0  0
ConfusionMatrix four_classes() {
  ConfusionMatrix m(4);
  m.add(0, 0, 3);
  m.add(0, 1);
  m.add(0, 3);
  m.add(1, 0, 2);
  m.add(1, 1, 2);
  return m;
}

TEST(ClassificationMetrics, HandComputedMatrixWithAnEmptyAndANeverTrueClass) {
  const ConfusionMatrix m = four_classes();
  const ClassificationReport r = classification_report(m);
  EXPECT_EQ(r.total, 9);
  EXPECT_DOUBLE_EQ(r.accuracy, 5.0 / 9.0);
  EXPECT_DOUBLE_EQ(r.micro_f1, 5.0 / 9.0);
  // A: 3 of 5 predicted are right, 3 of 5 true are found.
  EXPECT_DOUBLE_EQ(r.per_class[0].precision, 0.6);
  EXPECT_DOUBLE_EQ(r.per_class[0].recall, 0.6);
  EXPECT_NEAR(r.per_class[0].f1, 0.6, 1e-15);
  // B: 2 of 3 predicted, 2 of 4 true: F1 = 2 · (2/3) · (1/2) / (2/3 + 1/2) = 4/7.
  EXPECT_DOUBLE_EQ(r.per_class[1].precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.per_class[1].recall, 0.5);
  EXPECT_NEAR(r.per_class[1].f1, 4.0 / 7.0, 1e-15);
  // C: no support, never predicted: zeros, and left out of the macro averages.
  EXPECT_EQ(r.per_class[2].support, 0);
  EXPECT_EQ(r.per_class[2].f1, 0.0);
  // D: predicted once, never true: precision 0, counted in the averages.
  EXPECT_EQ(r.per_class[3].predicted, 1);
  EXPECT_EQ(r.per_class[3].precision, 0.0);
  EXPECT_EQ(r.averaged_classes, 3);
  EXPECT_NEAR(r.macro_f1, (0.6 + 4.0 / 7.0 + 0.0) / 3.0, 1e-15);
  EXPECT_NEAR(r.macro_precision, (0.6 + 2.0 / 3.0 + 0.0) / 3.0, 1e-15);
  EXPECT_NEAR(r.macro_recall, (0.6 + 0.5 + 0.0) / 3.0, 1e-15);
}

TEST(ClassificationMetrics, PerfectAndEmptyPredictions) {
  ConfusionMatrix perfect(2);
  perfect.add(0, 0, 4);
  perfect.add(1, 1, 1);
  const ClassificationReport p = classification_report(perfect);
  EXPECT_EQ(p.accuracy, 1.0);
  EXPECT_EQ(p.macro_f1, 1.0);
  const ClassificationReport none = classification_report(ConfusionMatrix(3));
  EXPECT_EQ(none.total, 0);
  EXPECT_EQ(none.accuracy, 0.0);
  EXPECT_EQ(none.macro_f1, 0.0);
  EXPECT_EQ(none.averaged_classes, 0);
}

TEST(ClassificationMetrics, JsonNamesClassesAndKeepsTheMatrix) {
  const ConfusionMatrix m = four_classes();
  const nlohmann::ordered_json j = report_json(classification_report(m), m, {"A", "B", "C", "D"});
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 5.0 / 9.0);
  EXPECT_EQ(j["per_class"]["B"]["support"].get<int64_t>(), 4);
  EXPECT_EQ(j["confusion_matrix"][0], nlohmann::json({3, 1, 0, 1}));
  EXPECT_EQ(j["confusion_matrix"][1], nlohmann::json({2, 2, 0, 0}));
  EXPECT_EQ(j["labels"][3].get<std::string>(), "D");
}

TEST(SpanMetrics, BioSpansAsTheConllEvaluationReadsThem) {
  using V = std::vector<std::string>;
  EXPECT_EQ(bio_spans(V{"B-PER", "I-PER", "O", "B-LOC"}), (std::vector<Span>{{"PER", 0, 2}, {"LOC", 3, 4}}));
  // An I- after O begins a span; one of another type begins a new one.
  EXPECT_EQ(bio_spans(V{"I-PER", "I-PER", "O"}), (std::vector<Span>{{"PER", 0, 2}}));
  EXPECT_EQ(bio_spans(V{"B-PER", "I-LOC", "I-LOC"}), (std::vector<Span>{{"PER", 0, 1}, {"LOC", 1, 3}}));
  EXPECT_EQ(bio_spans(V{"B-PER", "B-PER"}), (std::vector<Span>{{"PER", 0, 1}, {"PER", 1, 2}}));
  EXPECT_TRUE(bio_spans(V{"O", "O"}).empty());
  EXPECT_TRUE(is_bio_tagging({"O", "B-PER", "I-PER"}));
  EXPECT_FALSE(is_bio_tagging({"NN", "VB"}));  // part-of-speech tags: no spans
}

TEST(SpanMetrics, ASpanCountsOnlyWithTypeStartAndEnd) {
  SpanCounter c;
  // PER is cut short (wrong end), LOC is right.
  c.add({"B-PER", "I-PER", "O", "B-LOC"}, {"B-PER", "O", "O", "B-LOC"});
  // A span of the wrong type, and a true span missed.
  c.add({"B-ORG", "O", "B-MISC"}, {"B-LOC", "O", "O"});
  const SpanScores s = c.scores();
  EXPECT_EQ(s.true_spans, 4);
  EXPECT_EQ(s.predicted_spans, 3);
  EXPECT_EQ(s.correct, 1);
  EXPECT_DOUBLE_EQ(s.precision, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.recall, 0.25);
  EXPECT_NEAR(s.f1, 2 * (1.0 / 3.0) * 0.25 / (1.0 / 3.0 + 0.25), 1e-15);
}

}  // namespace
}  // namespace meshlm
