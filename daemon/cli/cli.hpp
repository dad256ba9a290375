#pragma once
// The imgbatch command line: parses argv, runs one command, returns the process exit code
// (0 ok, 1 some input rejected or a job operation failed, 2 usage or configuration error).

namespace imgbatch::daemon::cli {

int run(int argc, char** argv);

}  // namespace imgbatch::daemon::cli
