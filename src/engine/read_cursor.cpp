#include "engine/read_cursor.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <cassert>

#include "engine/waiter.hpp"

namespace mqfs::engine {

void ReadCursor::keep_rest(MessagePtr message, std::size_t read, bool leased) {
  assert(!rest_ && "a file reads the rest of one message before the next");
  if (read >= message->size()) return;
  rest_ = std::move(message);
  rest_offset_ = read;
  rest_leased_ = leased;
}

void ReadCursor::read_rest(std::size_t size, Receiver& to) {
  const auto rest = rest_->bytes().subspan(rest_offset_);
  const iovec part{const_cast<std::byte*>(rest.data()), std::min(size, rest.size())};
  if (!to.deliver({&part, 1})) return;
  rest_offset_ += part.iov_len;
  if (rest_offset_ == rest_->size()) rest_.reset();
}

}  // namespace mqfs::engine
