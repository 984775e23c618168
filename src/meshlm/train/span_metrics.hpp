#pragma once
// Span-level scores of BIO-encoded tagging (named-entity recognition): tags "B-TYPE" begin a
// span, "I-TYPE" continue one, "O" is outside. As the CoNLL evaluation reads them, an I-TYPE
// that does not continue a span of TYPE (after O, or after another type) begins a new span,
// and a span ends where the next tag does not continue it. A predicted span counts as correct
// only if a true span has the same type, start and end.
#include <cstdint>
#include <string>
#include <vector>

namespace meshlm {

struct Span {
  std::string type;
  int64_t begin = 0, end = 0;  // [begin, end) in the sequence
  bool operator==(const Span&) const = default;
};

// The spans of one sequence of tags.
std::vector<Span> bio_spans(const std::vector<std::string>& tags);

// Whether every tag reads as BIO ("O", or "B-" / "I-" followed by a type).
bool is_bio_tagging(const std::vector<std::string>& tag_names);

struct SpanScores {
  int64_t true_spans = 0, predicted_spans = 0, correct = 0;
  double precision = 0, recall = 0, f1 = 0;
};

// Accumulates span counts over sequences.
class SpanCounter {
 public:
  void add(const std::vector<std::string>& truth, const std::vector<std::string>& predicted);
  SpanScores scores() const;

 private:
  int64_t true_ = 0, predicted_ = 0, correct_ = 0;
};

}  // namespace meshlm
