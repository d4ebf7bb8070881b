#include "framework/train/StopAgreement.h"

#include <chrono>
#include <cmath>

#include "framework/base/Preemption.h"
#include "framework/base/System.h"
#include "framework/comm/Communicator.h"

namespace gentrain {

StopAgreement::StopAgreement(Communicator& comm, double everyMinutes)
    : comm_(comm), everyMinutes_(everyMinutes), lastCheckpoint_(monotonicSeconds()) {}

void StopAgreement::restartClock() { lastCheckpoint_ = monotonicSeconds(); }

StopAgreement::Outcome StopAgreement::check() {
  Outcome outcome;
  outcome.signal = stopSignal();
  // The sum over ranks is (stop signals seen) + (world + 1) if rank 0 says a checkpoint is due:
  // both travel in one all-reduce.
  const double world = comm_.size();
  const bool due = comm_.rank() == 0 && everyMinutes_ > 0 &&
                   monotonicSeconds() - lastCheckpoint_ >= 60 * everyMinutes_;
  const double total = comm_.allReduceScalar(
      (outcome.signal.empty() ? 0.0 : 1.0) + (due ? world + 1 : 0.0), ReduceOp::Sum);
  outcome.stop = std::fmod(total, world + 1) > 0;
  outcome.checkpointDue = total >= world + 1;
  return outcome;
}

}  // namespace gentrain
