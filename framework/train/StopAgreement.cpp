#include "framework/train/StopAgreement.h"

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
  const bool due = comm_.rank() == 0 && everyMinutes_ > 0 &&
                   monotonicSeconds() - lastCheckpoint_ >= 60 * everyMinutes_;
  // Over the ranks: how many got any stop signal, how many got SIGUSR1, whether rank 0 says a
  // timed checkpoint is due.
  double counts[3] = {outcome.signal.empty() ? 0.0 : 1.0, requeueRequested() ? 1.0 : 0.0,
                      due ? 1.0 : 0.0};
  comm_.allReduceHost(counts, 3, ReduceOp::Sum);
  outcome.stop = counts[0] > 0;
  outcome.requeue = counts[1] > 0;
  outcome.checkpointDue = counts[2] > 0;
  return outcome;
}

}  // namespace gentrain
