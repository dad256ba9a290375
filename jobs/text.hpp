#pragma once
// Small text helpers shared by the job-file readers and validation.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace imgbatch::jobs {

// Length of the well-formed UTF-8 sequence at s[i] (1..4; NUL counts as 1), 0 if the bytes
// there are not one (a stray or missing continuation byte, an overlong form, a surrogate, a
// code point above U+10FFFF, the end of s).
std::size_t utf8_sequence_at(std::string_view s, std::size_t i);

// Whether s is well-formed UTF-8 (no overlongs, no surrogates) without NUL bytes.
bool is_clean_utf8(std::string_view s);

// Number of Unicode code points in well-formed UTF-8 text (continuation bytes not counted).
std::size_t utf8_length(std::string_view s);

// s without leading and trailing ASCII whitespace (space, tab, CR, LF, VT, FF).
std::string_view trim(std::string_view s);

// "a, b, c"
std::string join(const std::vector<std::string>& items, std::string_view sep = ", ");

}  // namespace imgbatch::jobs
