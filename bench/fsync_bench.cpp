// The disk's bound for small image files: writes N files of B bytes, each fsynced, from T
// threads into one directory, and prints files/s. Run beside e2e.sh / throughput.sh so the
// daemon's rate can be read against what the disk allows on the same machine at the same time.
// Also prints its own CPU time per file.
//
// Usage: bench_fsync_bench DIR [FILES=20000] [THREADS=4] [BYTES=120]
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIR [FILES] [THREADS] [BYTES]\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const int files = argc > 2 ? std::atoi(argv[2]) : 20000;
    const int threads = argc > 3 ? std::atoi(argv[3]) : 4;
    const int bytes = argc > 4 ? std::atoi(argv[4]) : 120;
    const std::string data(static_cast<std::size_t>(bytes), 'x');
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int i = next++; i < files; i = next++) {
                std::string path = dir + "/f" + std::to_string(i) + ".png";
                int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0 || ::write(fd, data.data(), data.size()) != bytes || ::fsync(fd) != 0)
                    failed = true;
                if (fd >= 0) ::close(fd);
            }
        });
    for (auto& th : pool) th.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (failed) {
        std::fprintf(stderr, "fsync_bench: a write failed\n");
        return 1;
    }
    std::printf("fsync: %d files of %d bytes from %d threads in %.2f s = %.0f files/s\n", files,
                bytes, threads, s, files / s);
    // Its own CPU time: what writing the files costs the machine, for reading the daemon's.
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const double user = static_cast<double>(ru.ru_utime.tv_sec) + ru.ru_utime.tv_usec / 1e6;
    const double sys = static_cast<double>(ru.ru_stime.tv_sec) + ru.ru_stime.tv_usec / 1e6;
    std::printf("fsync CPU: %.2f s user + %.2f s system = %.0f us a file\n", user, sys,
                (user + sys) * 1e6 / files);
    return 0;
}
