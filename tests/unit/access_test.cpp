// Access rules the daemon checks itself: read permission for a purge, and the
// set-ID bits a write clears, decided as Linux decides them.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <vector>

#include "doubles.hpp"
#include "engine/access.hpp"
#include "engine/namespace.hpp"

namespace mqfs::engine {
namespace {

constexpr Owner kOwner{1000, 1000};

class AccessTest : public ::testing::Test {
 protected:
  Node& queue(mode_t mode) {
    Node* made = nullptr;
    EXPECT_EQ(names.make(names.root(), "q" + std::to_string(++count), S_IFREG | mode, kOwner, made), 0);
    return *made;
  }

  Budget budget{100, 1 << 20};
  Timeouts timeouts;
  Settings defaults;
  Namespace names{budget, timeouts, defaults, 0755, Owner{0, 0}};
  int count = 0;
};

const Caller kTheOwner{1000, 1000, {}};
const Caller kStranger{2000, 2000, {}};
const Caller kRoot{0, 0, {}};

TEST_F(AccessTest, TheOwnerReadsByTheOwnerBitsAlone) {
  EXPECT_TRUE(may_read(queue(0400), kTheOwner));
  EXPECT_FALSE(may_read(queue(0244), kTheOwner));  // group and others may, the owner may not
}

TEST_F(AccessTest, TheGroupReadsByTheGroupBitsAlsoThroughSupplementaryGroups) {
  const std::vector<gid_t> groups{5, 1000};
  const Caller supplementary{2000, 2000, groups};
  const Caller primary{2000, 1000, {}};
  EXPECT_TRUE(may_read(queue(0040), primary));
  EXPECT_TRUE(may_read(queue(0040), supplementary));
  EXPECT_FALSE(may_read(queue(0604), supplementary));  // a member is not "others"
  EXPECT_FALSE(may_read(queue(0040), kStranger));
}

TEST_F(AccessTest, OthersReadByTheOtherBits) {
  EXPECT_TRUE(may_read(queue(0004), kStranger));
  EXPECT_FALSE(may_read(queue(0660), kStranger));
}

TEST_F(AccessTest, RootReadsWhateverTheMode) {
  EXPECT_TRUE(may_read(queue(0000), kRoot));
}

TEST(ModeAfterWrite, AnUnprivilegedWriterClearsSetUidAndSetGidWithGroupExecute) {
  EXPECT_EQ(mode_after_write(S_IFREG | 06777, kStranger), S_IFREG | 0777);
  EXPECT_EQ(mode_after_write(S_IFREG | 04755, kStranger), S_IFREG | 0755);
  EXPECT_EQ(mode_after_write(S_IFREG | 02775, kStranger), S_IFREG | 0775);
  // The owner too, as on ext4: only the privilege to keep them matters.
  EXPECT_EQ(mode_after_write(S_IFREG | 06777, kTheOwner), S_IFREG | 0777);
}

TEST(ModeAfterWrite, SetGidWithoutGroupExecuteStays) {
  EXPECT_EQ(mode_after_write(S_IFREG | 06767, kStranger), S_IFREG | 02767);
  EXPECT_EQ(mode_after_write(S_IFREG | 02666, kStranger), S_IFREG | 02666);
}

TEST(ModeAfterWrite, RootKeepsThemAndPlainModesAreUntouched) {
  EXPECT_EQ(mode_after_write(S_IFREG | 06777, kRoot), S_IFREG | 06777);
  EXPECT_EQ(mode_after_write(S_IFREG | 0777, kStranger), S_IFREG | 0777);
  EXPECT_EQ(mode_after_write(S_IFDIR | 02775, kStranger), S_IFDIR | 02775);
}

}  // namespace
}  // namespace mqfs::engine
