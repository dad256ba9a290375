#pragma once
// The model catalog: what each model accepts and where it stands in its lifecycle. The
// default is catalog/models.json, embedded in the binary; a config may replace it
// (catalog_file) and override or add models ("models").
#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/pricing.hpp"

namespace imgbatch::jobs {

// gpt-image-2's free sizes: any WxH within these bounds.
struct FreeSizeRules {
    int multiple = 16;            // both sides multiples of this
    int max_ratio = 3;            // long side at most max_ratio times the short side
    int max_long = 3840;          // long side at most
    int max_short = 2160;         // short side at most
    long min_pixels = 655'360;    // width * height at least
    long max_pixels = 8'294'400;  // width * height at most
};

// Where a model stands as written in the catalog; lifecycle_on() says what it amounts to on a
// given day.
enum class ModelStatus { active, deprecated, retired };
std::string_view to_string(ModelStatus s);

struct ModelInfo {
    std::string name;
    std::string api;                 // the vendor's API style: openai, google, gemini; "" unknown
    std::string family;              // "dall-e-2", "dall-e-3", "gpt-image", "gpt-image-2", "relay",
                                     // "imagen", "imagen-ultra", or "custom" for config additions
    int max_per_request = 1;         // images one request may ask for
    std::vector<std::string> sizes;  // allowed "size" values; empty: size not accepted
    bool free_size = false;          // gpt-image-2: any WxH within free_rules
    FreeSizeRules free_rules;
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

    // Lifecycle. Dates are YYYY-MM-DD (UTC days).
    ModelStatus status = ModelStatus::active;
    std::string shutdown;     // deprecated: the day it stops working ("" when not announced)
    std::string retired;      // retired: the day it stopped working
    std::string replacement;  // the model to use instead ("" when none is named)
    std::string note;         // a word for people ("dated snapshot of gpt-image-2")

    // What the vendor charges (field "prices"); unset: not known (costs are then unknown
    // unless the provider sets its own "prices" in the config).
    std::optional<Price> price;
};

// What a model's lifecycle amounts to on a day: a deprecated model whose shutdown day has
// come counts as retired from that day; a retired model whose day is still ahead counts as
// deprecated until then.
struct Lifecycle {
    ModelStatus status = ModelStatus::active;
    std::string date;  // deprecated: shutdown day (may be ""); retired: the day it retired
    std::string replacement;
    std::string note;
};
Lifecycle lifecycle_on(const ModelInfo& m, std::string_view today);

// Today's date in UTC as YYYY-MM-DD.
std::string today_utc();

// True for a YYYY-MM-DD date with a valid month and day.
bool is_iso_date(std::string_view s);

// The named generation parameters a job line may give and a catalog entry may describe:
// size, aspect_ratio, quality, style, background, moderation, output_format,
// output_compression, image_size, person_generation. Other params are provider-native and
// pass through.
const std::vector<std::string>& generation_fields();
bool is_generation_field(std::string_view name);

class Catalog {
  public:
    // The built-in catalog: catalog/models.json as embedded at build time.
    static Catalog builtin();

    // A catalog file's text: {"format": 1, "prices_as_of": "YYYY-MM-DD", "prices_source": "...",
    // "models": {"name": {...}, ...}}, entries as for
    // apply_config, in order ("like" names an entry above). A model the file adds without
    // "like" must name its "family" and takes only what its entry describes. Throws
    // std::invalid_argument naming source, model and field on a bad value.
    static Catalog from_json(std::string_view text, const std::string& source);

    // Applies config "models": {"name": {"max_per_request": 2, "sizes": [...], "family": ...}}.
    // An unknown name adds a model (starting from defaults, or from "like": "other-model");
    // such a model is open (passes parameters its entry does not describe) unless it sets
    // "open": false. Throws std::invalid_argument naming the model and field on a bad value.
    void apply_config(const boost::json::object& models);

    const ModelInfo* find(std::string_view model) const;
    std::vector<std::string> names() const;  // sorted

    // Where the prices come from: the catalog file's "prices_as_of" (YYYY-MM-DD) and
    // "prices_source" (the vendors' pages); "" when the file does not say.
    const std::string& prices_as_of() const { return prices_as_of_; }
    const std::string& prices_source() const { return prices_source_; }

  private:
    void apply(const boost::json::object& models, bool from_file);
    std::map<std::string, ModelInfo, std::less<>> models_;
    std::string prices_as_of_, prices_source_;
};

}  // namespace imgbatch::jobs
