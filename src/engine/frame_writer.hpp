// The write side of an open file under framing (SPEC sections 7 and 14): the
// bytes of a message it has begun and not finished, the framing they were
// written under, and, under file framing, why its message was dropped.
#pragma once

#include <cstddef>
#include <span>

#include "engine/budget.hpp"
#include "engine/message.hpp"
#include "engine/settings.hpp"

namespace mqfs::engine {

class FrameWriter {
 public:
  explicit FrameWriter(Budget& budget) : budget_(&budget), held_(budget) {}

  bool empty() const { return held_.empty(); }
  std::span<const std::byte> bytes() const { return held_.bytes(); }
  // The framing the held bytes were written under.
  Framing framing() const { return framing_; }

  // Line or u32 framing: holds `bytes`, the start of a message the next
  // write continues. False, with nothing held, when the budget has no room.
  bool hold(std::span<const std::byte> bytes, Framing framing);
  void clear() { held_.clear(); }

  // File framing: this file has written bytes of a message that its next
  // close or fsync sends.
  bool writing_message() const { return framing_ == Framing::file && !held_.empty(); }
  // File framing: `bytes` join the message under way. 0, or why the message
  // was dropped, never sent in part: EMSGSIZE past `msgsize`, ENOSPC past
  // the budget. A dropped message refuses later writes the same way until
  // its close or fsync ends it (end_refusal).
  int append_to_message(std::span<const std::byte> bytes, std::size_t msgsize);
  // The writer did not get the answer to its last `n` appended bytes, so it
  // did not write them.
  void take_back(std::size_t n) { held_.truncate(held_.size() - n); }
  // A close or fsync ended the dropped message: the next write starts anew.
  void end_refusal() { refused_ = 0; }
  // A close or fsync ends the message under way: the held bytes become a
  // message of `priority` and are held no more. Null, with the bytes
  // dropped, when the budget has no room for it.
  MessagePtr take_message(Priority priority, Type type);

  // What ending the held bytes makes of them. At the last close (RELEASE)
  // only an unfinished line is a message; a whole-file message was sent by
  // the FLUSH before it (or its writer was killed), and an unfinished u32
  // frame is no message.
  bool sent_at_release() const { return framing_ == Framing::line; }
  // When the queue's framing changed under them, they end as at a close:
  // a line or a whole-file message is sent, an unfinished frame dropped.
  bool sent_when_framing_changed() const { return framing_ != Framing::u32; }

 private:
  Budget* budget_;
  HeldBytes held_;
  Framing framing_ = Framing::none;
  int refused_ = 0;
};

}  // namespace mqfs::engine
