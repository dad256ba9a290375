#pragma once
// The built-in catalog's text: catalog/models.json, embedded at build time
// (cmake/embed_catalog.cmake).
#include <string_view>

namespace imgbatch::jobs {
std::string_view builtin_catalog_json();
}  // namespace imgbatch::jobs
