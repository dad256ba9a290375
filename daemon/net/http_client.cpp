// HttpClient: Beast over TCP or TLS, optional proxy, keep-alive pool, deadlines.
#include "daemon/net/http_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <stdexcept>
#include <vector>

#include "daemon/net/content_coding.hpp"

namespace imgbatch::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using jobs::ErrorClass;

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

struct Connection {
    std::string key;    // scheme://host:port [via proxy]: what the pool matches on
    std::string where;  // host:port for messages
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

std::string seconds_text(std::chrono::milliseconds ms) {
    if (ms.count() % 1000 == 0) return std::to_string(ms.count() / 1000) + " s";
    std::string s = std::to_string(static_cast<double>(ms.count()) / 1000.0);
    while (s.back() == '0') s.pop_back();
    return s + " s";
}

// IPv6 literals go in brackets in Host headers and messages.
std::string bracketed(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string host_port(const std::string& host, const std::string& port) {
    return bracketed(host) + ":" + port;
}

// The result of one write + read on a connection.
struct Exchange {
    std::optional<HttpResponse> response;
    std::optional<HttpFailure> failure;
    bool got_bytes = false;   // some of the answer arrived: the request may have been processed
    bool sent = false;        // the whole request was written: the server may have processed it
    bool retryable = false;   // failed like a stale keep-alive connection (closed or reset)
    bool keep_alive = false;  // the connection can be reused
};

HttpFailure read_failure(const beast::error_code& ec, bool got_bytes, const std::string& where,
                         const HttpClientOptions& opt) {
    if (ec == beast::error::timeout)
        return {ErrorClass::timeout,
                "response deadline of " + seconds_text(opt.response_timeout) + " passed"};
    if (ec == http::error::body_limit) return response_too_large(opt.max_response_bytes);
    if (ec == http::error::partial_message || (got_bytes && ec == asio::error::eof))
        return {ErrorClass::network,
                "connection to " + where + " closed before the end of the answer"};
    // Beast reports a close before the first byte as end_of_stream.
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == ssl::error::stream_truncated)
        return {ErrorClass::network, where + " closed the connection without an answer"};
    if (ec.category() == http::make_error_code(http::error::bad_version).category())
        return {ErrorClass::bad_response,
                "malformed HTTP answer from " + where + ": " + ec.message()};
    return {ErrorClass::network, "read from " + where + ": " + ec.message()};
}

// Where a 2xx answer's body goes instead of memory (HttpRequest::body_file).
struct FileSink {
    std::string path;
    std::uint64_t max = 0;
    asio::thread_pool* io = nullptr;  // where the file is opened, written and closed
};

// Runs (*fn)() (returning 0 or an errno) on pool, off the network thread; resumes on the
// caller's executor with its result. fn lives in the caller's frame, which waits: no lambda
// with captures crosses the co_await (GCC 12 destroys such temporaries twice).
template <class Fn>
asio::awaitable<int> on_file_io(asio::thread_pool* pool, Fn* fn) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(int)>(
        [pool, fn](auto handler) {
            asio::post(*pool, [h = std::move(handler), fn]() mutable {
                const int err = (*fn)();
                auto ex = asio::get_associated_executor(h);
                asio::post(ex, [h = std::move(h), err]() mutable { std::move(h)(err); });
            });
        },
        asio::use_awaitable);
}

// The file operations of a body file, each returning 0 or an errno.
struct OpenFile {
    int* fd;
    const std::string* path;
    int operator()() const {
        *fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        return *fd < 0 ? errno : 0;
    }
};
struct WriteChunk {
    const int* fd;
    const char* data;
    std::size_t size;
    int operator()() const {
        for (std::size_t at = 0; at < size;) {
            const ssize_t w = ::write(*fd, data + at, size - at);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return errno;
            at += static_cast<std::size_t>(w);
        }
        return 0;
    }
};
struct CloseFile {
    const int* fd;
    int operator()() const { return ::close(*fd) == 0 ? 0 : errno; }
};

// The body is written in pieces of this size (read into memory, then written on the pool).
constexpr std::size_t kFileChunk = 256 * 1024;

template <class Stream>
asio::awaitable<Exchange> exchange_to_file(Stream& stream, Connection& conn,
                                           const HttpClientOptions& opt, const FileSink& sink);

template <class Stream>
asio::awaitable<Exchange> exchange(Stream& stream, Connection& conn,
                                   const http::request<http::string_body>& msg,
                                   const HttpClientOptions& opt, const FileSink* sink = nullptr) {
    Exchange out;
    conn.lowest().expires_after(opt.response_timeout);
    auto [wec, written] = co_await http::async_write(stream, msg, tuple_awaitable);
    (void)written;
    if (wec) {
        if (wec == beast::error::timeout)
            out.failure = HttpFailure{
                ErrorClass::timeout,
                "response deadline of " + seconds_text(opt.response_timeout) + " passed"};
        else
            out.failure =
                HttpFailure{ErrorClass::network, "write to " + conn.where + ": " + wec.message()};
        out.retryable = wec != beast::error::timeout;
        co_return out;
    }
    out.sent = true;
    if (sink) {
        Exchange file_out = co_await exchange_to_file(stream, conn, opt, *sink);
        file_out.sent = true;
        co_return file_out;
    }
    // Interim answers (100 Continue, 103 Early Hints, ...) come before the final one on the
    // same connection: each is read whole and skipped. A parser reads one message only.
    constexpr int kMaxInterim = 16;
    for (int interim = 0;; ++interim) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(opt.max_response_bytes);
        parser.header_limit(64 * 1024);
        auto [rec, read] = co_await http::async_read(stream, conn.buffer, parser, tuple_awaitable);
        (void)read;
        out.got_bytes = out.got_bytes || parser.got_some();
        if (rec) {
            out.failure = read_failure(rec, out.got_bytes, conn.where, opt);
            out.retryable = !out.got_bytes && rec != beast::error::timeout;
            co_return out;
        }
        auto& res = parser.get();
        const int status = static_cast<int>(res.result_int());
        if (status == 101) {  // nothing here asks to switch protocols
            out.failure = HttpFailure{ErrorClass::bad_response,
                                      "unexpected 101 Switching Protocols from " + conn.where, ""};
            co_return out;
        }
        if (status >= 100 && status <= 199) {
            if (interim + 1 >= kMaxInterim) {
                out.failure = HttpFailure{ErrorClass::bad_response,
                                          "more than " + std::to_string(kMaxInterim) +
                                              " interim answers from " + conn.where,
                                          ""};
                co_return out;
            }
            continue;
        }
        HttpResponse response;
        response.status = status;
        for (const auto& field : res)
            response.headers.emplace_back(std::string(field.name_string()),
                                          std::string(field.value()));
        // Reused only when exactly this answer was read: bytes beyond it would be taken as the
        // next request's answer.
        out.keep_alive = res.keep_alive() && parser.is_done() && conn.buffer.size() == 0 &&
                         !(conn.tls && SSL_pending(conn.tls->native_handle()) > 0);
        response.body = std::move(res.body());
        out.response = std::move(response);
        co_return out;
    }
}

// A network failure after a non-idempotent request was written whole: the server may have
// processed (and billed) it, so it is not sent again here; the code says so to the retry policy.
void mark_after_send(HttpFailure& failure) {
    if (failure.cls != ErrorClass::network || !failure.code.empty()) return;
    failure.code = std::string(jobs::kAfterSend);
}

// The answer after the request was written, its 2xx body into sink's file: the head first,
// then the body (a file, or memory for any other status) piece by piece, each piece within
// response_timeout.
template <class Stream>
asio::awaitable<Exchange> exchange_to_file(Stream& stream, Connection& conn,
                                           const HttpClientOptions& opt, const FileSink& sink) {
    Exchange out;
    constexpr int kMaxInterim = 16;
    for (int interim = 0;; ++interim) {
        http::response_parser<http::empty_body> head;
        head.header_limit(64 * 1024);
        // A Content-Length is checked against the limit of the body's destination below.
        head.body_limit(boost::none);
        auto [hec, hn] =
            co_await http::async_read_header(stream, conn.buffer, head, tuple_awaitable);
        (void)hn;
        out.got_bytes = out.got_bytes || head.got_some();
        if (hec) {
            out.failure = read_failure(hec, out.got_bytes, conn.where, opt);
            out.retryable = !out.got_bytes && hec != beast::error::timeout;
            co_return out;
        }
        const int status = static_cast<int>(head.get().result_int());
        if (status == 101 || (status >= 100 && status <= 199 && interim + 1 >= kMaxInterim)) {
            out.failure = HttpFailure{ErrorClass::bad_response,
                                      "unexpected interim answers from " + conn.where, ""};
            co_return out;
        }
        if (status >= 100 && status <= 199) continue;
        HttpResponse response;
        response.status = status;
        for (const auto& field : head.get())
            response.headers.emplace_back(std::string(field.name_string()),
                                          std::string(field.value()));
        bool done = false, keep_alive = false;
        beast::error_code ec;
        const bool to_file = status >= 200 && status <= 299;
        const std::uint64_t limit = to_file ? sink.max : opt.max_response_bytes;
        if (limit > 0 && head.content_length() && *head.content_length() > limit) {
            out.failure = response_too_large(static_cast<std::size_t>(limit));
            co_return out;
        }
        if (to_file) {
            auto coding = head.get()[http::field::content_encoding];
            if (!coding.empty() && !beast::iequals(coding, "identity")) {
                out.failure = HttpFailure{ErrorClass::bad_response,
                                          "a file answer in Content-Encoding " +
                                              std::string(coding) + " (identity was asked)",
                                          "bad_encoding"};
                co_return out;
            }
            http::response_parser<http::buffer_body> body{std::move(head)};
            if (sink.max > 0)
                body.body_limit(sink.max);
            else
                body.body_limit(boost::none);
            int fd = -1;
            OpenFile open_file{&fd, &sink.path};
            const int open_err = co_await on_file_io(sink.io, &open_file);
            if (open_err != 0) {
                out.failure =
                    HttpFailure{ErrorClass::invalid_request,
                                "open " + sink.path + ": " + std::strerror(open_err), "file_sink"};
                co_return out;
            }
            std::vector<char> chunk(kFileChunk);
            std::vector<char>* buf = &chunk;
            std::size_t filled = 0;
            int write_err = 0;
            for (;;) {
                if (!body.is_done()) {
                    body.get().body().data = buf->data() + filled;
                    body.get().body().size = buf->size() - filled;
                    conn.lowest().expires_after(opt.response_timeout);
                    auto [rec, n] =
                        co_await http::async_read_some(stream, conn.buffer, body, tuple_awaitable);
                    (void)n;
                    ec = rec == http::error::need_buffer ? beast::error_code{} : rec;
                    filled = buf->size() - body.get().body().size;
                }
                if (ec) break;
                if (filled > 0 && (filled == buf->size() || body.is_done())) {
                    WriteChunk write_chunk{&fd, buf->data(), filled};
                    write_err = co_await on_file_io(sink.io, &write_chunk);
                    filled = 0;
                    if (write_err != 0) break;
                }
                if (body.is_done()) break;
            }
            CloseFile close_file{&fd};
            const int close_err = co_await on_file_io(sink.io, &close_file);
            if (!ec && (write_err != 0 || close_err != 0)) {
                out.failure = HttpFailure{
                    ErrorClass::invalid_request,
                    "write " + sink.path + ": " + std::strerror(write_err ? write_err : close_err),
                    "file_sink"};
                co_return out;
            }
            done = body.is_done();
            keep_alive = body.get().keep_alive();
        } else {
            http::response_parser<http::string_body> body{std::move(head)};
            body.body_limit(opt.max_response_bytes);
            conn.lowest().expires_after(opt.response_timeout);
            auto [rec, n] = co_await http::async_read(stream, conn.buffer, body, tuple_awaitable);
            (void)n;
            ec = rec;
            done = body.is_done();
            keep_alive = body.get().keep_alive();
            response.body = std::move(body.get().body());
        }
        if (ec) {
            out.failure = ec == http::error::body_limit
                              ? response_too_large(static_cast<std::size_t>(limit))
                              : read_failure(ec, true, conn.where, opt);
            co_return out;
        }
        out.keep_alive = keep_alive && done && conn.buffer.size() == 0 &&
                         !(conn.tls && SSL_pending(conn.tls->native_handle()) > 0);
        out.response = std::move(response);
        co_return out;
    }
}

// An idle connection is usable when nothing can be read from it: a readable socket means the
// server closed it (FIN, TLS close_notify) or sent something nobody asked for.
bool idle_usable(Connection& conn) {
    if (conn.buffer.size() != 0) return false;
    if (conn.tls && SSL_pending(conn.tls->native_handle()) > 0) return false;
    auto& socket = conn.lowest().socket();
    if (!socket.is_open()) return false;
    char byte;
    ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// The client's state; HttpClient::Impl is this type under the header's private name.
struct ClientState {
    asio::any_io_executor executor;
    HttpClientOptions options;
    // Writes of body files (HttpRequest::body_file), made on first use.
    std::unique_ptr<asio::thread_pool> file_io;
    ssl::context tls{ssl::context::tls_client};
    ProxySettings proxy;
    std::vector<std::unique_ptr<Connection>> idle;  // oldest first

    ClientState(asio::any_io_executor ex, HttpClientOptions opt)
        : executor(std::move(ex)), options(std::move(opt)) {
        tls.set_default_verify_paths();
        if (!options.ca_file.empty()) tls.load_verify_file(options.ca_file);
        tls.set_verify_mode(ssl::verify_peer);
        if (options.proxy)
            proxy = *options.proxy;
        else if (options.use_env_proxy)
            proxy = ProxySettings::from_env();
    }

    // The most recently used idle connection to key that is still usable; dead ones found on
    // the way are dropped.
    std::unique_ptr<Connection> take_idle(const std::string& key) {
        for (auto it = idle.rbegin(); it != idle.rend();) {
            if ((*it)->key != key) {
                ++it;
                continue;
            }
            auto conn = std::move(*it);
            it = std::make_reverse_iterator(idle.erase(std::next(it).base()));
            if (idle_usable(*conn)) return conn;
        }
        return nullptr;
    }

    void put_idle(std::unique_ptr<Connection> conn) {
        if (options.max_idle_connections == 0) return;
        conn->lowest().expires_never();
        if (idle.size() >= options.max_idle_connections) idle.erase(idle.begin());
        idle.push_back(std::move(conn));
    }
};

// A certificate that failed verification will not fix itself: class auth, so the provider is
// paused (and probed later) instead of burning every request's attempts.
HttpFailure certificate_failure(long verify, const std::string& target, const std::string& host) {
    std::string why;
    switch (verify) {
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
        case X509_V_ERR_EMAIL_MISMATCH:
            why = "it does not match the host name " + host;
            break;
        case X509_V_ERR_CERT_HAS_EXPIRED:
            why = "it has expired";
            break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
            why = "it is not valid yet (check the clock)";
            break;
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_UNTRUSTED:
        case X509_V_ERR_INVALID_CA:
            why = "its issuer is not trusted";
            break;
        default:
            why = "verification failed";
            break;
    }
    return HttpFailure{ErrorClass::auth,
                       "TLS certificate of " + target + " rejected: " + why + " (" +
                           X509_verify_cert_error_string(verify) + ")",
                       "tls_certificate"};
}

using ConnectResult = std::variant<std::unique_ptr<Connection>, HttpFailure>;

asio::awaitable<ConnectResult> open_connection(std::shared_ptr<ClientState> impl, Url url,
                                               std::optional<ProxyRoute> route, std::string key) {
    using namespace asio::experimental::awaitable_operators;
    const auto& opt = impl->options;
    const auto deadline = std::chrono::steady_clock::now() + opt.connect_timeout;
    const std::string target = host_port(url.host, url.port);
    const std::string host = route ? route->host : url.host;
    const std::string port = route ? route->port : url.port;
    const std::string peer = route ? "proxy " + host_port(host, port) : target;
    auto timed_out = [&] {
        return HttpFailure{
            ErrorClass::timeout,
            "connect deadline of " + seconds_text(opt.connect_timeout) + " passed (" + peer + ")"};
    };

    tcp::resolver resolver(impl->executor);
    asio::steady_timer timer(impl->executor);
    timer.expires_at(deadline);
    auto resolved = co_await (resolver.async_resolve(host, port, tuple_awaitable) ||
                              timer.async_wait(tuple_awaitable));
    if (resolved.index() == 1) co_return timed_out();
    auto [rec, endpoints] = std::get<0>(std::move(resolved));
    if (rec) co_return HttpFailure{ErrorClass::network, "resolve " + host + ": " + rec.message()};

    auto conn = std::make_unique<Connection>();
    conn->key = std::move(key);
    conn->where = target;
    conn->plain = std::make_unique<beast::tcp_stream>(impl->executor);
    conn->plain->expires_at(deadline);
    auto [cec, endpoint] = co_await conn->plain->async_connect(endpoints, tuple_awaitable);
    (void)endpoint;
    if (cec == beast::error::timeout) co_return timed_out();
    if (cec)
        co_return HttpFailure{ErrorClass::network, "connect to " + peer + ": " + cec.message()};
    beast::error_code ignored;
    conn->plain->socket().set_option(tcp::no_delay(true), ignored);

    if (route && url.scheme == "https") {  // tunnel through the proxy
        http::request<http::empty_body> req{http::verb::connect, target, 11};
        req.set(http::field::host, target);
        req.set(http::field::user_agent, "imgbatch/0.1");
        if (!route->authorization.empty())
            req.set(http::field::proxy_authorization, route->authorization);
        auto [wec, w] = co_await http::async_write(*conn->plain, req, tuple_awaitable);
        (void)w;
        if (wec == beast::error::timeout) co_return timed_out();
        if (wec)
            co_return HttpFailure{ErrorClass::network, "write to " + peer + ": " + wec.message()};
        http::response_parser<http::empty_body> parser;
        parser.skip(true);  // a 2xx answer to CONNECT has no body: the tunnel follows
        auto [hec, h] =
            co_await http::async_read_header(*conn->plain, conn->buffer, parser, tuple_awaitable);
        (void)h;
        if (hec == beast::error::timeout) co_return timed_out();
        if (hec)
            co_return HttpFailure{ErrorClass::network,
                                  "CONNECT " + target + " through " + peer + ": " + hec.message()};
        const auto& res = parser.get();
        if (res.result_int() / 100 != 2)
            co_return HttpFailure{ErrorClass::network, peer + " refused CONNECT " + target + ": " +
                                                           std::to_string(res.result_int()) + " " +
                                                           std::string(res.reason())};
    }

    if (url.scheme == "https") {
        conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*conn->plain),
                                                                           impl->tls);
        conn->plain.reset();
        // SNI carries host names only: IP literals are not permitted in it (RFC 6066 3).
        SSL* ssl_handle = conn->tls->native_handle();
        beast::error_code not_ip;
        asio::ip::make_address(url.host, not_ip);
        if (not_ip && !SSL_set_tlsext_host_name(ssl_handle, url.host.c_str()))
            co_return HttpFailure{ErrorClass::network, "TLS with " + target + ": cannot set SNI"};
        // OpenSSL checks the name (or IP entries) itself, so a mismatch has its own error code.
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        const int named = not_ip ? X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0)
                                 : X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
        if (named != 1)
            co_return HttpFailure{ErrorClass::invalid_request,
                                  "TLS with " + target + ": cannot check the host name"};
        auto [tec] = co_await conn->tls->async_handshake(ssl::stream_base::client, tuple_awaitable);
        if (tec == beast::error::timeout) co_return timed_out();
        if (tec) {
            const long verify = SSL_get_verify_result(ssl_handle);
            if (verify != X509_V_OK) co_return certificate_failure(verify, target, url.host);
            co_return HttpFailure{ErrorClass::network,
                                  "TLS handshake with " + target + ": " + tec.message()};
        }
    }
    co_return std::move(conn);
}

asio::awaitable<HttpResult> send_request(std::shared_ptr<ClientState> impl, HttpRequest request) {
    Url url;
    if (!parse_url(request.url, url))
        co_return HttpFailure{ErrorClass::invalid_request, "not an http(s) URL: " + request.url};
    std::optional<ProxyRoute> route;
    try {
        route = proxy_for(url, impl->proxy);
    } catch (const std::invalid_argument& e) {
        co_return HttpFailure{ErrorClass::invalid_request, e.what()};
    }
    const bool default_port = url.port == (url.scheme == "https" ? "443" : "80");
    const std::string host_header =
        default_port ? bracketed(url.host) : host_port(url.host, url.port);
    std::string key = url.scheme + "://" + host_port(url.host, url.port);
    if (route) key += " via " + host_port(route->host, route->port);

    http::request<http::string_body> msg;
    msg.method_string(request.method);
    msg.version(11);
    // Through a plain HTTP proxy the target is the absolute URL (RFC 9112 absolute-form).
    msg.target(route && url.scheme == "http" ? "http://" + host_header + url.target : url.target);
    msg.set(http::field::host, host_header);
    msg.set(http::field::user_agent, "imgbatch/0.1");
    msg.set(http::field::accept_encoding,
            request.body_file.empty() ? kAcceptEncoding : std::string_view("identity"));
    for (const auto& [name, value] : request.headers) msg.set(name, value);
    if (route && url.scheme == "http" && !route->authorization.empty())
        msg.set(http::field::proxy_authorization, route->authorization);
    msg.body() = std::move(request.body);
    msg.prepare_payload();

    const bool defer_decoding = request.defer_decoding;
    const bool idempotent = request.method == "GET" || request.method == "HEAD";
    std::optional<FileSink> sink;
    if (!request.body_file.empty()) {
        if (!impl->file_io) impl->file_io = std::make_unique<asio::thread_pool>(1);
        sink = FileSink{request.body_file, request.body_file_max, impl->file_io.get()};
    }
    for (int attempt = 0;; ++attempt) {
        // The retry of a stale connection goes out on a new connection: another idle one may
        // be just as stale.
        std::unique_ptr<Connection> conn = attempt == 0 ? impl->take_idle(key) : nullptr;
        const bool reused = conn != nullptr;
        if (!conn) {
            auto opened = co_await open_connection(impl, url, route, key);
            if (auto* failure = std::get_if<HttpFailure>(&opened)) co_return std::move(*failure);
            conn = std::move(std::get<0>(opened));
        }
        // (No co_await inside ?: : GCC 12 miscompiles it.)
        Exchange ex;
        if (conn->tls)
            ex = co_await exchange(*conn->tls, *conn, msg, impl->options, sink ? &*sink : nullptr);
        else
            ex =
                co_await exchange(*conn->plain, *conn, msg, impl->options, sink ? &*sink : nullptr);
        if (ex.failure) {
            // A kept-alive connection the server closed before the request was written whole:
            // nothing was processed, so one more try on a fresh connection is safe. Once it was
            // written, only a request that may be repeated (GET, HEAD) goes out again.
            if (reused && ex.retryable && (!ex.sent || idempotent)) continue;
            if (ex.sent && !idempotent) mark_after_send(*ex.failure);
            co_return std::move(*ex.failure);
        }
        if (ex.keep_alive) impl->put_idle(std::move(conn));
        if (!defer_decoding && !(sink && ex.response->status / 100 == 2)) {
            if (auto failure = decode_content(*ex.response, impl->options.max_response_bytes))
                co_return std::move(*failure);
        }
        co_return std::move(*ex.response);
    }
}

}  // namespace

struct HttpClient::Impl : ClientState {
    using ClientState::ClientState;
};

HttpClient::HttpClient(asio::any_io_executor executor, HttpClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

HttpClient::~HttpClient() = default;

asio::awaitable<HttpResult> HttpClient::send(HttpRequest request) {
    return send_request(impl_, std::move(request));
}

void HttpClient::close_idle() {
    impl_->idle.clear();
}

}  // namespace imgbatch::daemon
