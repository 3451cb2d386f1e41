#include "engine/open_file.hpp"

#include "engine/queue.hpp"

namespace mqfs::engine {

OpenFile::OpenFile(std::shared_ptr<Queue> queue, bool reads, bool writes)
    : queue_(std::move(queue)),
      reads_(reads),
      writes_(writes),
      frame_writer_(queue_->budget()) {
  queue_->budget().add_open_file();
  queue_->opened();
  if (reads_ && queue_->is_topic()) {
    subscription_ = queue_->subscribe(*this);
    subscription_->opened();
  }
}

// Unread rest of a message is dropped: that message was delivered. The
// messages the file holds under lease go back to the queue.
OpenFile::~OpenFile() {
  if (subscription_) {
    subscription_->closed(*this);
    subscription_->unsubscribe();
  }
  queue_->closed(*this);
  queue_->budget().remove_open_file();
}

Priority OpenFile::priority() const {
  return priority_ ? *priority_ : static_cast<Priority>(queue_->settings().priority);
}

Type OpenFile::type() const { return type_ ? *type_ : queue_->settings().type; }

void OpenFile::set_last_delivery(const Message& message) {
  last_delivery_ = Delivery{.id = message.id(),
                            .type = message.type(),
                            .priority = message.priority(),
                            .deliveries = message.deliveries(),
                            .enqueued_ns = message.enqueued_ns()};
}

ReadMode OpenFile::read_mode() const { return read_mode_ ? *read_mode_ : queue_->settings().read_mode; }

}  // namespace mqfs::engine
