#pragma once
// Test support for HTTPS: a self-signed certificate made at test time with the OpenSSL 3 API
// (no openssl CLI, nothing committed) and an in-process TLS server on 127.0.0.1:0.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace imgbatch::test {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// A self-signed certificate (EC P-256) and its key as PEM files in a fresh temp directory,
// removed again by the destructor. san is an OpenSSL subjectAltName value such as
// "DNS:localhost,IP:127.0.0.1"; the common name is set too (it is ignored when a DNS SAN
// exists, so a wrong SAN cannot be rescued by it). The certificate is valid from now +
// not_before_s to now + not_after_s (seconds; the default: an hour ago to a day ahead).
class TestCert {
  public:
    TestCert(const std::string& common_name, const std::string& san, long not_before_s = -3600,
             long not_after_s = 24 * 3600) {
        std::string pattern = (std::filesystem::temp_directory_path() / "imgbatch-tls-XXXXXX");
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        cert_file_ = (dir_ / "cert.pem").string();
        key_file_ = (dir_ / "key.pem").string();

        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"),
                                                                &EVP_PKEY_free);
        std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
        if (!key || !cert) throw std::runtime_error("key or certificate allocation failed");
        X509* x = cert.get();
        X509_set_version(x, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), not_before_s);
        X509_gmtime_adj(X509_getm_notAfter(x), not_after_s);
        X509_set_pubkey(x, key.get());
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        add_extension(x, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(x, NID_subject_alt_name, san);
        if (X509_sign(x, key.get(), EVP_sha256()) == 0)
            throw std::runtime_error("X509_sign failed");

        write_pem(cert_file_, [&](FILE* f) { return PEM_write_X509(f, x); });
        write_pem(key_file_, [&](FILE* f) {
            return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        });
    }
    ~TestCert() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    TestCert(const TestCert&) = delete;
    TestCert& operator=(const TestCert&) = delete;

    const std::string& cert_file() const { return cert_file_; }
    const std::string& key_file() const { return key_file_; }

  private:
    static void add_extension(X509* x, int nid, const std::string& value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
        if (!ext) throw std::runtime_error("bad extension value: " + value);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    template <class Write>
    static void write_pem(const std::string& path, Write write) {
        FILE* f = std::fopen(path.c_str(), "w");
        if (!f) throw std::runtime_error("cannot create " + path);
        const int ok = write(f);
        std::fclose(f);
        if (!ok) throw std::runtime_error("cannot write " + path);
    }

    std::filesystem::path dir_;
    std::string cert_file_;
    std::string key_file_;
};

// A TLS server on 127.0.0.1:0, on its own thread. In `respond` mode it completes the handshake,
// records the SNI name it received and answers every GET with 200 "hello <target>" on a
// keep-alive connection. In `silent` mode it accepts TCP and never says anything, so a
// client's handshake can only end by its own deadline.
class TlsServer {
  public:
    enum class Mode { respond, silent };

    TlsServer(const TestCert& cert, Mode mode)
        : mode_(mode), acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        tls_.use_certificate_chain_file(cert.cert_file());
        tls_.use_private_key_file(cert.key_file(), ssl::context::pem);
        asio::co_spawn(ioc_, accept_loop(this), asio::detached);
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~TlsServer() {
        ioc_.stop();
        thread_.join();
    }
    TlsServer(const TlsServer&) = delete;
    TlsServer& operator=(const TlsServer&) = delete;

    int port() const { return acceptor_.local_endpoint().port(); }
    int accepted() const { return accepted_; }
    int handshakes() const { return handshakes_; }
    // The SNI name of each completed handshake ("" when the client sent none).
    std::vector<std::string> server_names() const {
        std::lock_guard lock(mutex_);
        return server_names_;
    }

  private:
    static constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

    static asio::awaitable<void> accept_loop(TlsServer* self) {
        for (;;) {
            auto [ec, socket] = co_await self->acceptor_.async_accept(tuple_awaitable);
            if (ec) co_return;
            ++self->accepted_;
            if (self->mode_ == Mode::silent)
                self->held_.push_back(std::move(socket));  // open, but never answered
            else
                asio::co_spawn(self->ioc_, serve(self, std::move(socket)), asio::detached);
        }
    }

    static asio::awaitable<void> serve(TlsServer* self, tcp::socket socket) {
        ssl::stream<tcp::socket> stream(std::move(socket), self->tls_);
        auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, tuple_awaitable);
        if (hec) co_return;  // e.g. the client rejected the certificate
        const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
        {
            std::lock_guard lock(self->mutex_);
            self->server_names_.emplace_back(sni ? sni : "");
        }
        ++self->handshakes_;
        std::string data;
        for (;;) {
            auto [rec, n] = co_await asio::async_read_until(stream, asio::dynamic_buffer(data),
                                                            "\r\n\r\n", tuple_awaitable);
            if (rec) co_return;
            // "GET /x HTTP/1.1": the target sits between the first two spaces.
            const auto first = data.find(' ');
            const auto second = data.find(' ', first + 1);
            const std::string body = "hello " + data.substr(first + 1, second - first - 1);
            data.erase(0, n);
            const std::string answer =
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                "Content-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body;
            auto [wec, w] =
                co_await asio::async_write(stream, asio::buffer(answer), tuple_awaitable);
            (void)w;
            if (wec) co_return;
        }
    }

    Mode mode_;
    asio::io_context ioc_{1};
    ssl::context tls_{ssl::context::tls_server};
    tcp::acceptor acceptor_;
    std::vector<tcp::socket> held_;
    std::atomic<int> accepted_{0};
    std::atomic<int> handshakes_{0};
    mutable std::mutex mutex_;
    std::vector<std::string> server_names_;
    std::thread thread_;
};

}  // namespace imgbatch::test
