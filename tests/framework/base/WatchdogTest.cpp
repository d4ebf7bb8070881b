#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "framework/base/System.h"
#include "framework/base/Watchdog.h"

using namespace gentrain;

// Note [wait snapshot]: scopes starting and ending as fast as the main thread can make them
// while another thread reads what the watchdog reads. A torn read (a scope's name with the
// enclosing scope's start, 0 here) shows as a wait as long as the machine's uptime.
TEST(Watchdog, AWaitIsReadAsOneSnapshotWhileScopesComeAndGo) {
  std::atomic<bool> done{false};
  double longest = 0;
  int64_t seen = 0;
  std::thread reader([&] {
    while (!done.load()) {
      const auto [what, waited] = Watchdog::currentWait();
      if (!what.empty()) ++seen;
      longest = std::max(longest, waited);
    }
  });
  const double start = monotonicSeconds();
  while (monotonicSeconds() - start < 1.0) {
    Watchdog::Scope outer("outer");
    for (int k = 0; k < 100; ++k) Watchdog::Scope inner("inner");
  }
  done.store(true);
  reader.join();
  EXPECT_GT(seen, 0);
  EXPECT_LT(longest, 5.0) << "a wait read torn: it looked " << longest << " s long";
  EXPECT_EQ(Watchdog::currentWait().first, "");
}
