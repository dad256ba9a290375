# Writes OUT: a C++ file defining `std::string_view NAME()` in namespace imgbatch that returns
# the text of the file SRC (report/report.html: the report's page).
file(READ ${SRC} text)
string(FIND "${text}" ")imgbatch_text\"" found)
if(NOT found EQUAL -1)
  message(FATAL_ERROR "${SRC} contains the raw string delimiter")
endif()
file(WRITE ${OUT}.tmp "// Generated from ${SRC} by cmake/embed_text.cmake. Do not edit.\n#include <string_view>\n\nnamespace imgbatch {\nstd::string_view ${NAME}() {\n    static constexpr std::string_view text = R\"imgbatch_text(${text})imgbatch_text\";\n    return text;\n}\n}  // namespace imgbatch\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
