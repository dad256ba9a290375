// imgbatch: the program. Everything is in the command line (daemon/cli).
#include "daemon/cli/cli.hpp"

int main(int argc, char** argv) {
    return imgbatch::daemon::cli::run(argc, argv);
}
