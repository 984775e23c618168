// Enumerated config values are parsed once, when the config is read: an unknown name is an error
// naming the key and the names it takes, whether it comes from TOML, the command line or a
// checkpoint's config.json; the enumerations travel through config.json by name.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/parallel/parallel_config.hpp"
#include "meshlm/train/run_config.hpp"

namespace meshlm {
namespace {

struct ChoiceKey {
  const char* key;    // section.name
  const char* names;  // as the error lists them
};

const std::vector<ChoiceKey> kChoiceKeys = {
    {"train.decay", "cosine, linear or constant"},  {"train.device", "cpu or cuda"},
    {"train.recompute", "none, selective or full"}, {"train.precision", "fp32, bf16 or fp16"},
    {"optim.name", "adamw, adam, sgd or adagrad"},  {"parallel.pp_schedule", "gpipe or 1f1b"},
    {"parallel.allreduce", "auto, ring or native"}, {"parallel.grad_reduce_dtype", "f32 or bf16"},
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(RunConfigChoices, UnknownNamesAreErrorsNamingTheKeyAndTheNames) {
  for (const auto& [key, names] : kChoiceKeys) {
    const std::string k(key), section = k.substr(0, k.find('.')), name = k.substr(k.find('.') + 1);
    RunConfig cfg;
    EXPECT_EQ(error_of([&] { apply_override(cfg, key, "bogus"); }),
              cat("command line: ", key, " must be ", names, ", got 'bogus'"));
    EXPECT_EQ(error_of([&] { apply_toml_text(cfg, cat("[", section, "]\n", name, " = \"bogus\"\n"), "t.toml"); }),
              cat("t.toml: ", key, " must be ", names, ", got 'bogus'"));
    EXPECT_NE(error_of([&] { apply_toml_text(cfg, cat("[", section, "]\n", name, " = 3\n"), "t.toml"); }).find(names),
              std::string::npos)
        << key << ": a number where a name belongs";
  }
}

TEST(RunConfigChoices, EveryNameSetsItsValueAndSurvivesConfigJson) {
  RunConfig cfg;
  apply_override(cfg, "train.decay", "linear");
  apply_override(cfg, "train.recompute", "full");
  apply_override(cfg, "train.precision", "bf16");
  apply_override(cfg, "optim.name", "sgd");
  apply_override(cfg, "parallel.pp_schedule", "gpipe");
  apply_override(cfg, "parallel.allreduce", "native");
  apply_toml_text(cfg, "[parallel]\ngrad_reduce_dtype = \"bf16\"\n", "t.toml");
  EXPECT_EQ(cfg.train.decay, Decay::linear);
  EXPECT_EQ(cfg.train.recompute, Recompute::full);
  EXPECT_EQ(cfg.train.precision, Precision::bf16);
  EXPECT_EQ(cfg.optim.name, OptimizerKind::sgd);
  EXPECT_EQ(cfg.parallel.pp_schedule, PipeSchedule::gpipe);
  EXPECT_EQ(cfg.parallel.allreduce, AllReduceChoice::native);
  EXPECT_EQ(cfg.parallel.grad_reduce_dtype, DType::bf16);

  const std::string json = config_to_json(cfg);
  EXPECT_NE(json.find("\"parallel.pp_schedule\": \"gpipe\""), std::string::npos) << json;
  const RunConfig back = config_from_json(json, "config.json");
  EXPECT_EQ(config_to_json(back), json);
  EXPECT_EQ(back.optim.name, OptimizerKind::sgd);
  EXPECT_EQ(back.parallel.grad_reduce_dtype, DType::bf16);

  EXPECT_EQ(error_of([] { config_from_json("{\"train.precision\": \"fp8\"}", "ck/config.json"); }),
            "ck/config.json: train.precision must be fp32, bf16 or fp16, got 'fp8'");
}

// NCCL runs its own all-reduce only: asking for our ring there is refused, not ignored.
TEST(RunConfigChoices, AllReduceChoiceResolvesPerBackend) {
  EXPECT_EQ(allreduce_algo_for(AllReduceChoice::automatic, "mpi"), AllReduceAlgo::ring);
  EXPECT_EQ(allreduce_algo_for(AllReduceChoice::automatic, "self"), AllReduceAlgo::ring);
  EXPECT_EQ(allreduce_algo_for(AllReduceChoice::automatic, "nccl"), AllReduceAlgo::native);
  EXPECT_EQ(allreduce_algo_for(AllReduceChoice::ring, "mpi"), AllReduceAlgo::ring);
  EXPECT_EQ(allreduce_algo_for(AllReduceChoice::native, "mpi"), AllReduceAlgo::native);
  EXPECT_EQ(allreduce_algo_for(AllReduceChoice::native, "nccl"), AllReduceAlgo::native);
  EXPECT_NE(error_of([] { allreduce_algo_for(AllReduceChoice::ring, "nccl"); }).find("parallel.allreduce = ring"),
            std::string::npos);
}

}  // namespace
}  // namespace meshlm
