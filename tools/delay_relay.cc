// delay_relay: a TCP relay on loopback that holds back every chunk of data
// for a fixed time in each direction, so a remote lister can be measured
// against a high-latency link without leaving the machine.
//
//   delay_relay LISTEN_PORT TARGET_PORT DELAY_MS
//
// Listens on 127.0.0.1:LISTEN_PORT (0 picks a free port) and forwards each
// connection to 127.0.0.1:TARGET_PORT. Data read at time t is written at
// t + DELAY_MS, in order, so a round trip gains 2 x DELAY_MS. Bandwidth is
// not limited. Prints "listening on 127.0.0.1:PORT" once ready, then runs
// until killed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

// Chunk is data read from one side, due on the other side at `due`. An
// empty chunk marks the end of the stream.
struct Chunk {
  Clock::time_point due;
  std::string bytes;
};

// Pipe carries one direction of one connection: a reader thread fills it,
// a writer thread drains it when each chunk is due.
class Pipe {
 public:
  void Push(Chunk chunk) {
    {
      std::lock_guard lock(mutex_);
      chunks_.push_back(std::move(chunk));
    }
    ready_.notify_one();
  }

  Chunk Pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return !chunks_.empty(); });
    Chunk chunk = std::move(chunks_.front());
    chunks_.pop_front();
    return chunk;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Chunk> chunks_;
};

bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t written = send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    done += static_cast<size_t>(written);
  }
  return true;
}

// Relays `from` to `to` with the delay, and returns when the stream ends.
void RelayDirection(int from, int to, std::chrono::milliseconds delay) {
  auto pipe = std::make_shared<Pipe>();
  std::thread writer([pipe, to] {
    for (;;) {
      Chunk chunk = pipe->Pop();
      std::this_thread::sleep_until(chunk.due);
      if (chunk.bytes.empty() || !WriteAll(to, chunk.bytes)) {
        shutdown(to, SHUT_WR);
        return;
      }
    }
  });
  char buffer[64 * 1024];
  for (;;) {
    ssize_t got = recv(from, buffer, sizeof(buffer), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    pipe->Push(Chunk{Clock::now() + delay, std::string(buffer, static_cast<size_t>(got))});
  }
  pipe->Push(Chunk{Clock::now() + delay, std::string()});
  writer.join();
}

int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void ServeConnection(int client, uint16_t target_port, std::chrono::milliseconds delay) {
  int server = ConnectLoopback(target_port);
  if (server < 0) {
    std::fprintf(stderr, "delay_relay: connect to 127.0.0.1:%u failed: %s\n", target_port,
                 std::strerror(errno));
    close(client);
    return;
  }
  int on = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  std::thread upstream([=] { RelayDirection(client, server, delay); });
  RelayDirection(server, client, delay);
  upstream.join();
  close(client);
  close(server);
}

long ParseNumber(const char* text, const char* what, long max) {
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 0 || value > max) {
    std::fprintf(stderr, "delay_relay: invalid %s '%s'\n", what, text);
    std::exit(2);
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: delay_relay LISTEN_PORT TARGET_PORT DELAY_MS\n");
    return 2;
  }
  auto listen_port = static_cast<uint16_t>(ParseNumber(argv[1], "listen port", 65535));
  auto target_port = static_cast<uint16_t>(ParseNumber(argv[2], "target port", 65535));
  std::chrono::milliseconds delay(ParseNumber(argv[3], "delay", 60'000));
  signal(SIGPIPE, SIG_IGN);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(listen_port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listener, 64) != 0) {
    std::fprintf(stderr, "delay_relay: listen on 127.0.0.1:%u failed: %s\n", listen_port,
                 std::strerror(errno));
    return 1;
  }
  socklen_t length = sizeof(address);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  std::printf("listening on 127.0.0.1:%u\n", ntohs(address.sin_port));
  std::fflush(stdout);

  for (;;) {
    int client = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "delay_relay: accept failed: %s\n", std::strerror(errno));
      return 1;
    }
    std::thread(ServeConnection, client, target_port, delay).detach();
  }
}
