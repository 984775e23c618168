#pragma once
// The spellings of an enumeration that users write (config values, command-line options):
// each enumeration lists its values with their names once, in an array of EnumName, and the
// helpers here parse, print and list them from that one array.
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "meshlm/core/error.hpp"

namespace meshlm {

template <class E>
struct EnumName {
  E value;
  std::string_view name;
};

template <class E, size_t N>
using EnumNames = std::array<EnumName<E>, N>;

template <class E, size_t N>
constexpr std::optional<E> enum_from_name(const EnumNames<E, N>& names, std::string_view name) {
  for (const auto& n : names)
    if (n.name == name) return n.value;
  return std::nullopt;
}

template <class E, size_t N>
constexpr std::string_view enum_to_name(const EnumNames<E, N>& names, E value) {
  for (const auto& n : names)
    if (n.value == value) return n.name;
  MESHLM_ASSERT(false, "enumeration value ", int(value), " has no name");
  return {};
}

// "a, b or c": the allowed names, for error messages and help texts.
template <class E, size_t N>
std::string enum_choices(const EnumNames<E, N>& names) {
  std::string out;
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += names[i].name;
  }
  return out;
}

// The value named `name`, or a UserError "<what> must be a, b or c, got 'x'".
template <class E, size_t N>
E parse_enum(const EnumNames<E, N>& names, std::string_view name, std::string_view what) {
  if (auto v = enum_from_name(names, name)) return *v;
  throw UserError(cat(what, " must be ", enum_choices(names), ", got '", name, "'"));
}

}  // namespace meshlm
