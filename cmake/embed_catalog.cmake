# Writes OUT: a C++ file holding catalog/models.json (SRC) as the built-in catalog's text.
file(READ ${SRC} text)
if(text MATCHES "\\)imgbatch_catalog\"")
  message(FATAL_ERROR "${SRC} contains the raw string delimiter )imgbatch_catalog\"")
endif()
file(WRITE ${OUT}.tmp "// Generated from catalog/models.json by cmake/embed_catalog.cmake. Do not edit.\n#include \"jobs/catalog_data.hpp\"\n\nnamespace imgbatch::jobs {\nstd::string_view builtin_catalog_json() {\n    static constexpr std::string_view text = R\"imgbatch_catalog(${text})imgbatch_catalog\";\n    return text;\n}\n}  // namespace imgbatch::jobs\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
