#pragma once
// The model catalog: what each model accepts. Built in (SPEC table), overridable by config.
#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgbatch::jobs {

struct ModelInfo {
    std::string name;
    std::string family;              // "dall-e-2", "dall-e-3", "gpt-image", "gpt-image-2", "relay",
                                     // "imagen", "imagen-ultra", or "custom" for config additions
    int max_per_request = 1;         // images one request may ask for
    std::vector<std::string> sizes;  // allowed "size" values; empty: size not accepted
    bool free_size = false;          // gpt-image-2: any WxH, multiples of 16,
                                     // ratio 1:3..3:1, at most 3840x2160
    std::vector<std::string> aspect_ratios;  // allowed "aspect_ratio" (Imagen); empty: not accepted
    std::vector<std::string> image_sizes;    // allowed "image_size" (1K/2K); empty: not accepted
    std::size_t prompt_limit = 32000;        // characters (Unicode code points)
    std::string prompt_note;  // why the limit is what it is, for messages ("about 480 tokens")
    // Open models (added by config without "like") check only what their entry describes:
    // any other parameter, "size" included when no sizes are listed, passes through.
    bool open = false;
    // Allowed values of enum parameters, e.g. {"quality": {"low","medium","high","auto"}}.
    std::map<std::string, std::vector<std::string>> enums;
    // Integer parameters with their inclusive range, e.g. {"output_compression": {0, 100}}.
    std::map<std::string, std::pair<int, int>> int_ranges;
};

// The named generation parameters a job line may give and a catalog entry may describe:
// size, aspect_ratio, quality, style, background, moderation, output_format,
// output_compression, image_size, person_generation. Other params are provider-native and
// pass through.
const std::vector<std::string>& generation_fields();
bool is_generation_field(std::string_view name);

class Catalog {
  public:
    // The built-in catalog of the SPEC.
    static Catalog builtin();

    // Applies config "models": {"name": {"max_per_request": 2, "sizes": [...], "family": ...}}.
    // An unknown name adds a model (starting from defaults, or from "like": "other-model").
    // Throws std::invalid_argument naming the model and field on a bad value.
    void apply_config(const boost::json::object& models);

    const ModelInfo* find(std::string_view model) const;
    std::vector<std::string> names() const;  // sorted

  private:
    std::map<std::string, ModelInfo, std::less<>> models_;
};

}  // namespace imgbatch::jobs
