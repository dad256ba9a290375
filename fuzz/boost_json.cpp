// Boost.JSON compiled from its headers, with the fuzzers' instrumentation.
#include <boost/json/src.hpp>
