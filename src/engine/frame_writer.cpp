#include "engine/frame_writer.hpp"

#include <cerrno>
#include <vector>

namespace mqfs::engine {

bool FrameWriter::hold(std::span<const std::byte> bytes, Framing framing) {
  if (!held_.append(bytes)) return false;
  framing_ = framing;
  return true;
}

int FrameWriter::append_to_message(std::span<const std::byte> bytes, std::size_t msgsize) {
  if (refused_) return refused_;
  framing_ = Framing::file;
  int error = 0;
  if (held_.size() + bytes.size() > msgsize)
    error = EMSGSIZE;
  else if (!held_.append(bytes))
    error = ENOSPC;
  if (error) {
    held_.clear();
    refused_ = error;
  }
  return error;
}

MessagePtr FrameWriter::take_message(Priority priority, Type type) {
  // The held bytes are charged already; when the budget cannot hold them
  // twice, they give way to the message.
  MessagePtr message = Message::make(*budget_, held_.bytes(), priority, type);
  if (!message) {
    std::vector<std::byte> bytes(held_.bytes().begin(), held_.bytes().end());
    held_.clear();
    message = Message::make(*budget_, bytes, priority, type);
  }
  held_.clear();
  return message;
}

}  // namespace mqfs::engine
