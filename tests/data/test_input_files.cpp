#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/data/input_files.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_support::ScratchDir;

TEST(GlobMatch, StarAndQuestionMarkStayInsideOneSegment) {
  EXPECT_TRUE(glob_match("data/*.txt", "data/a.txt"));
  EXPECT_FALSE(glob_match("data/*.txt", "data/sub/a.txt"));
  EXPECT_TRUE(glob_match("data/?.txt", "data/a.txt"));
  EXPECT_FALSE(glob_match("data/?.txt", "data/ab.txt"));
  EXPECT_TRUE(glob_match("d*a/*", "data/x"));
  EXPECT_FALSE(glob_match("data/*.txt", "data/a.txt.gz"));
  EXPECT_TRUE(glob_match("*a*b*", "xxaxxbxx"));
  EXPECT_FALSE(glob_match("*a*b*", "xxbxxaxx"));
}

TEST(GlobMatch, PatternWithoutSlashMatchesTheFileNameAtAnyDepth) {
  EXPECT_TRUE(glob_match("*.txt", "a.txt"));
  EXPECT_TRUE(glob_match("*.txt", "data/deep/a.txt"));
  EXPECT_FALSE(glob_match("*.txt", "data.txt/package.json"));
  EXPECT_FALSE(glob_match("*.txt", "notes.TXT"));  // case-sensitive
  EXPECT_TRUE(glob_match("README", "docs/README"));
}

TEST(GlobMatch, DoubleStarIsAnyNumberOfDirectories) {
  EXPECT_TRUE(glob_match("data/**/*.md", "data/a.md"));
  EXPECT_TRUE(glob_match("data/**/*.md", "data/x/y/a.md"));
  EXPECT_FALSE(glob_match("data/**/*.md", "other/x/a.md"));
  EXPECT_TRUE(glob_match("**/lib/*.js", "lib/a.js"));
  EXPECT_TRUE(glob_match("**/lib/*.js", "x/lib/a.js"));
  EXPECT_TRUE(glob_match("data/**", "data/x/y/z.bin"));
  EXPECT_TRUE(glob_match("./data/*.txt", "data/a.txt"));
}

class InputFilesTest : public ::testing::Test {
 protected:
  fs::path write(const std::string& rel, const std::string& text = "some text\n") {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  const ScratchDir scratch_;
  const fs::path dir_ = scratch_.path();
};

// The case: an npm package with its corpus in data/*.txt next to code and metadata.
TEST_F(InputFilesTest, DefaultFilterReadsTextFilesAndReportsTheRest) {
  write("pkg/package.json", "{}");
  write("pkg/lib/index.js", "module.exports = 1;\n");
  write("pkg/README.md", "# readme\n");
  write("pkg/data/b.txt");
  write("pkg/data/a.txt");
  write("pkg/.cache/c.txt");
  InputSelection s = select_input_files({dir_ / "pkg"});
  EXPECT_TRUE(s.default_filter);
  EXPECT_EQ(s.filter, kDefaultInputGlobs);
  EXPECT_EQ(s.files, (std::vector<fs::path>{dir_ / "pkg/data/a.txt", dir_ / "pkg/data/b.txt"}));
  EXPECT_EQ(s.skipped,
            (std::vector<fs::path>{dir_ / "pkg/README.md", dir_ / "pkg/lib/index.js", dir_ / "pkg/package.json"}));
}

TEST_F(InputFilesTest, GlobsReplaceTheDefaultAndNamedFilesAreAlwaysRead) {
  write("pkg/package.json", "{}");
  write("pkg/data/a.txt");
  write("pkg/data/x/y.md");
  write("pkg/top.md");
  InputSelection s = select_input_files({dir_ / "pkg"}, {"data/**/*.md"});
  EXPECT_FALSE(s.default_filter);
  EXPECT_EQ(s.files, (std::vector<fs::path>{dir_ / "pkg/data/x/y.md"}));
  EXPECT_EQ(s.skipped.size(), 3u);
  // package.json named on its own is read even though the filter leaves it out of the directory.
  s = select_input_files({dir_ / "pkg", dir_ / "pkg/package.json"}, {"*.md"});
  EXPECT_EQ(s.files, (std::vector<fs::path>{dir_ / "pkg/data/x/y.md", dir_ / "pkg/top.md", dir_ / "pkg/package.json"}));
  EXPECT_EQ(s.skipped, (std::vector<fs::path>{dir_ / "pkg/data/a.txt"}));
}

TEST_F(InputFilesTest, DirectoryWithNoMatchingFileIsAnErrorNamingTheFilter) {
  write("pkg/package.json", "{}");
  write("pkg/lib/index.js", "1;\n");
  try {
    select_input_files({dir_ / "pkg"});
    ADD_FAILURE() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no file in"));
    EXPECT_THAT(e.what(), HasSubstr("--glob '*.txt' (the default for directories)"));
    EXPECT_THAT(e.what(), HasSubstr("package.json"));
  }
  write("text/a.txt");
  EXPECT_THROW(select_input_files({dir_ / "text", dir_ / "pkg"}, {"*.txt"}), UserError);
  fs::create_directories(dir_ / "empty");
  EXPECT_THROW(select_input_files({dir_ / "empty"}), UserError);
}

TEST_F(InputFilesTest, MalformedPatternsAreRefused) {
  write("a.txt");
  EXPECT_THROW(select_input_files({dir_}, {""}), UserError);
  EXPECT_THROW(select_input_files({dir_}, {"/abs/*.txt"}), UserError);
  EXPECT_THROW(select_input_files({dir_}, {"../*.txt"}), UserError);
}

TEST(AbbreviatedList, ShowsFewNamesAllAndManyAsTheFirstThreeAndACount) {
  EXPECT_EQ(abbreviated_list({"a", "b"}), "a, b");
  EXPECT_EQ(abbreviated_list({"a", "b", "c", "d", "e"}), "a, b, c, d, e");
  EXPECT_EQ(abbreviated_list({"a", "b", "c", "d", "e", "f", "g"}), "a, b, c, \u2026 4 more");
}

}  // namespace
}  // namespace meshlm
