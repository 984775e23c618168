#include "meshlm/train/span_metrics.hpp"

#include <algorithm>

#include "meshlm/core/error.hpp"
#include "meshlm/train/classification_metrics.hpp"

namespace meshlm {

namespace {
// The tag's prefix ('B', 'I' or 'O') and type ("" for O).
std::pair<char, std::string> parse_tag(const std::string& tag) {
  if (tag == "O") return {'O', ""};
  if (tag.size() > 2 && (tag[0] == 'B' || tag[0] == 'I') && tag[1] == '-') return {tag[0], tag.substr(2)};
  return {'?', tag};
}
}  // namespace

std::vector<Span> bio_spans(const std::vector<std::string>& tags) {
  std::vector<Span> spans;
  bool open = false;
  Span cur;
  for (int64_t i = 0; i < int64_t(tags.size()); ++i) {
    const auto [prefix, type] = parse_tag(tags[size_t(i)]);
    const bool continues = open && prefix == 'I' && type == cur.type;
    if (open && !continues) {
      cur.end = i;
      spans.push_back(cur);
      open = false;
    }
    if (!continues && (prefix == 'B' || prefix == 'I')) {
      cur = Span{type, i, i};
      open = true;
    }
  }
  if (open) {
    cur.end = int64_t(tags.size());
    spans.push_back(cur);
  }
  return spans;
}

bool is_bio_tagging(const std::vector<std::string>& tag_names) {
  return !tag_names.empty() && std::all_of(tag_names.begin(), tag_names.end(), [](const std::string& t) {
    return parse_tag(t).first != '?';
  });
}

void SpanCounter::add(const std::vector<std::string>& truth, const std::vector<std::string>& predicted) {
  MESHLM_ASSERT(truth.size() == predicted.size(), truth.size(), " true tags against ", predicted.size(), " predicted");
  const std::vector<Span> t = bio_spans(truth), p = bio_spans(predicted);
  true_ += int64_t(t.size());
  predicted_ += int64_t(p.size());
  for (const Span& s : p) correct_ += std::count(t.begin(), t.end(), s) > 0;
}

SpanScores SpanCounter::scores() const {
  SpanScores s;
  s.true_spans = true_;
  s.predicted_spans = predicted_;
  s.correct = correct_;
  s.precision = predicted_ > 0 ? double(correct_) / double(predicted_) : 0.0;
  s.recall = true_ > 0 ? double(correct_) / double(true_) : 0.0;
  s.f1 = f1_score(s.precision, s.recall);
  return s;
}

}  // namespace meshlm
